#!/usr/bin/env bash
# Distributed CPU benchmark on one machine: GPT-2 124M at B=4, T=64 per
# rank through the real `ctrain train`, with DP=1 (one rank, all cores),
# DP=2 (two ranks, one core each) and TP=2 (two ranks, one core each), on a
# synthetic corpus of random tokens. Prints tokens/s and the fraction of the
# step spent in communication (median of the timed steps), then the MPI
# all-reduce rate at 64 and 512 MiB through the comm API.
set -euo pipefail
BUILD=${BUILD:-build}
CTRAIN=$BUILD/ctrain
STEPS=${STEPS:-6}
DIR=${DIR:-runs/bench-parallel}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$DIR"
# 4M random uint16 tokens below GPT-2's vocabulary, in llm.c's shard format
python3 - "$DIR/random_000000.bin" <<'PY'
import random, struct, sys, array
n = 1 << 22
hdr = [20240520, 1, n] + [0] * 253
rng = random.Random(0)
tok = array.array("H", (rng.randrange(50257) for _ in range(n)))
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<256i", *hdr)); f.write(tok.tobytes())
PY
cores=$(nproc)
run() { # NAME NP DP TP THREADS
    local name=$1 np=$2 dp=$3 tp=$4 th=$5
    rm -rf "$DIR/$name"
    OMP_NUM_THREADS=$th mpirun -np "$np" --bind-to none "$CTRAIN" train configs/gpt2-124m-cpu.yaml \
        --set data.train="$DIR/random_*.bin" --set data.val= --set train.run_dir="$DIR/$name" \
        --set train.steps="$STEPS" --set train.log_every=1 --set parallel.dp="$dp" \
        --set parallel.tp="$tp" --set checkpoint.every=0 --set eval.sample_tokens=0 \
        > "$DIR/$name.log" 2>&1
    python3 - "$DIR/$name/metrics.jsonl" "$name" "$np" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l][2:]  # 2 warm-up steps
ms = statistics.median(r["ms"] for r in rows)
tok = statistics.median(r["tok_s"] for r in rows)
comm = statistics.median(r["comm_frac"] for r in rows)
rss = max(r["max_rss_mib"] for r in rows)
print(f"{sys.argv[2]:6s} ranks={sys.argv[3]}  {ms:8.1f} ms/step  {tok:7.1f} tokens/s  "
      f"comm {100 * comm:4.1f}%  peak RSS (rank 0) {rss:.0f} MiB")
PY
    rm -rf "$DIR/$name/ckpt"
}
echo "== GPT-2 124M, B=4, T=64 per rank, $cores cores =="
run dp1 1 1 1 "$cores"
run dp2 2 2 1 $(( cores / 2 > 0 ? cores / 2 : 1 ))
run tp2 2 1 2 $(( cores / 2 > 0 ? cores / 2 : 1 ))
echo
echo "== MPI all-reduce through the comm API (2 ranks) =="
OMP_NUM_THREADS=1 mpirun -np 2 --bind-to none "$BUILD/bench/bench_comm" 64 512
