#!/usr/bin/env bash
# `ctrain plan`: the memory and FLOP plan of a layout, printed without a GPU,
# MPI or data (configs/gpt2-124m.yaml names shards that are not there).
# Output format (header lines, one table per path with MiB to one decimal
# and a byte total, ranks of one shape collapsed), model.device choosing the
# path, --set changing the layout (TP shrinks the device total, DP x TP
# ranks collapse), --sp, --detail, --gpu-mem, and layouts that fail with a
# message naming the setting and the fix. Runs in well under a second.
. "$(dirname "$0")/lib.sh"
CFG="$SRC/configs/gpt2-124m.yaml"

# bytes of the total line of the table whose title starts with $2
total_bytes() { awk -v t="$2" 'index($0, t) == 1 {on = 1} on && $1 == "total" {gsub(/[()]/, "", $4); print $4; exit}' <<<"$1"; }
kind_mib() { awk -v t="$2" -v k="$3" 'index($0, t) == 1 {on = 1} on && $1 == k {print $2; exit}' <<<"$1"; }

out=$("$CTRAIN" plan "$CFG" 2>&1); rc=$?
[ $rc -eq 0 ] && pass || fail "plan exits $rc: $(tail -3 <<<"$out")"
for l in "^plan of .*gpt2-124m.yaml, per rank" \
         "^model   gpt2 L=12 NH=12 C=768 V=50257 (padded 50304) maxT=1024: 124.48M parameters$" \
         "^layout  dp=1 x tp=1 = 1 rank, optim.zero=0, model.recompute=gelu, sp off$" \
         "^batch   micro-batch 8 x 1024 = 8192 tokens, 64 accum x 1 dp = 524288 tokens per step$" \
         "^flops   .* x 524288 tokens = .* model FLOPs per step" \
         "^GPU path, device memory: rank 0 (1 of 1)$" "^GPU path, host memory: rank 0 (1 of 1)$" \
         "^CPU path, host memory: rank 0 (1 of 1)$" \
         "^  weights  *[0-9]*\.[0-9] MiB  fp32 master + bf16 copy$" \
         "^  activations  *[0-9]*\.[0-9] MiB  recompute gelu, sp off, micro-batch 8 x 1024$" \
         "^  total  *[0-9]*\.[0-9] MiB  ([0-9]* bytes)$" "^    recompute ln_gelu " \
         "^  not planned: CUDA context"; do
    grep -q -- "$l" <<<"$out" && pass || fail "plan output lacks /$l/"
done
# the kinds add up to the total, in MiB to one decimal
sum=$(awk '/^GPU path, device memory/ {on = 1} on && /^  [a-z]+ +[0-9.]+ MiB/ {if ($1 == "total") {print s, $2; exit} s += $2}' <<<"$out")
python3 -c "import sys; s, t = map(float, sys.argv[1:]); sys.exit(abs(s - t) > 0.3)" $sum && pass \
    || fail "device kinds do not add up to the total: $sum"
# 124M parameters: fp32 master + bf16 copy = (P + 1024) * 4 + P * 2 bytes
w=$(kind_mib "$out" "GPU path, device memory" weights)
[ "$w" = "712.3" ] && pass || fail "GPU weights $w MiB, want 712.3"
g1=$(total_bytes "$out" "GPU path, device memory")

out=$("$CTRAIN" plan "$CFG" --set model.device=cuda 2>&1) && ! grep -q "^CPU path" <<<"$out" \
    && grep -q "^GPU path, device" <<<"$out" && pass || fail "model.device=cuda plans the CPU path"
out=$("$CTRAIN" plan "$CFG" --set model.device=cpu 2>&1) && ! grep -q "^GPU path" <<<"$out" \
    && grep -q "^CPU path, host" <<<"$out" && pass || fail "model.device=cpu plans the GPU path"

# --set reaches the layout: DP x TP x ZeRO, ranks of one shape in one table
out=$("$CTRAIN" plan "$CFG" --set parallel.dp=2 --set parallel.tp=2 --set optim.zero=1 2>&1); rc=$?
[ $rc -eq 0 ] && pass || fail "dp2 tp2 zero: exit $rc: $(tail -3 <<<"$out")"
grep -q "^GPU path, device memory: ranks 0-3 (4 of 4)$" <<<"$out" && pass || fail "ranks do not collapse"
grep -q "^layout  dp=2 x tp=2 = 4 ranks, optim.zero=1" <<<"$out" && pass || fail "layout line at dp2 tp2"
grep -q "^model .*: [0-9.]*M parameters, [0-9.]*M on each TP rank$" <<<"$out" && pass || fail "no TP shard size"
grep -q "ZeRO-1: 1/2 of them" <<<"$out" && pass || fail "no ZeRO line"
g2=$(total_bytes "$out" "GPU path, device memory")
[ -n "$g1" ] && [ -n "$g2" ] && [ "$g2" -lt "$g1" ] && pass || fail "TP=2 device total $g2 not below TP=1's $g1"
grep -q "^    recompute gelu  *\* *[0-9.]* *[0-9.]*$" <<<"$out" && pass || fail "no sp on column at tp=2"

# --sp and --detail: the SP regions split, every buffer listed with its tag
out=$("$CTRAIN" plan "$CFG" --set parallel.tp=2 --set model.device=cuda --sp --detail 2>&1); rc=$?
[ $rc -eq 0 ] && grep -q "sp on$" <<<"$(grep '^layout' <<<"$out")" && pass || fail "--sp: exit $rc"
grep -q "activations: qkv  *(L, N, 3C/tp) bf16  *[0-9.]* MiB \[tp\]$" <<<"$out" && pass || fail "--detail: qkv row"
grep -q "activations: LayerNorm inputs  *(2L+1, N/tp, C) bf16  *[0-9.]* MiB \[sp\]$" <<<"$out" && pass || fail "--detail: LayerNorm inputs row"
grep -q "activations: sp all-gather" <<<"$out" && pass || fail "--detail: no SP gather buffer"
a_sp=$(kind_mib "$out" "GPU path, device memory" activations)
a_nosp=$("$CTRAIN" plan "$CFG" --set parallel.tp=2 --set model.device=cuda 2>&1 | awk '$1 == "activations" {print $2; exit}')
python3 -c "import sys; sys.exit(not float(sys.argv[1]) < float(sys.argv[2]))" "$a_sp" "$a_nosp" && pass \
    || fail "SP activations $a_sp MiB not below $a_nosp"

# --gpu-mem
"$CTRAIN" plan "$CFG" --set model.device=cuda --gpu-mem 80 | grep -q "^  fits a 80.0 GiB GPU: yes" && pass \
    || fail "--gpu-mem 80"
"$CTRAIN" plan "$CFG" --set model.device=cuda --gpu-mem 2 | grep -q "^  fits a 2.0 GiB GPU: no" && pass \
    || fail "--gpu-mem 2"

# layouts that cannot run fail with the setting and the fix
expect_fail "n_head over tp" "model.n_head = 12" "parallel.tp = 5" "HINT" -- \
    "$CTRAIN" plan "$CFG" --set parallel.tp=5
expect_fail "sp over seq_len" "train.seq_len = 1000" "HINT" -- \
    "$CTRAIN" plan "$CFG" --set parallel.tp=16 --set model.n_head=16 --set train.seq_len=1000 \
    --set train.batch_tokens=0 --sp
expect_fail "GPU head size" "head sizes up to 128" "model.device=cpu" -- \
    "$CTRAIN" plan "$CFG" --set model.n_head=4
"$CTRAIN" plan "$CFG" --set model.n_head=4 --set model.device=cpu >/dev/null 2>&1 && pass \
    || fail "head size 192 on the CPU path"
out=$("$CTRAIN" plan "$CFG" --set model.device=cpu --sp 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q "^ctrain plan: --sp plans the GPU path" <<<"$out" && pass || fail "--sp on the CPU: exit $rc"
out=$("$CTRAIN" plan "$CFG" --gpu-mem=0 2>&1); rc=$?
[ $rc -eq 2 ] && grep -q -- "--gpu-mem: expected a number above 0" <<<"$out" && pass || fail "--gpu-mem=0: exit $rc"
finish
