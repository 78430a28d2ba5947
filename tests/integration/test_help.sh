#!/usr/bin/env bash
# Help texts tell the truth, cheaply: `ctrain --help` names every command
# and every `tokenize` subcommand, each of which has a working --help (exit 0,
# usage on stdout); `sample` says it takes a run directory too; and
# bench_cpu --help prints its usage instead of benchmarking, while bad
# arguments exit 2.
. "$(dirname "$0")/lib.sh"
BENCH_CPU=${CT_BENCH_CPU:-$(dirname "$CTRAIN")/bench/bench_cpu}

top=$("$CTRAIN" --help) && pass || fail "ctrain --help exits non-zero"
# the commands are the first words of the indented lines after "commands:"
cmds=$(sed -n '/^commands:/,/^$/p' <<<"$top" | grep -E '^  [a-z]' | awk '{print $1}')
[ "$(wc -w <<<"$cmds")" -ge 8 ] && pass || fail "ctrain --help lists too few commands: $cmds"
for c in $cmds; do
    out=$("$CTRAIN" "$c" --help 2>/dev/null) && grep -q "^usage: ctrain $c" <<<"$out" && pass \
        || fail "ctrain $c --help: $(head -2 <<<"$out")"
done
# each tokenize subcommand that `tokenize --help` lists is named at the top level
tok=$("$CTRAIN" tokenize --help)
subs=$(sed -n '/^commands:/,/^$/p' <<<"$tok" | grep -E '^  [a-z]' | awk '{print $1}')
[ "$(wc -w <<<"$subs")" -ge 5 ] && pass || fail "tokenize --help lists too few commands: $subs"
tline=$(grep -A1 '^  tokenize' <<<"$top" | tr '\n' ' ')
for s in $subs; do
    grep -qw "$s" <<<"$tline" && pass || fail "ctrain --help's tokenize line lacks '$s': $tline"
    out=$("$CTRAIN" tokenize "$s" --help 2>/dev/null) && grep -q "^usage: ctrain tokenize $s" <<<"$out" \
        && pass || fail "ctrain tokenize $s --help: $(head -2 <<<"$out")"
done
# sample takes a checkpoint or a run directory, and says so in both places
grep -q '^  sample CKPT_DIR|RUN_DIR' <<<"$top" && pass || fail "ctrain --help: sample line"
"$CTRAIN" sample --help | grep -q "^usage: ctrain sample CKPT_DIR|RUN_DIR" && pass || fail "sample --help"

# one parser for every command: an unknown option or a missing positional is
# exit 2 with "ctrain CMD: cause" and a HINT naming CMD --help, and --name=VALUE
# works wherever --name VALUE does
for c in $(sed 's/\btokenize\b//' <<<"$cmds") $(for s in $subs; do echo "tokenize_$s"; done); do
    c=${c/_/ }
    out=$("$CTRAIN" $c --no-such-option x 2>&1 >/dev/null); rc=$?
    [ $rc -eq 2 ] && grep -q "^ctrain $c: unknown option '--no-such-option'" <<<"$out" \
        && grep -q "^---> HINT: run 'ctrain $c --help'" <<<"$out" && pass \
        || fail "ctrain $c --no-such-option: exit $rc: $(head -2 <<<"$out")"
done
for c in train sample reshard plot doctor plan export import; do
    out=$("$CTRAIN" $c --tp=2 --format=hf 2>&1 >/dev/null); rc=$?
    [ $rc -eq 2 ] && grep -q "^ctrain $c: " <<<"$out" && pass || fail "ctrain $c (no positionals): exit $rc"
done
out=$("$CTRAIN" train --stop-at=0 x.yaml 2>&1); [ $? -eq 2 ] && grep -q -- "--stop-at: expected an integer" <<<"$out" \
    && pass || fail "train --stop-at=0: $out"
out=$("$CTRAIN" sample --temperature=-1 dir 2>&1); [ $? -eq 2 ] && grep -q -- "--temperature: expected a number" <<<"$out" \
    && pass || fail "sample --temperature=-1: $out"

# bench_cpu: --help is usage on stdout and no benchmark; bad arguments exit 2
if [ -x "$BENCH_CPU" ]; then
    out=$(timeout 10 "$BENCH_CPU" --help 2>&1); rc=$?
    [ $rc -eq 0 ] && grep -q "^usage: bench_cpu" <<<"$out" && ! grep -q "sgemm 2048" <<<"$out" \
        && pass || fail "bench_cpu --help: exit $rc: $(head -3 <<<"$out")"
    for args in "0" "4 x" "4 64 -1" "1 2 3 4 5 6 7 8" "4 64 1 2 3 64 100"; do
        out=$(timeout 10 "$BENCH_CPU" $args 2>&1); rc=$?
        [ $rc -eq 2 ] && grep -q "usage: bench_cpu" <<<"$out" && pass \
            || fail "bench_cpu $args: exit $rc, want 2: $(head -2 <<<"$out")"
    done
else
    fail "no bench_cpu at $BENCH_CPU"
fi
finish
