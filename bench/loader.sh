#!/usr/bin/env bash
# Loader throughput, the way the trainer reads (shuffled chunks of 1M tokens,
# windows of 4 chunks, background prefetch), from local disk, from nginx over
# http and https, and from S3 (moto, signatures checked), on loopback, at
# several data.prefetch_mib settings. Compare the tokens/s with the trainer's
# consumption: GPT-2 124M on this CPU eats ~160 tokens/s.
#   bash bench/loader.sh [build/bench/bench_loader]
export CT_SOURCE_DIR=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
. "$CT_SOURCE_DIR/tests/source/lib.sh" "${1:-build/bench/bench_loader}"
BENCH=$CHECK_BIN
SECONDS_PER=${BENCH_SECONDS:-3}
mkdir -p "$WORK/www"
python3 - "$WORK/www" <<'PY'
import array, random, struct, sys
rng = random.Random(0)
for i in range(4):                       # 4 shards x 4M uint16 tokens = 32 MiB
    n = 1 << 22
    tok = array.array("H", (rng.randrange(50257) for _ in range(n)))
    with open(f"{sys.argv[1]}/bench_{i:06d}.bin", "wb") as f:
        f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
        f.write(tok.tobytes())
PY
start_nginx "$WORK/www"
MOTO_PART_MIN=$((5 << 20)) start_moto ctrain-bench
export AWS_ACCESS_KEY_ID=$MOTO_AK AWS_SECRET_ACCESS_KEY=$MOTO_SK AWS_ENDPOINT_URL=$MOTO_ENDPOINT
export AWS_CA_BUNDLE=$CA_FILE AWS_REGION=us-east-1
python3 - "$WORK/www" <<'PY'
import boto3, glob, os, sys
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1")
for p in sorted(glob.glob(sys.argv[1] + "/bench_*.bin")):
    s3.upload_file(p, "ctrain-bench", "corpus/" + os.path.basename(p))
PY
urls() { (cd "$WORK/www" && ls bench_*.bin) | sed "s|^|$1/|" | paste -sd, -; }
for mib in 0 64 256; do
    "$BENCH" "$WORK/www/bench_*.bin" 64 "$SECONDS_PER" $mib 1048576 4 || fail "file"
    "$BENCH" "$(urls "$HTTP_BASE")" 64 "$SECONDS_PER" $mib 1048576 4 || fail "http"
    "$BENCH" "$(urls "$HTTPS_BASE")" 64 "$SECONDS_PER" $mib 1048576 4 || fail "https"
    "$BENCH" "s3://ctrain-bench/corpus/" 64 "$SECONDS_PER" $mib 1048576 4 || fail "s3"
done 2>&1 | sed "s|$WORK/www|LOCAL|; s|127.0.0.1:[0-9]*|127.0.0.1|g" | cut -c1-160
finish
