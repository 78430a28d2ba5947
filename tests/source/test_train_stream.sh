#!/usr/bin/env bash
# Training streams its shards from object stores exactly as from local disk:
#  - the corpus is written straight into an S3 bucket by `ctrain tokenize
#    encode --out s3://...` (moto on loopback, signatures checked);
#  - 20 steps from s3:// give bit-identical train and validation losses and
#    byte-identical parameters to the same shards on local disk, with a
#    local chunk cache filled on the way;
#  - through the fault-injecting server, a dropped connection and 503s are
#    retried to the same losses, while a truncated object and a 404 stop the
#    run with the URL (and byte offset) named;
#  - no credential appears in any log, metric or checkpoint file.
# usage: test_train_stream.sh PATH/TO/storage_check PATH/TO/ctrain
. "$(dirname "$0")/lib.sh"
CTRAIN=${2:?usage: $0 storage_check ctrain}
cat "$SRC"/core/*.c "$SRC"/data/loader.c "$SRC"/trainer/*.c > "$WORK/text.txt"
"$CTRAIN" tokenize train --vocab-size 512 --doc-sep '\n\n' --out "$WORK/tok.bpe" "$WORK/text.txt" \
    >/dev/null 2>&1 || fail "tokenize train"
enc() { "$CTRAIN" tokenize encode --tokenizer "$WORK/tok.bpe" --doc-sep '\n\n' --val-every 10 \
    --shard-tokens 40000 --out "$1" "$WORK/text.txt" > "$WORK/enc.log" 2>&1; }
mkdir -p "$WORK/local" && enc "$WORK/local/c" || fail "local encode: $(tail -2 "$WORK/enc.log")"
cat > "$WORK/cfg.yaml" <<YAML
model: {n_layer: 2, n_head: 2, n_embd: 32, max_seq_len: 32, vocab_size: 512}
data: {seed: 5, chunk_tokens: 4096, window_chunks: 2, max_retries: 4}
optim: {lr: 3.0e-3, warmup_steps: 3}
train: {steps: 20, batch_size: 4, seq_len: 32, batch_tokens: 256, seed: 7, log_every: 4}
eval: {every: 6, tokens: 256, sample_tokens: 0}
YAML
train() { # NAME TRAIN VAL [more --set]
    local name=$1 tr=$2 va=$3; shift 3
    timeout 120 "$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/$name" \
        --set data.train="$tr" --set data.val="$va" "$@" > "$WORK/$name.log" 2>&1
}
losses() { grep -o '"step":[0-9]*,"\(loss\|val_loss\)":[^,}]*' "$WORK/$1/metrics.jsonl"; }
train local "$WORK/local/c_train_*.bin" "$WORK/local/c_val_*.bin" || fail "local run: $(tail -3 "$WORK/local.log")"
[ "$(losses local | grep -c "\"loss\"")" = 20 ] || fail "local run logged $(losses local | grep -c '"loss"') steps"

# ---- S3 (moto, signatures checked) ----
start_moto ctrain-s3
export AWS_ACCESS_KEY_ID=$MOTO_AK AWS_SECRET_ACCESS_KEY=$MOTO_SK AWS_ENDPOINT_URL=$MOTO_ENDPOINT AWS_REGION=us-east-1
enc s3://ctrain-s3/corpus/c || fail "encode to s3: $(tail -3 "$WORK/enc.log")"
train s3 "s3://ctrain-s3/corpus/c_train_*" "s3://ctrain-s3/corpus/c_val_*" \
    --set data.cache_dir="$WORK/cache" --set data.cache_mib=64 || fail "s3 run: $(tail -3 "$WORK/s3.log")"
[ "$(losses s3)" = "$(losses local)" ] || { fail "losses from s3 differ from local"; diff <(losses s3) <(losses local) | head -5 >&2; }
cmp -s "$WORK/s3/ckpt/step_00000020/params_tp0.bin" "$WORK/local/ckpt/step_00000020/params_tp0.bin" \
    || fail "parameters trained from s3 differ from local"
ls "$WORK/cache"/*.chunk >/dev/null 2>&1 || fail "the chunk cache stayed empty"
# a second run reads chunks from the cache and still matches
train s3cached "s3://ctrain-s3/corpus/c_train_*" "s3://ctrain-s3/corpus/c_val_*" \
    --set data.cache_dir="$WORK/cache" || fail "cached run: $(tail -3 "$WORK/s3cached.log")"
[ "$(losses s3cached)" = "$(losses local)" ] || fail "losses through the cache differ"
# resuming from the checkpointed data position, at another DP size: 2 ranks
# stop at step 10, one rank finishes, all streamed; the losses match the
# local run within the parallel tests' tolerance (only summation order moves)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
timeout 120 mpirun -np 2 -x AWS_ACCESS_KEY_ID -x AWS_SECRET_ACCESS_KEY -x AWS_ENDPOINT_URL -x AWS_REGION \
    "$CTRAIN" train "$WORK/cfg.yaml" --set train.run_dir="$WORK/dp" --set parallel.dp=2 \
    --set data.train="s3://ctrain-s3/corpus/c_train_*" --set data.val="s3://ctrain-s3/corpus/c_val_*" \
    --stop-at 10 > "$WORK/dp.log" 2>&1 || fail "dp=2 streamed run: $(tail -3 "$WORK/dp.log")"
train dp "s3://ctrain-s3/corpus/c_train_*" "s3://ctrain-s3/corpus/c_val_*" \
    --set checkpoint.resume=auto > /dev/null || fail "dp=1 resume: $(tail -3 "$WORK/dp.log")"
python3 "$SRC/tests/integration/compare.py" losses "$WORK/dp/metrics.jsonl" "$WORK/local/metrics.jsonl" 1e-5 \
    || fail "streamed dp 2->1 resume differs from the local run"
# bad credentials and a missing bucket: clear, credential-free messages
AWS_SECRET_ACCESS_KEY=wrong-secret-0b5e train badkey "s3://ctrain-s3/corpus/c_train_*" "" \
    && fail "a wrong secret was accepted"
grep -q "403" "$WORK/badkey.log" || fail "wrong secret: no 403 in: $(tail -2 "$WORK/badkey.log")"
train nobucket "s3://no-such-bucket-ct/c_train_*" "" && fail "a missing bucket was accepted"
grep -q "NoSuchBucket" "$WORK/nobucket.log" || fail "missing bucket: $(tail -2 "$WORK/nobucket.log")"
train empty s3://ctrain-s3/nothing-here/ "" && fail "an empty prefix was accepted"
grep -q "nothing-here" "$WORK/empty.log" || fail "empty prefix not named: $(tail -2 "$WORK/empty.log")"
for f in $(grep -rlF -- "$MOTO_SK" "$WORK"/*.log "$WORK"/s3* "$WORK"/cache 2>/dev/null); do fail "the secret shows in $f"; done
grep -rlF -- "wrong-secret-0b5e" "$WORK"/*.log >/dev/null && fail "the wrong secret shows in a log"
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_ENDPOINT_URL

# ---- faults (http range server) ----
export FAULT_ROOT=$WORK/local
start_faults "$FAULT_ROOT"
shards() { (cd "$WORK/local" && ls c_train_*.bin) | sed "s|^|$FAULT_BASE/$1/|" | paste -sd, -; }
train drop "$(shards drop1)" "$FAULT_BASE/503x2/c_val_000000.bin" || fail "drop/503 run: $(tail -3 "$WORK/drop.log")"
[ "$(losses drop)" = "$(losses local)" ] || fail "losses after retried faults differ"
train slow "$(shards 429x1)" "$FAULT_BASE/reset1/c_val_000000.bin" || fail "429/reset run: $(tail -3 "$WORK/slow.log")"
[ "$(losses slow)" = "$(losses local)" ] || fail "losses after 429/reset differ"
train trunc "$(shards truncate)" "" && fail "a truncated object was accepted"
grep -q "truncate/c_train_000000.bin" "$WORK/trunc.log" && grep -q "offset" "$WORK/trunc.log" \
    || fail "truncated object: URL/offset not named: $(grep ERROR "$WORK/trunc.log" | head -2)"
train missing "$FAULT_BASE/404/c_train_000000.bin" "" && fail "a 404 was accepted"
grep -q "404" "$WORK/missing.log" || fail "404 not reported: $(grep ERROR "$WORK/missing.log" | head -2)"
finish
