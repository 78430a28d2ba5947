# Shared helpers for the shell integration tests. Each test sources this,
# gets $CTRAIN (the binary, first argument) and a fresh $WORK directory, and
# uses fail/expect_* helpers; the script's exit code is the verdict.
set -u
CTRAIN=${1:?usage: $0 PATH/TO/ctrain}
SRC=${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}
WORK=${CT_TEST_TMP:-/tmp}/$(basename "$0" .sh).$$
rm -rf "$WORK" && mkdir -p "$WORK"
FAILURES=0
CHECKS=0

fail() { echo "FAIL: $*" >&2; FAILURES=$((FAILURES + 1)); }
pass() { CHECKS=$((CHECKS + 1)); }

# expect_fail NAME PATTERN... -- CMD...: CMD must exit non-zero and its
# output must contain every PATTERN (fixed strings).
expect_fail() {
    local name=$1; shift
    local pats=()
    while [ "$1" != "--" ]; do pats+=("$1"); shift; done
    shift
    local out rc
    out=$("$@" 2>&1); rc=$?
    CHECKS=$((CHECKS + 1))
    if [ $rc -eq 0 ]; then fail "$name: expected failure, got exit 0"; echo "$out" | tail -5 >&2; return; fi
    for p in "${pats[@]}"; do
        if ! grep -qF -- "$p" <<<"$out"; then
            fail "$name: output lacks '$p'"; echo "$out" | tail -8 >&2
        fi
    done
}

finish() {
    echo "$(basename "$0"): $CHECKS checks, $FAILURES failed"
    [ $FAILURES -eq 0 ] && [ -z "${CT_KEEP:-}" ] && rm -rf "$WORK"
    [ $FAILURES -eq 0 ]
}

# make_corpus DIR VOCAB: a small fixed corpus, Genesis and Exodus from the
# bible-kjv package (`make deps` installs it; no downloads), tokenized into
# train and val shards. It must not change with the project's sources: the
# tests' loss thresholds were drifting with every edit of core/ and data/.
make_corpus() {
    local dir=$1 vocab=$2
    mkdir -p "$dir"
    bible -l0 Gen1:1-Exo40:38 </dev/null > "$dir/text.txt"
    "$CTRAIN" tokenize train --vocab-size "$vocab" --doc-sep '\n\n' --out "$dir/tok.bpe" "$dir/text.txt" >/dev/null 2>&1 \
        || { fail "tokenize train"; return 1; }
    "$CTRAIN" tokenize encode --tokenizer "$dir/tok.bpe" --doc-sep '\n\n' --val-every 10 \
        --out "$dir/c" "$dir/text.txt" >/dev/null 2>&1 || { fail "tokenize encode"; return 1; }
}

# write_config PATH DATA_DIR RUN_DIR VOCAB: a tiny model that trains in seconds.
write_config() {
    cat > "$1" <<YAML
model: {n_layer: 2, n_head: 2, n_embd: 32, max_seq_len: 32, vocab_size: $4}
data: {train: "$2/c_train_*.bin", val: "$2/c_val_*.bin", seed: 5, chunk_tokens: 2048, window_chunks: 2}
optim: {lr: 3.0e-3, warmup_steps: 3, decay: cosine, min_lr_frac: 0.1}
train: {run_dir: "$3", steps: 20, batch_size: 4, seq_len: 32, batch_tokens: 256, seed: 7, log_every: 5}
eval: {every: 5, tokens: 1024, sample_every: 0, sample_tokens: 0}
checkpoint: {every: 0, resume: none}
YAML
}

# setup_mpi_test: the environment and the tiny config the multi-rank tests
# share: 4 heads (so TP=4 splits whole heads), a global batch of
# 4 x (2 x 32) tokens, and a collective timeout. Sets MPIRUN, CMP, and
# $WORK/cfg.yaml over the corpus in $WORK/data.
setup_mpi_test() {
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    export OMP_NUM_THREADS=1
    MPIRUN=${MPIEXEC:-mpirun}
    CMP="python3 $(dirname "$0")/compare.py"
    make_corpus "$WORK/data" 512 || return 1
    write_config "$WORK/cfg.yaml" "$WORK/data" "$WORK/run" 512
    sed -i 's/n_head: 2/n_head: 4/; s/batch_size: 4/batch_size: 2/' "$WORK/cfg.yaml"
    echo "comm: {timeout_s: ${1:-60}, bucket_mib: 1}" >> "$WORK/cfg.yaml"
}
