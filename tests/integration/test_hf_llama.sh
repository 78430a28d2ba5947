#!/usr/bin/env bash
# Hugging Face LlamaForCausalLM interop. Random Llamas written by the test in
# Hugging Face layout (tests/integration/hf_llama.py: numpy, a vocabulary of
# 300, not a multiple of 128): (a) GQA, untied head, Llama 3 RoPE scaling,
# F32 in 3 shards with model.safetensors.index.json; (b) one key/value
# head, tied head, BF16 in one file. Each imports, and ctrain's logits equal
# an independent numpy forward within 1e-4; the export holds the same
# tensors, opens in the safetensors library, and a BF16 export -> import ->
# BF16 export round trip is byte-identical (sharded too). Fine-tuning: (a)
# imported, trained 20 steps on text, exported: the numpy forward of the
# export gives ctrain's logits and its last validation loss; model.init_from
# on the directory trains as resuming from its import does. Bad inputs
# fail naming the file and the key or tensor.
. "$(dirname "$0")/lib.sh"
python3 -c "import numpy, safetensors" 2>/dev/null || { echo "SKIP: needs numpy and safetensors"; exit 77; }
PY="python3 $(dirname "$0")/hf_llama.py"
printf '1 2 3\n5 100 7 299 2 9 11 0 64\n%s\n' "$(seq 10 49 | tr '\n' ' ')" > "$WORK/tokens.txt"

# DIR SEED L NH NKV C F V TIED LLAMA3 MAXT DTYPE SHARDS
$PY make "$WORK/a" 1 2 4 2 32 48 300 0 1 64 f32 3 || fail "make a"
$PY make "$WORK/b" 2 2 4 1 32 40 300 1 0 64 bf16 1 || fail "make b"
for v in a b; do
    out=$("$CTRAIN" import "$WORK/$v" "$WORK/imp_$v" 2>"$WORK/imp_$v.log") \
        || { fail "import $v: $(tail -3 "$WORK/imp_$v.log")"; continue; }
    [ "$out" = "$WORK/imp_$v/ckpt/step_00000000" ] && pass || fail "import $v printed '$out'"
    "$CTRAIN" export --format hf --dump-logits "$WORK/tokens.txt" "$WORK/logits_$v.bin" "$out" \
        "$WORK/exp_$v" > "$WORK/exp_$v.log" 2>&1 || { fail "export $v: $(tail -3 "$WORK/exp_$v.log")"; continue; }
    $PY forward "$WORK/$v" "$WORK/tokens.txt" "$WORK/logits_$v.bin" 1e-4 > "$WORK/fwd_$v.log" 2>&1 \
        && pass || fail "$v: numpy forward disagrees: $(cat "$WORK/fwd_$v.log")"
    cat "$WORK/fwd_$v.log"
    $PY same "$WORK/$v" "$WORK/exp_$v" > "$WORK/same_$v.log" 2>&1 && pass \
        || fail "$v: the export's tensors differ: $(cat "$WORK/same_$v.log")"
    $PY check "$WORK/exp_$v" > "$WORK/check_$v.log" 2>&1 && pass \
        || fail "$v: safetensors check: $(cat "$WORK/check_$v.log")"
done
grep -q '"tie_word_embeddings": true' "$WORK/exp_b/config.json" && pass || fail "b: not exported tied"
grep -q '"rope_type": "llama3", "factor": 8.0' "$WORK/exp_a/config.json" && pass || fail "a: rope_scaling"
grep -q "to $WORK/exp_a (Hugging Face LlamaForCausalLM, f32)" "$WORK/exp_a.log" && pass \
    || fail "export log line"

# BF16 round trips, one file and sharded, byte for byte
for v in a b; do
    for shard in 0 1; do
        d="$WORK/rt_${v}_$shard"
        opt=(); [ $shard = 1 ] && opt=(--shard-mib 0.02) # 20 KiB: several files
        "$CTRAIN" export --format hf --dtype bf16 "${opt[@]}" "$WORK/imp_$v/ckpt/step_00000000" "$d.1" \
            > "$d.log" 2>&1 || { fail "bf16 export $v/$shard: $(tail -3 "$d.log")"; continue; }
        "$CTRAIN" import "$d.1" "$d.imp" > /dev/null 2>>"$d.log" || { fail "bf16 import $v/$shard"; continue; }
        "$CTRAIN" export --format hf --dtype bf16 "${opt[@]}" "$d.imp/ckpt/step_00000000" "$d.2" \
            >> "$d.log" 2>&1 || { fail "bf16 re-export $v/$shard"; continue; }
        diff -r "$d.1" "$d.2" > /dev/null && pass || fail "bf16 round trip $v/$shard is not byte-identical"
        $PY check "$d.1" > /dev/null 2>&1 && pass || fail "bf16 $v/$shard: safetensors check"
    done
done
ls "$WORK/rt_a_1.1" | grep -q "^model-00002-of-" && [ -f "$WORK/rt_a_1.1/model.safetensors.index.json" ] \
    && pass || fail "--shard-mib 0.02 did not shard: $(ls "$WORK/rt_a_1.1")"
$PY same "$WORK/b" "$WORK/rt_b_0.1" > /dev/null 2>&1 && pass || fail "b: bf16 export changed values"

# fine-tuning round trip: import, train 20 steps, export, numpy
make_corpus "$WORK/data" 300 || { finish; exit 1; }
write_config "$WORK/ft.yaml" "$WORK/data" "$WORK/ft" 300
sed -i 's/^model: .*$/model: {arch: llama, n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, ffn_dim: 48, max_seq_len: 64, vocab_size: 300, tie_embeddings: 0, rope_theta: 500000, rope_scaling: llama3, rope_factor: 8, rope_low_freq_factor: 1, rope_high_freq_factor: 4, rope_original_max_seq_len: 16, norm_eps: 1e-5}/; s/every: 5, tokens: 1024/every: 20, tokens: 128/' "$WORK/ft.yaml"
"$CTRAIN" train "$WORK/ft.yaml" --set checkpoint.resume="$WORK/imp_a/ckpt/step_00000000" > "$WORK/ft.log" 2>&1 \
    || fail "fine-tune: $(tail -3 "$WORK/ft.log")"
"$CTRAIN" export --format hf --dump-logits "$WORK/tokens.txt" "$WORK/logits_ft.bin" "$WORK/ft" "$WORK/exp_ft" \
    > "$WORK/exp_ft.log" 2>&1 || fail "export fine-tuned: $(tail -3 "$WORK/exp_ft.log")"
$PY forward "$WORK/exp_ft" "$WORK/tokens.txt" "$WORK/logits_ft.bin" 1e-4 > "$WORK/fwd_ft.log" 2>&1 \
    && pass || fail "fine-tuned: numpy forward disagrees: $(cat "$WORK/fwd_ft.log")"
val=$(grep -o '"step":20,"val_loss":[^}]*' "$WORK/ft/metrics.jsonl" | cut -d: -f3)
[ -n "$val" ] && $PY valloss "$WORK/exp_ft" "$(ls "$WORK"/data/c_val_*.bin | head -1)" 32 4 "$val" 1e-5 \
    > "$WORK/val.log" 2>&1 && pass || fail "fine-tuned: validation loss: $val, $(cat "$WORK/val.log")"
cat "$WORK/val.log"

# model.init_from takes the Hugging Face directory itself: the same run as
# resuming from its import, loss for loss; a config of another shape is
# refused naming the key
for how in init res; do
    opt=(--set checkpoint.resume="$WORK/imp_a/ckpt/step_00000000")
    [ $how = init ] && opt=(--set model.init_from="$WORK/a")
    "$CTRAIN" train "$WORK/ft.yaml" --set train.run_dir="$WORK/ft_$how" --set train.steps=3 "${opt[@]}" \
        > "$WORK/ft_$how.log" 2>&1 || fail "init_from ($how): $(tail -3 "$WORK/ft_$how.log")"
done
grep -q "initial weights from $WORK/a (Hugging Face)" "$WORK/ft_init.log" && pass || fail "init_from log line"
a=$(grep -o '"step":[0-9]*,"\(loss\|val_loss\)":[^,}]*' "$WORK/ft_init/metrics.jsonl")
b=$(grep -o '"step":[0-9]*,"\(loss\|val_loss\)":[^,}]*' "$WORK/ft_res/metrics.jsonl")
[ -n "$a" ] && [ "$a" = "$b" ] && pass || fail "init_from and resume-from-import differ: $a / $b"
expect_fail "init_from shape" "config.json gives model.n_kv_head = 2, the config 4" "HINT: set model.n_kv_head: 2" -- \
    "$CTRAIN" train "$WORK/ft.yaml" --set train.run_dir="$WORK/ft_bad" --set model.n_kv_head=4 \
    --set model.init_from="$WORK/a"

# bad inputs: the file and the key or tensor named
mkdir -p "$WORK/bad" && cp "$WORK/a/"* "$WORK/bad/"
sed -i 's/"model_type": "llama"/"model_type": "qwen2"/' "$WORK/bad/config.json"
expect_fail "unsupported model_type" "$WORK/bad/config.json: model_type 'qwen2' is not supported" -- \
    "$CTRAIN" import "$WORK/bad" "$WORK/x"
cp "$WORK/a/config.json" "$WORK/bad/"
sed -i 's/"intermediate_size": 48/"intermediate_size": 50/' "$WORK/bad/config.json"
expect_fail "shape mismatch" "model.layers.0.mlp.gate_proj.weight' has shape (48, 32), config.json implies (50, 32)" -- \
    "$CTRAIN" import "$WORK/bad" "$WORK/x"
cp "$WORK/a/config.json" "$WORK/bad/"
sed -i 's/"attention_bias": false/"attention_bias": true/' "$WORK/bad/config.json"
expect_fail "biases" "config.json: attention_bias is true" -- "$CTRAIN" import "$WORK/bad" "$WORK/x"
cp "$WORK/a/config.json" "$WORK/bad/"
sed -i 's/"rope_type": "llama3"/"rope_type": "yarn"/' "$WORK/bad/config.json"
expect_fail "rope scaling" "rope_scaling of rope_type 'yarn' is not supported" -- "$CTRAIN" import "$WORK/bad" "$WORK/x"
cp "$WORK/a/config.json" "$WORK/bad/"
rm "$WORK/bad/model-00002-of-00003.safetensors"
expect_fail "missing shard" "model.safetensors.index.json lists $WORK/bad/model-00002-of-00003.safetensors, which is missing" -- \
    "$CTRAIN" import "$WORK/bad" "$WORK/x"
cp "$WORK/a/"* "$WORK/bad/"
sed -i 's/"model.norm.weight"/"model.norm2.weight"/' "$WORK/bad/model.safetensors.index.json"
expect_fail "index names an unknown tensor" "weight_map names unknown tensor 'model.norm2.weight'" -- \
    "$CTRAIN" import "$WORK/bad" "$WORK/x"
cp "$WORK/a/model.safetensors.index.json" "$WORK/bad/"
sed -i 's/"num_hidden_layers": 2/"num_hidden_layers": 3/' "$WORK/bad/config.json"
expect_fail "missing layer" "weight_map has no entry for tensor 'model.layers.2.input_layernorm.weight'" -- \
    "$CTRAIN" import "$WORK/bad" "$WORK/x"
rm -rf "$WORK/bad" && mkdir -p "$WORK/bad" && cp "$WORK/b/"* "$WORK/bad/"
sed -i 's/"tie_word_embeddings": true/"tie_word_embeddings": false/' "$WORK/bad/config.json"
expect_fail "untied head missing" "model.safetensors: missing tensor 'lm_head.weight'" -- \
    "$CTRAIN" import "$WORK/bad" "$WORK/x"
finish
