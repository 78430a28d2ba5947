# Shared helpers for the storage tests (label storage). Each test sources
# this with the storage_check binary as its first argument, gets a fresh
# $WORK directory, starts the servers it needs on 127.0.0.1 at free ports
# (moto, nginx, the fault server), and has them killed when it exits. Every
# server also stops by itself after a few minutes or when this shell dies.
# The script's exit code is the verdict.
set -u
CHECK_BIN=${1:?usage: $0 PATH/TO/storage_check}
SRC=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
HERE=$SRC/tests/source
WORK=${CT_TEST_TMP:-/tmp}/$(basename "$0" .sh).$$
rm -rf "$WORK" && mkdir -p "$WORK"
SERVER_PIDS=()
FAILURES=0
# every server is on loopback: never through a proxy from the environment
export no_proxy=127.0.0.1,localhost NO_PROXY=127.0.0.1,localhost

fail() { echo "FAIL: $*" >&2; FAILURES=$((FAILURES + 1)); }

stop_servers() {
    local p n
    for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${SERVER_PIDS[@]}"; do
        for n in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    SERVER_PIDS=()
}
trap stop_servers EXIT
trap 'exit 130' INT TERM

# need TOOL HINT: stops the test when a tool is missing.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "FAIL: $1 not found ---> HINT: $2" >&2
    exit 1
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_file FILE PID LOG SECONDS: waits for a server's ready file.
wait_file() {
    local f=$1 pid=$2 log=$3 n=$(($4 * 10))
    while [ ! -s "$f" ]; do
        if ! kill -0 "$pid" 2>/dev/null || [ $n -le 0 ]; then
            echo "FAIL: server did not start; its log:" >&2
            tail -20 "$log" >&2
            exit 1
        fi
        sleep 0.1
        n=$((n - 1))
    done
}

# wait_port PORT PID LOG SECONDS
wait_port() {
    local port=$1 pid=$2 log=$3 n=$(($4 * 10))
    until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
        if ! kill -0 "$pid" 2>/dev/null || [ $n -le 0 ]; then
            echo "FAIL: server on port $port did not start; its log:" >&2
            tail -20 "$log" >&2
            exit 1
        fi
        sleep 0.1
        n=$((n - 1))
    done
}

# start_moto BUCKET...: moto with signature checks on; exports MOTO_ENDPOINT,
# MOTO_AK, MOTO_SK and MOTO_TMP_AK/SK/TOKEN (temporary credentials).
start_moto() {
    python3 -c 'import moto.moto_server.threaded_moto_server, flask, boto3' 2>/dev/null ||
        { echo "FAIL: python moto server missing ---> HINT: pip install \"moto[server]\"" >&2; exit 1; }
    local args=() b
    for b in "$@"; do args+=(--bucket "$b"); done
    python3 "$HERE/moto_server.py" --env-file "$WORK/moto.env" --max-seconds 240 \
        --part-min "${MOTO_PART_MIN:-1024}" "${args[@]}" >"$WORK/moto.log" 2>&1 &
    SERVER_PIDS+=($!)
    wait_file "$WORK/moto.env" $! "$WORK/moto.log" 60
    set -a
    . "$WORK/moto.env"
    set +a
}

# start_nginx WWW: nginx serving WWW over https (self-signed certificate for
# IP 127.0.0.1, exported as CA_FILE) and plain http; exports HTTPS_BASE and
# HTTP_BASE.
start_nginx() {
    local www=$1 dir=$WORK/nginx
    local nginx
    nginx=$(command -v nginx || echo /usr/sbin/nginx)
    [ -x "$nginx" ] || { echo "FAIL: nginx not found ---> HINT: apt-get install nginx" >&2; exit 1; }
    need openssl "apt-get install openssl"
    mkdir -p "$dir/tmp"
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$dir/key.pem" -out "$dir/cert.pem" >"$dir/openssl.log" 2>&1 ||
        { echo "FAIL: openssl could not make a certificate" >&2; cat "$dir/openssl.log" >&2; exit 1; }
    local https_port http_port user=""
    https_port=$(free_port)
    http_port=$(free_port)
    [ "$(id -u)" = 0 ] && user="user root root;"
    cat >"$dir/nginx.conf" <<EOF
$user
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    keepalive_timeout 60s;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:$https_port ssl;
        ssl_certificate $dir/cert.pem;
        ssl_certificate_key $dir/key.pem;
        root $www;
    }
    server {
        listen 127.0.0.1:$http_port;
        root $www;
    }
}
EOF
    "$nginx" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" -g 'daemon off;' \
        >"$dir/stdout.log" 2>&1 &
    SERVER_PIDS+=($!)
    wait_port "$https_port" $! "$dir/error.log" 20
    wait_port "$http_port" $! "$dir/error.log" 20
    export HTTPS_BASE=https://127.0.0.1:$https_port HTTP_BASE=http://127.0.0.1:$http_port
    export CA_FILE=$dir/cert.pem
}

# start_faults ROOT: the fault-injecting server over ROOT; exports FAULT_BASE.
start_faults() {
    python3 "$HERE/fault_server.py" --root "$1" --env-file "$WORK/fault.env" \
        --max-seconds 240 >"$WORK/fault.log" 2>&1 &
    SERVER_PIDS+=($!)
    wait_file "$WORK/fault.env" $! "$WORK/fault.log" 30
    . "$WORK/fault.env"
    export FAULT_BASE=http://127.0.0.1:$FAULT_PORT
}

# run_check MODE SECRET...: runs storage_check MODE (bounded in time), then
# fails if any SECRET shows in what it printed.
run_check() {
    local mode=$1 s
    shift
    timeout 150 "$CHECK_BIN" "$mode" >"$WORK/$mode.out" 2>&1
    local rc=$?
    tail -3 "$WORK/$mode.out"
    [ $rc -eq 0 ] || { fail "storage_check $mode exited $rc"; grep -E "FAIL" "$WORK/$mode.out" | head -20 >&2; }
    for s in "$@"; do
        if [ -n "$s" ] && grep -qF -- "$s" "$WORK/$mode.out"; then
            fail "a credential shows in the output of storage_check $mode"
        fi
    done
}

finish() {
    stop_servers
    echo "$(basename "$0"): $FAILURES failed"
    [ $FAILURES -eq 0 ] && [ -z "${CT_KEEP:-}" ] && rm -rf "$WORK"
    [ $FAILURES -eq 0 ]
}
