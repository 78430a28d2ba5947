#!/usr/bin/env bash
# Builds the libFuzzer harnesses of tests/fuzz with clang (-DCT_FUZZ=ON:
# -fsanitize=fuzzer,address,undefined) and runs each, one at a time, for a
# bounded time on a copy of its committed seeds.
#
# usage: tests/fuzz/build_and_run.sh [SECONDS_PER_HARNESS] [HARNESS...]
#   SECONDS_PER_HARNESS  default 30; HARNESS: config shard hf tokenizer s3xml
#                        manifest (default: all)
#   FUZZ_BUILD           build directory (default build-fuzz)
#   FUZZ_OUT             corpora and crash files (default $FUZZ_BUILD/fuzz-out);
#                        a corpus grows across runs on one machine
#   FUZZ_JOBS            build jobs (default nproc)
#
# A crash, a leak, an input slower than 10 s or an RSS above 2 GiB fails the
# script (exit 1): the reproducer is left in $FUZZ_OUT/<name>/ and printed
# (base64) so a CI log holds it. Fix the bug, add a regression test, and
# commit the reproducer to tests/fuzz/<name>/crashes/: the ordinary build
# replays seeds/ and crashes/ under ctest (fuzz_<name>_replay). Debian: the
# script installs clang, libclang-rt-dev and libomp-dev when missing.
set -uo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-30}
shift || true
ALL=(config shard hf tokenizer s3xml manifest)
NAMES=("$@")
[ ${#NAMES[@]} -eq 0 ] && NAMES=("${ALL[@]}")
BUILD=${FUZZ_BUILD:-build-fuzz}
OUT=${FUZZ_OUT:-$BUILD/fuzz-out}
JOBS=${FUZZ_JOBS:-$(nproc)}

missing=$(for p in clang libclang-rt-dev libomp-dev; do dpkg -s $p >/dev/null 2>&1 || echo $p; done)
if [ -n "$missing" ]; then
    echo "installing:" $missing
    SUDO=$([ "$(id -u)" = 0 ] || echo sudo)
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing || exit 1
fi

t0=$(date +%s)
echo "building the harnesses with clang in $BUILD (log: $BUILD/fuzz-build.log)"
mkdir -p "$BUILD"
if ! { CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCT_FUZZ=ON -DCT_CUDA=OFF \
         -DCT_MPI=OFF -DCT_NATIVE=OFF && \
       cmake --build "$BUILD" -j "$JOBS" --target fuzz_harnesses; } > "$BUILD/fuzz-build.log" 2>&1; then
    tail -n 30 "$BUILD/fuzz-build.log"
    echo "FAIL: building the fuzzing harnesses" >&2
    exit 1
fi
echo "built in $(( $(date +%s) - t0 )) s"

failed=0
summary=()
for name in "${NAMES[@]}"; do
    bin="$BUILD/tests/fuzz/fuzz_$name"
    [ -x "$bin" ] || { echo "FAIL: no harness $name" >&2; failed=1; continue; }
    dir="$OUT/$name"
    mkdir -p "$dir/corpus"
    cp -n tests/fuzz/$name/seeds/* "$dir/corpus/" 2>/dev/null
    [ -d tests/fuzz/$name/crashes ] && cp -n tests/fuzz/$name/crashes/* "$dir/corpus/" 2>/dev/null
    rm -f "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*
    log="$dir/fuzz.log"
    # -close_fd_mask=2: the readers' own error lines (every input is meant to
    # fail) go nowhere; libFuzzer's and the sanitizers' reports still print.
    nice "$bin" "$dir/corpus" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=2048 \
        -close_fd_mask=2 -print_final_stats=1 -artifact_prefix="$dir/" > "$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    if [ $rc -ne 0 ]; then
        failed=1
        summary+=("$(printf '%-10s FAILED (rc %d) after %s executions' "$name" $rc "${execs:-?}")")
        echo "FAIL: fuzz_$name (rc $rc); the end of its log:" >&2
        tail -n 40 "$log" >&2
        for a in "$dir"/crash-* "$dir"/leak-* "$dir"/timeout-* "$dir"/oom-*; do
            [ -f "$a" ] || continue
            echo "reproducer $a ($(stat -c %s "$a") bytes), base64:" >&2
            head -c 6000 "$a" | base64 >&2
            echo "replay: $bin $a" >&2
        done
    else
        summary+=("$(printf '%-10s %9s executions %7s/s  coverage %5s  corpus %4d files' \
            "$name" "${execs:-?}" "${speed:-?}" "${cov:-?}" "$(ls "$dir/corpus" | wc -l)")")
    fi
done
echo "fuzzing, $SECS s per harness (total $(( $(date +%s) - t0 )) s with the build):"
printf '  %s\n' "${summary[@]}"
exit $failed
