#!/usr/bin/env bash
# `ctrain plot`: trains two tiny runs (different lr), plots one and both, and
# checks the SVG is well-formed XML whose series hold one point per metric
# line, that every label, line and point lies inside the viewBox, that the
# legend names (XML-escaped) both runs, and that a missing run
# dir, an empty metrics file and malformed lines are reported by name.
. "$(dirname "$0")/lib.sh"
make_corpus "$WORK/data" 300 || { finish; exit 1; }
write_config "$WORK/cfg.yaml" "$WORK/data" "$WORK/run_a" 300
RUN_A="$WORK/run_a"
RUN_B="$WORK/run <b> & 'c'" # a name that needs escaping
"$CTRAIN" train "$WORK/cfg.yaml" --set eval.tokens=0 >"$WORK/train_a.log" 2>&1 \
    || fail "train run_a: $(tail -5 "$WORK/train_a.log")"
"$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$RUN_B" --set optim.lr=1.0e-3 \
    --set train.peak_tflops=1 >"$WORK/train_b.log" 2>&1 || fail "train run_b: $(tail -5 "$WORK/train_b.log")"

# Validation reads the whole held-out set by default (run_a: eval.tokens 0),
# every (T+1)-token window at stride T of the val shard, or the first
# eval.tokens / T windows (run_b: 1024 tokens, 32 windows of 32).
ntok=$(python3 -c 'import struct,sys; print(struct.unpack("<3i", open(sys.argv[1],"rb").read(12))[2])' \
    "$WORK/data/c_val_000000.bin")
nwin=$(( (ntok - 1) / 32 ))
grep -qF "validation: $nwin windows of 32 tokens, the whole held-out set" "$WORK/train_a.log" && pass \
    || fail "run_a does not validate on all $nwin windows: $(grep validation: "$WORK/train_a.log")"
grep -qF "validation: the first 32 of $nwin held-out windows of 32 tokens (eval.tokens = 1024)" \
    "$WORK/train_b.log" && pass || fail "run_b's budget: $(grep validation: "$WORK/train_b.log")"

# On the CPU the metrics carry no GPU fields: no device_mem_mib ever, and an
# mfu only where train.peak_tflops gives a peak (run_b), on every step line.
grep -qE '"(mfu|device_mem_mib)"' "$RUN_A/metrics.jsonl" \
    && fail "CPU run_a's metrics carry GPU fields: $(grep -m1 '"loss"' "$RUN_A/metrics.jsonl")" || pass
grep -q '"device_mem_mib"' "$RUN_B/metrics.jsonl" && fail "CPU run_b's metrics carry device_mem_mib" || pass
n=$(grep -c '"mfu":' "$RUN_B/metrics.jsonl"); steps=$(grep -c '"loss"' "$RUN_B/metrics.jsonl")
[ "$n" -gt 0 ] && [ "$n" -eq "$steps" ] && pass || fail "run_b (peak_tflops 1): $n mfu fields in $steps steps"

# check_svg SVG RUN_INDEX METRICS: every series of run RUN_INDEX in SVG has
# as many points as METRICS has lines carrying that key.
check_svg() {
    python3 - "$@" <<'PY'
import json, sys, xml.etree.ElementTree as E
svg, idx, metrics = sys.argv[1], sys.argv[2], sys.argv[3]
root = E.parse(svg).getroot()
ns = "{http://www.w3.org/2000/svg}"
lines = [json.loads(l) for l in open(metrics) if l.strip()]
bad = 0
for key in ("loss", "val_loss", "lr", "tok_s"):
    want = sum(1 for l in lines if key in l)
    el = [e for e in root.iter(ns + "polyline") if e.get("id") == f"{key}-{idx}"]
    if len(el) != 1:
        print(f"{svg}: want one polyline id={key}-{idx}, found {len(el)}"); bad = 1; continue
    got = len(el[0].get("points").split())
    if want == 0 or got != want:
        print(f"{svg}: {key}-{idx} has {got} points, metrics.jsonl has {want} lines"); bad = 1
ticks = [e for e in root.iter(ns + "text") if e.get("class") in ("xtick", "ytick")]
if len(ticks) < 6:
    print(f"{svg}: only {len(ticks)} tick labels"); bad = 1
# Everything drawn lies inside the viewBox; a text's y is its baseline, and
# 12 px sans-serif descends about 3 px below it.
_, _, vw, vh = (float(v) for v in root.get("viewBox").split())
for e in root.iter():
    tag = e.tag[len(ns):]
    pts = []
    if tag == "text": pts = [(float(e.get("x")), float(e.get("y")) + 3)]
    elif tag == "line": pts = [(float(e.get(f"x{i}")), float(e.get(f"y{i}"))) for i in (1, 2)]
    elif tag == "circle": pts = [(float(e.get("cx")), float(e.get("cy")))]
    elif tag == "polyline": pts = [tuple(map(float, p.split(","))) for p in e.get("points").split()]
    out = [(x, y) for x, y in pts if not (0 <= x <= vw and 0 <= y <= vh)]
    if out:
        print(f"{svg}: <{tag} {e.get('class') or e.get('id') or ''}> at {out[0]} lies outside "
              f"the {vw:g}x{vh:g} viewBox"); bad = 1
sys.exit(bad)
PY
}

# legend_names SVG: the legend entries, one per line (XML unescaped).
legend_names() {
    python3 -c '
import sys, xml.etree.ElementTree as E
ns = "{http://www.w3.org/2000/svg}"
for e in E.parse(sys.argv[1]).getroot().iter(ns + "text"):
    if (e.get("id") or "").startswith("legend-"): print(e.text)' "$1"
}

# One run: default output path, 20 steps, val every 5.
if "$CTRAIN" plot "$RUN_A" >"$WORK/plot1.log" 2>&1 && [ -s "$RUN_A/metrics.svg" ]; then
    pass
    n=$(grep -c '"loss"' "$RUN_A/metrics.jsonl")
    [ "$n" -eq 20 ] && pass || fail "run_a logged $n train steps, want 20"
    n=$(grep -c '"val_loss"' "$RUN_A/metrics.jsonl")
    [ "$n" -ge 4 ] && pass || fail "run_a logged $n val lines, want >= 4"
    check_svg "$RUN_A/metrics.svg" 0 "$RUN_A/metrics.jsonl" && pass || fail "single-run svg"
else
    fail "plot run_a: $(tail -5 "$WORK/plot1.log")"
fi

# Two runs, explicit output: both series sets and both names in the legend.
if "$CTRAIN" plot "$RUN_A" "$RUN_B" -o "$WORK/both.svg" >"$WORK/plot2.log" 2>&1; then
    pass
    check_svg "$WORK/both.svg" 0 "$RUN_A/metrics.jsonl" && pass || fail "two-run svg, run 0"
    check_svg "$WORK/both.svg" 1 "$RUN_B/metrics.jsonl" && pass || fail "two-run svg, run 1"
    names=$(legend_names "$WORK/both.svg")
    grep -qxF "$RUN_A" <<<"$names" && pass || fail "legend lacks $RUN_A: $names"
    grep -qxF "$RUN_B" <<<"$names" && pass || fail "legend lacks $RUN_B: $names"
    grep -qF '&lt;b&gt; &amp;' "$WORK/both.svg" && pass || fail "run name not XML-escaped"
else
    fail "plot two runs: $(tail -5 "$WORK/plot2.log")"
fi

# Malformed lines are skipped with a warning naming file:line.
mkdir -p "$WORK/torn"
{ head -3 "$RUN_A/metrics.jsonl"; echo '{"step":4,"loss":'; echo 'not json'; } > "$WORK/torn/metrics.jsonl"
out=$("$CTRAIN" plot "$WORK/torn" 2>&1)
if [ $? -eq 0 ] && grep -qF "$WORK/torn/metrics.jsonl:4" <<<"$out" && grep -qF "$WORK/torn/metrics.jsonl:5" <<<"$out"; then
    python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$WORK/torn/metrics.svg" \
        && pass || fail "torn metrics svg is not XML"
else
    fail "torn metrics lines: $out"
fi

# Errors name the file and exit non-zero; usage errors exit 2.
expect_fail "missing run dir" "$WORK/nope/metrics.jsonl" -- "$CTRAIN" plot "$RUN_A" "$WORK/nope"
mkdir -p "$WORK/empty" && : > "$WORK/empty/metrics.jsonl"
expect_fail "empty metrics" "$WORK/empty/metrics.jsonl" "no metric lines" -- "$CTRAIN" plot "$WORK/empty"
"$CTRAIN" plot >/dev/null 2>&1; [ $? -eq 2 ] && pass || fail "plot without RUN_DIR should exit 2"
"$CTRAIN" plot --help | grep -qF "usage: ctrain plot" && pass || fail "plot --help"
finish
