#!/usr/bin/env python3
"""An S3 server for the storage tests: moto on 127.0.0.1, a free port, and
signature checks ON.

Started by tests/source/lib.sh. It sets up, with auth still off, an IAM user
with an allow-all policy and an access key, and a role assumed through STS
(temporary credentials with a session token), and creates the --bucket
buckets; then it turns authentication
on for every later request (moto's INITIAL_NO_AUTH_ACTION_COUNT = 0), so a
wrong secret or token is rejected with 403. It writes KEY=VALUE lines to
--env-file when ready and exits on SIGTERM, when its parent dies, or after
--max-seconds, whichever comes first.

One fix to the server under test: moto checks signatures against a URL that
werkzeug has partly percent-decoded (prefix=a%2F becomes prefix=a/), so a
correctly signed ListObjectsV2 with a '/' in the prefix fails against it
(getmoto/moto#5948; boto3 fails the same way). We hand moto the raw
request target instead, which is what AWS signs.
"""
import argparse
import json
import os
import signal
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--env-file", required=True)
    ap.add_argument("--max-seconds", type=float, default=300)
    ap.add_argument("--part-min", type=int, default=5 << 20,
                    help="smallest multipart part moto accepts (S3: 5 MiB)")
    ap.add_argument("--bucket", action="append", default=[], help="created at setup")
    args = ap.parse_args()
    os.environ["S3_UPLOAD_PART_MIN_SIZE"] = str(args.part_min)
    # keep objects in memory (moto spills bigger ones to temporary files)
    os.environ.setdefault("MOTO_S3_DEFAULT_KEY_BUFFER_SIZE", str(256 << 20))

    import flask

    def raw_url(self):
        raw = self.environ.get("RAW_URI") or self.environ.get("REQUEST_URI")
        if raw and raw.startswith("/"):
            return f"{self.scheme}://{self.host}{raw}"
        return f"{self.scheme}://{self.host}{self.full_path}"

    flask.Request.url = property(raw_url)

    import boto3
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"

    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="setup", aws_secret_access_key="setup")
    allow_all = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "*", "Resource": "*"}]})
    iam = boto3.client("iam", **kw)
    iam.create_user(UserName="ctrain")
    iam.put_user_policy(UserName="ctrain", PolicyName="all", PolicyDocument=allow_all)
    key = iam.create_access_key(UserName="ctrain")["AccessKey"]
    iam.create_role(RoleName="ctrain-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"},
                                                "Action": "sts:AssumeRole"}]}))
    iam.put_role_policy(RoleName="ctrain-role", PolicyName="all", PolicyDocument=allow_all)
    sts = boto3.client("sts", **kw)
    role_arn = iam.get_role(RoleName="ctrain-role")["Role"]["Arn"]
    tmp = sts.assume_role(RoleArn=role_arn, RoleSessionName="ctrain-test")["Credentials"]
    s3 = boto3.client("s3", **kw)
    for b in args.bucket:
        s3.create_bucket(Bucket=b)

    settings.INITIAL_NO_AUTH_ACTION_COUNT = 0
    ActionAuthenticatorMixin.request_count = 0

    lines = [f"MOTO_ENDPOINT={endpoint}",
             f"MOTO_AK={key['AccessKeyId']}", f"MOTO_SK={key['SecretAccessKey']}",
             f"MOTO_TMP_AK={tmp['AccessKeyId']}", f"MOTO_TMP_SK={tmp['SecretAccessKey']}",
             f"MOTO_TMP_TOKEN={tmp['SessionToken']}"]
    with open(args.env_file + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(args.env_file + ".tmp", args.env_file)

    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    parent, t0 = os.getppid(), time.time()
    while not stop and os.getppid() == parent and time.time() - t0 < args.max_seconds:
        time.sleep(0.2)
    threading.Timer(3, lambda: os._exit(0)).start()  # never hang on the way out
    server.stop()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
