#!/usr/bin/env python3
"""A fault-injecting HTTP server for the storage tests (python stdlib only).

Serves the files of --root with byte ranges on 127.0.0.1 at a free port,
path-style like an S3 endpoint: GET /MODE/NAME serves ROOT/NAME, where MODE
picks a fault. Authorization headers are ignored, so s3:// URLs signed for
this endpoint work too (s3://MODE/NAME). The n-th request (per method and
path) decides what happens:

  ok          a correct response
  drop1       1st: correct headers, half the body, then a connection reset
  reset1      1st: the connection is reset before any response
  truncate1   1st: Content-Length says N, N/2 bytes are sent, clean close
  truncate    always so
  nolen1      1st: no Content-Length, half the body, close
  stall1      1st: headers, then silence for 4 s
  503x2       1st and 2nd: 503 SlowDown (S3 XML error body)
  429x1       1st: 429 SlowDown with Retry-After: 0
  500always   always 500 InternalError
  403         always 403 AccessDenied
  404         always 404 NoSuchKey
  badlen      Content-Length and body 100 bytes longer than the range
  short       the object is presented as half its size
  changed     Content-Range names a total size one byte larger
  wrongrange  Content-Range and body shifted by one byte
  norange     Range is ignored: 200 with the whole file
  mpu403      a multipart upload whose parts are refused (403); records
              the abort (DELETE ?uploadId=)

GET /_count/METHOD/MODE/NAME answers how many such requests arrived.
Writes PORT=... to --env-file when ready; exits on SIGTERM, when its parent
dies, or after --max-seconds.
"""
import argparse
import os
import re
import signal
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COUNTS = {}
LOCK = threading.Lock()
ROOT = "."


def s3_error(code, message):
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>fault</RequestId></Error>").encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def count(self, path):
        key = f"{self.command} {path}"
        with LOCK:
            COUNTS[key] = COUNTS.get(key, 0) + 1
            return COUNTS[key]

    def reset_connection(self):
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def send_bytes(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def error(self, status, code, message, extra=()):
        body = s3_error(code, message)
        self.send_bytes(status, [("Content-Type", "application/xml"),
                                 ("Content-Length", str(len(body)))] + list(extra), body)

    def body_in(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def do_DELETE(self):
        path, _, query = self.path.partition("?")
        self.count(path)
        self.body_in()
        self.send_bytes(204, [("Content-Length", "0")], b"")

    def do_POST(self):
        path, _, query = self.path.partition("?")
        self.count(path)
        self.body_in()
        if "uploads" in query:
            body = (b'<?xml version="1.0"?><InitiateMultipartUploadResult><Bucket>b</Bucket>'
                    b"<Key>k</Key><UploadId>up/1+x=</UploadId></InitiateMultipartUploadResult>")
            self.send_bytes(200, [("Content-Length", str(len(body)))], body)
        else:
            self.error(403, "AccessDenied", "Access Denied")

    def do_PUT(self):
        path, _, _ = self.path.partition("?")
        self.count(path)
        self.body_in()
        self.error(403, "AccessDenied", "Access Denied")

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.partition("?")[0]
        m = re.match(r"^/_count/([A-Z]+)(/.*)$", path)
        if m:
            body = str(COUNTS.get(f"{m.group(1)} {m.group(2)}", 0)).encode()
            return self.send_bytes(200, [("Content-Length", str(len(body)))], body)
        n = self.count(path)
        parts = path.split("/", 2)
        if len(parts) < 3:
            return self.error(404, "NoSuchKey", "no such key")
        mode, name = parts[1], parts[2]
        try:
            with open(os.path.join(ROOT, os.path.basename(name)), "rb") as f:
                data = f.read()
        except OSError:
            return self.error(404, "NoSuchKey", "The specified key does not exist.")
        if mode == "reset1" and n == 1:
            return self.reset_connection()
        if mode == "403":
            return self.error(403, "AccessDenied", "Access Denied")
        if mode == "404":
            return self.error(404, "NoSuchKey", "The specified key does not exist.")
        if mode == "500always":
            return self.error(500, "InternalError", "We encountered an internal error.")
        if mode == "503x2" and n <= 2:
            return self.error(503, "SlowDown", "Please reduce your request rate.")
        if mode == "429x1" and n == 1:
            return self.error(429, "SlowDown", "Please reduce your request rate.",
                              [("Retry-After", "0")])
        size = len(data)
        if mode == "short":
            size //= 2
            data = data[:size]
        rng = self.headers.get("Range")
        m = re.match(r"bytes=(\d+)-(\d+)$", rng or "")
        if not m or mode == "norange":
            return self.send_bytes(200, [("Content-Length", str(size))], data)
        a, b = int(m.group(1)), min(int(m.group(2)), size - 1)
        if a >= size:
            return self.error(416, "InvalidRange", "The requested range is not satisfiable",
                              [("Content-Range", f"bytes */{size}")])
        body, total, first = data[a:b + 1], size, a
        if mode == "changed":
            total = size + 1
        if mode == "wrongrange":
            first, body = a + 1, data[a + 1:b + 2]
        headers = [("Content-Range", f"bytes {first}-{first + len(body) - 1}/{total}"),
                   ("Content-Type", "application/octet-stream")]
        if mode == "badlen":  # the range is right, the length and body are not
            body = body + b"x" * 100
        length = len(body)
        if not (mode == "nolen1" and n == 1):
            headers.append(("Content-Length", str(length)))
        self.send_response(206)
        for k, v in headers:
            self.send_header(k, v)
        if mode == "nolen1" and n == 1:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command == "HEAD":
            return
        half = body[:len(body) // 2]
        if (mode == "drop1" and n == 1):
            self.wfile.write(half)
            return self.reset_connection()
        if (mode == "truncate1" and n == 1) or mode == "truncate" or (mode == "nolen1" and n == 1):
            self.wfile.write(half)
            self.close_connection = True
            return
        if mode == "stall1" and n == 1:
            time.sleep(4)
            self.close_connection = True
            return
        self.wfile.write(body)


def main():
    global ROOT
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--env-file", required=True)
    ap.add_argument("--max-seconds", type=float, default=300)
    args = ap.parse_args()
    ROOT = args.root
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with open(args.env_file + ".tmp", "w") as f:
        f.write(f"FAULT_PORT={server.server_address[1]}\n")
    os.rename(args.env_file + ".tmp", args.env_file)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    parent, t0 = os.getppid(), time.time()
    while not stop and os.getppid() == parent and time.time() - t0 < args.max_seconds:
        time.sleep(0.2)
    threading.Timer(3, lambda: os._exit(0)).start()  # never hang on the way out
    server.shutdown()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
