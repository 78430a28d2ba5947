#!/usr/bin/env bash
# Hugging Face interop: export a trained checkpoint as GPT2LMHeadModel
# safetensors, import it back and export again (byte-identical files, equal
# parameters), export a TP=2 layout of the same checkpoint (byte-identical),
# sample and train from the import, reject malformed inputs with a message
# naming the file or tensor, and (with numpy + safetensors) check ctrain's
# logits against an independent numpy forward pass over the exported file.
. "$(dirname "$0")/lib.sh"
CMP="python3 $(dirname "$0")/compare.py"
make_corpus "$WORK/data" 512 || { finish; exit 1; }
write_config "$WORK/cfg.yaml" "$WORK/data" "$WORK/run" 512
"$CTRAIN" train "$WORK/cfg.yaml" > "$WORK/train.log" 2>&1 || fail "train: $(tail -3 "$WORK/train.log")"
CKPT="$WORK/run/ckpt/step_00000020"
[ -f "$CKPT/manifest.yaml" ] && pass || { fail "no checkpoint at step 20"; finish; exit 1; }

# export -> import -> export round trip
"$CTRAIN" export --format hf "$CKPT" "$WORK/hf1" > "$WORK/export1.log" 2>&1 \
    || fail "export: $(tail -3 "$WORK/export1.log")"
for f in model.safetensors config.json; do [ -s "$WORK/hf1/$f" ] && pass || fail "export wrote no $f"; done
out=$("$CTRAIN" import "$WORK/hf1" "$WORK/imp" --set eval.tokenizer="$WORK/data/tok.bpe" 2>"$WORK/import.log") \
    || fail "import: $(tail -3 "$WORK/import.log")"
IMP="$WORK/imp/ckpt/step_00000000"
[ "$out" = "$IMP" ] && pass || fail "import printed '$out', want $IMP"
"$CTRAIN" export --format hf "$IMP" "$WORK/hf2" > "$WORK/export2.log" 2>&1 \
    || fail "re-export: $(tail -3 "$WORK/export2.log")"
cmp -s "$WORK/hf1/model.safetensors" "$WORK/hf2/model.safetensors" && pass \
    || fail "re-exported model.safetensors differs"
$CMP params "$CKPT/params_tp0.bin" "$IMP/params_tp0.bin" 0 0 > "$WORK/cmp.log" 2>&1 && pass \
    || fail "imported params differ: $(cat "$WORK/cmp.log")"

# a TP=2 layout of the same checkpoint exports the same file
"$CTRAIN" reshard --tp 2 "$CKPT" "$WORK/tp2" > /dev/null 2>&1 || fail "reshard --tp 2"
"$CTRAIN" export --format hf "$WORK/tp2" "$WORK/hf_tp2" > "$WORK/export_tp2.log" 2>&1 \
    || fail "export tp2: $(tail -3 "$WORK/export_tp2.log")"
cmp -s "$WORK/hf1/model.safetensors" "$WORK/hf_tp2/model.safetensors" && pass \
    || fail "export of the tp=2 checkpoint differs from tp=1"

# the import samples (run dir and tokenizer from --set) and trains on
out=$("$CTRAIN" sample "$WORK/imp" --tokens 16 --seed 3 2>&1) && [ -n "$out" ] && pass \
    || fail "sample on the import: $out"
"$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/cont" --set checkpoint.resume="$IMP" \
    --set train.steps=2 > "$WORK/cont.log" 2>&1 && pass || fail "train from import: $(tail -3 "$WORK/cont.log")"

# model.init_from on the Hugging Face directory trains as resuming from its import
"$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/init" --set model.init_from="$WORK/hf1" \
    --set train.steps=2 > "$WORK/init.log" 2>&1 || fail "train from init_from: $(tail -3 "$WORK/init.log")"
a=$(grep -o '"step":[0-9]*,"\(loss\|val_loss\)":[^,}]*' "$WORK/init/metrics.jsonl")
b=$(grep -o '"step":[0-9]*,"\(loss\|val_loss\)":[^,}]*' "$WORK/cont/metrics.jsonl")
[ -n "$a" ] && [ "$a" = "$b" ] && pass || fail "init_from differs from resuming the import: $a / $b"

# malformed inputs
expect_fail "export no format" "--format hf" -- "$CTRAIN" export "$CKPT" "$WORK/x"
expect_fail "import missing dir" "$WORK/nope/config.json" -- "$CTRAIN" import "$WORK/nope" "$WORK/x"
mkdir -p "$WORK/bad"
cp "$WORK/hf1/config.json" "$WORK/bad/"
printf 'garbage!' > "$WORK/bad/model.safetensors"
expect_fail "bad header" "$WORK/bad/model.safetensors" "header" -- "$CTRAIN" import "$WORK/bad" "$WORK/x"
# edit_header HOW: a copy of hf1's file whose JSON header is edited: "frac"
# and "neg" change the first tensor's end offset, "dup" repeats its entry.
edit_header() {
    python3 - "$WORK/hf1/model.safetensors" "$WORK/bad/model.safetensors" "$1" <<'PY'
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
k = next(k for k in h if k != "__metadata__")
if sys.argv[3] == "frac": h[k]["data_offsets"][1] += 0.5
if sys.argv[3] == "neg": h[k]["data_offsets"][0] = -4
text = json.dumps(h)
if sys.argv[3] == "dup": text = text[:-1] + ", %s: %s}" % (json.dumps(k), json.dumps(h[k]))
hb = text.encode()
open(sys.argv[2], "wb").write(struct.pack("<Q", len(hb)) + hb + b[8 + n:])
PY
}
edit_header frac
expect_fail "fractional offset" "malformed safetensors JSON header near byte" -- "$CTRAIN" import "$WORK/bad" "$WORK/x"
edit_header neg
expect_fail "negative offset" "malformed safetensors JSON header near byte" -- "$CTRAIN" import "$WORK/bad" "$WORK/x"
edit_header dup
expect_fail "repeated tensor" "appears twice" -- "$CTRAIN" import "$WORK/bad" "$WORK/x"
cp "$WORK/hf1/model.safetensors" "$WORK/bad/"
sed -i 's/"n_layer": 2/"n_layer": 3/' "$WORK/bad/config.json"
expect_fail "missing layer" "missing tensor 'transformer.h.2." -- "$CTRAIN" import "$WORK/bad" "$WORK/x"
sed -i 's/"n_layer": 3/"n_layer": 1/' "$WORK/bad/config.json"
expect_fail "extra layer" "unknown tensor 'transformer.h.1." -- "$CTRAIN" import "$WORK/bad" "$WORK/x"
sed -i 's/"n_layer": 1/"n_layer": 2/; s/"vocab_size": 512/"vocab_size": 500/' "$WORK/bad/config.json"
expect_fail "shape mismatch" "transformer.wte.weight" "shape (512, 32)" "(500, 32)" -- \
    "$CTRAIN" import "$WORK/bad" "$WORK/x"
expect_fail "set model dim" "config.json" -- "$CTRAIN" import "$WORK/hf1" "$WORK/x" --set model.n_layer=4

# logits against an independent numpy forward pass
printf '1 2 3\n5 100 7 300 2 9 11 511 0 64\n%s\n' "$(seq 10 41 | tr '\n' ' ')" > "$WORK/tokens.txt"
"$CTRAIN" export --format hf --dump-logits "$WORK/tokens.txt" "$WORK/logits.bin" "$IMP" "$WORK/hf3" \
    > "$WORK/dump.log" 2>&1 || fail "dump logits: $(tail -3 "$WORK/dump.log")"
if python3 -c "import numpy, safetensors.numpy" 2>/dev/null; then
    python3 "$(dirname "$0")/hf_forward.py" "$WORK/hf1" "$WORK/tokens.txt" "$WORK/logits.bin" 1e-4 \
        > "$WORK/fwd.log" 2>&1 && pass || fail "numpy forward disagrees: $(cat "$WORK/fwd.log")"
    cat "$WORK/fwd.log"
    # an F16 file (HF's usual half-precision export) imports to within rounding
    mkdir -p "$WORK/hf16" && cp "$WORK/hf1/config.json" "$WORK/hf16/"
    python3 -c "import sys; from safetensors.numpy import load_file, save_file; import numpy as np
save_file({k: v.astype(np.float16) for k, v in load_file(sys.argv[1]).items()}, sys.argv[2], {'format': 'pt'})" \
        "$WORK/hf1/model.safetensors" "$WORK/hf16/model.safetensors" || fail "writing an F16 file"
    "$CTRAIN" import "$WORK/hf16" "$WORK/imp16" > /dev/null 2>"$WORK/imp16.log" \
        || fail "import F16: $(tail -3 "$WORK/imp16.log")"
    $CMP params "$WORK/imp16/ckpt/step_00000000/params_tp0.bin" "$IMP/params_tp0.bin" 1e-3 2e-3 \
        > "$WORK/cmp16.log" 2>&1 && pass || fail "F16 import: $(cat "$WORK/cmp16.log")"
else
    echo "SKIP: numpy forward check (pip install numpy safetensors)"
fi
finish
