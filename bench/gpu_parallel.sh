#!/usr/bin/env bash
# The GPU path under a DP x TP layout given on the command line, through the
# real `ctrain train` under mpirun, on a synthetic corpus of random tokens:
# tokens/s, MFU, ms per step, the device time per step in TP collectives
# (on the compute stream, the critical path) and in the DP gradient reduce
# (on its own stream, overlapped with the backward: busy time), and the
# peak device memory of rank 0. Medians over the timed steps (the first two
# are warm-up). The per-op times come from train.profile_ops (CUDA events
# around every op; they cost about 1 us each).
#
#   bench/gpu_parallel.sh [--dp N] [--tp N] [--sp] [--zero] [--steps N]
#                         [--config CFG] [--set k=v]...
#
# CTRAIN picks the binary (default build/ctrain; the CUDA emulator's
# build/tests/ctrain_emu runs every code path on the CPU, with meaningless
# timings), CONFIG defaults to configs/gpt2-124m.yaml. Exits 77 when the
# binary finds no CUDA device.
set -euo pipefail
BUILD=${BUILD:-build}
CTRAIN=${CTRAIN:-$BUILD/ctrain}
DIR=${DIR:-runs/bench-gpu-parallel}
dp=1 tp=1 sp=false zero=0 steps=8 cfg=configs/gpt2-124m.yaml sets=()
while [ $# -gt 0 ]; do
    case $1 in
    --dp) dp=$2; shift 2 ;;
    --tp) tp=$2; shift 2 ;;
    --sp) sp=true; shift ;;
    --zero) zero=1; shift ;;
    --steps) steps=$2; shift 2 ;;
    --config) cfg=$2; shift 2 ;;
    --set) sets+=(--set "$2"); shift 2 ;;
    *) echo "usage: $0 [--dp N] [--tp N] [--sp] [--zero] [--steps N] [--config CFG] [--set k=v]..." >&2
       exit 2 ;;
    esac
done
np=$((dp * tp))
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$DIR"
vocab=$(grep -o 'vocab_size: *[0-9]*' "$cfg" | grep -o '[0-9]*$' || echo 50257)
python3 - "$DIR/random_000000.bin" "${vocab:-50257}" <<'PY'
import array, random, struct, sys
n = 1 << 22
rng = random.Random(0)
tok = array.array("H", (rng.randrange(int(sys.argv[2])) for _ in range(n)))
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<256i", 20240520, 1, n, *([0] * 253)))
    f.write(tok.tobytes())
PY
name="dp${dp}tp${tp}"
[ "$sp" = true ] && name="${name}sp"
[ "$zero" = 1 ] && name="${name}zero"
rm -rf "${DIR:?}/$name"
set +e
mpirun -np "$np" --bind-to none "$CTRAIN" train "$cfg" --set model.device=cuda \
    --set data.train="$DIR/random_*.bin" --set data.val= --set train.run_dir="$DIR/$name" \
    --set train.steps="$steps" --set train.log_every=1 --set train.profile_ops=true \
    --set parallel.dp="$dp" --set parallel.tp="$tp" --set parallel.sp="$sp" \
    --set optim.zero="$zero" --set checkpoint.every=0 --set eval.every=0 \
    --set eval.sample_tokens=0 "${sets[@]}" > "$DIR/$name.log" 2>&1
rc=$?
set -e
if [ $rc -ne 0 ]; then
    grep -q "no CUDA device" "$DIR/$name.log" && { echo "no CUDA device: skipped" >&2; exit 77; }
    tail -5 "$DIR/$name.log" >&2
    exit $rc
fi
device=$(grep -o 'CUDA device 0: [^(]*' "$DIR/$name.log" | head -1 | cut -d: -f2- || true)
python3 - "$DIR/$name/metrics.jsonl" "$name" "$np" "${device:- ?}" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if '"loss"' in l]
rows = rows[2:] if len(rows) > 3 else rows
med = lambda k: statistics.median(r.get(k, 0.0) for r in rows)
mfu = f"{100 * med('mfu'):.1f}%" if "mfu" in rows[-1] else "-"
print(f"{sys.argv[2]} ({sys.argv[3]} ranks,{sys.argv[4].rstrip()}): {med('ms'):.1f} ms/step, "
      f"{med('tok_s'):.0f} tokens/s, MFU {mfu}, TP comm {med('tp_comm_ms'):.2f} ms/step, "
      f"DP comm {med('dp_comm_ms'):.2f} ms/step (overlapped), "
      f"peak device memory (rank 0) {max(r.get('device_mem_mib', 0) for r in rows):.0f} MiB")
PY
