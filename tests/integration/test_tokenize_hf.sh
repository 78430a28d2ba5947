#!/usr/bin/env bash
# A Hugging Face tokenizer.json end to end, without Python: the committed
# Llama-3-style fixture (tests/data/hf/llama3.json, 431 tokens, written by
# tests/data/bpe_hf_reference.py with the tokenizers library) encodes
# Genesis and Exodus with <|begin_of_text|> before each document, decodes
# them back, trains a tiny model whose eval samples use it, and samples
# from the checkpoint with it given by path and by model directory.
. "$(dirname "$0")/lib.sh"
TOK="$SRC/tests/data/hf/llama3.json"
V=431
mkdir -p "$WORK/data" "$WORK/model"
bible -l0 Gen1:1-Exo40:38 </dev/null > "$WORK/data/text.txt"
"$CTRAIN" tokenize encode --tokenizer "$TOK" --doc-sep '\n\n' --val-every 10 --out "$WORK/data/c" \
    "$WORK/data/text.txt" > "$WORK/encode.log" 2>&1 && pass || fail "encode: $(tail -3 "$WORK/encode.log")"

# decode gives the text back, <|begin_of_text|> before each document (the
# training shard holds the documents that are not every 10th)
"$CTRAIN" tokenize decode --tokenizer "$TOK" "$WORK/data/c_val_000000.bin" > "$WORK/val.txt" 2>&1 \
    || fail "decode"
first=$(awk 'BEGIN{RS="\n\n"} NR==10 {print; exit}' "$WORK/data/text.txt")
head -c 300 "$WORK/val.txt" | grep -qF "<|begin_of_text|>$(head -c 60 <<<"$first")" && pass \
    || fail "decode: the first validation document is not the 10th: $(head -c 120 "$WORK/val.txt")"
n_docs=$(grep -o '<|begin_of_text|>' "$WORK/val.txt" | wc -l)
want=$(awk 'BEGIN{RS="\n\n"} NF {n++} END {print int(n / 10)}' "$WORK/data/text.txt")
[ "$n_docs" -eq "$want" ] && pass || fail "decode: $n_docs documents in the validation shard, want $want"

write_config "$WORK/cfg.yaml" "$WORK/data" "$WORK/run" $V
sed -i "s|^eval: .*|eval: {every: 10, tokens: 1024, sample_every: 10, sample_tokens: 8, tokenizer: \"$TOK\", prompt: \"And God said\"}|; s|^checkpoint: .*|checkpoint: {every: 20, resume: none}|" "$WORK/cfg.yaml"
"$CTRAIN" train "$WORK/cfg.yaml" > "$WORK/train.log" 2>&1 && pass || fail "train: $(tail -3 "$WORK/train.log")"
grep -q "And God said" "$WORK/train.log" && pass || fail "train: no sample text in the log"

out=$("$CTRAIN" sample "$WORK/run" --tokenizer "$TOK" --prompt "In the beginning" --tokens 8 --seed 3 2>&1)
[[ "$out" == "In the beginning"* ]] && pass || fail "sample --tokenizer FILE.json: $out"
cp "$TOK" "$WORK/model/tokenizer.json"
out2=$("$CTRAIN" sample "$WORK/run" --tokenizer "$WORK/model" --prompt "In the beginning" --tokens 8 \
    --seed 3 2>&1)
[ "$out2" == "$out" ] && pass || fail "sample --tokenizer MODEL_DIR: '$out2', by file: '$out'"
out=$("$CTRAIN" sample "$WORK/run" --tokens 8 --seed 3 2>&1)
[[ "$out" == "And God said"* ]] && pass || fail "sample with eval.tokenizer and eval.prompt: $out"

# a tokenizer.json of another model type: an error naming the file and the key
sed 's/"type":"BPE"/"type":"Unigram"/' "$TOK" > "$WORK/unigram.json"
expect_fail "a Unigram tokenizer.json" "$WORK/unigram.json" "model.type" "Unigram" "HINT" -- \
    "$CTRAIN" tokenize encode --tokenizer "$WORK/unigram.json" --out "$WORK/x" "$WORK/data/text.txt"
finish
