#!/usr/bin/env bash
# Read throughput of the byte sources on loopback: a local file (page cache),
# http and https from nginx, and s3 from moto (signatures checked), one
# object of BENCH_MIB MiB each, random whole ranges.
#   bash tests/source/bench.sh build/bench_source
# Knobs: BENCH_MIB (256), BENCH_SIZES (1,4,8 MiB), BENCH_THREADS (1,2,4,8),
# BENCH_SECONDS per point (2).
. "$(dirname "$0")/lib.sh"
BENCH=$CHECK_BIN
MIB=${BENCH_MIB:-256}
mkdir -p "$WORK/www"
start_nginx "$WORK/www"
MOTO_PART_MIN=$((5 << 20)) start_moto ctrain-bench
export AWS_ACCESS_KEY_ID=$MOTO_AK AWS_SECRET_ACCESS_KEY=$MOTO_SK AWS_ENDPOINT_URL=$MOTO_ENDPOINT
export AWS_CA_BUNDLE=$CA_FILE AWS_REGION=us-east-1
"$BENCH" --put "$WORK/www/obj.bin" "$MIB" || fail "writing the local object"
"$BENCH" --put s3://ctrain-bench/obj.bin "$MIB" || fail "writing the s3 object"
"$BENCH" --sizes "${BENCH_SIZES:-1,4,8}" --threads "${BENCH_THREADS:-1,2,4,8}" \
    --seconds "${BENCH_SECONDS:-2}" "$WORK/www/obj.bin" "$HTTP_BASE/obj.bin" \
    "$HTTPS_BASE/obj.bin" s3://ctrain-bench/obj.bin || fail "a benchmark read failed"
finish
