#!/usr/bin/env bash
# CI step for the launch recipes: brings up the one-node Slurm (setup.sh),
# runs the launcher and Slurm tests with a time limit each, and always tears
# Slurm down. Ends with one "slurm: N passed, N failed, N skipped" line; the
# exit code is the verdict. A test may skip (exit 77) only where a missing
# feature is expected: test_manifests without PyYAML, test_slurm_two_node
# where network namespaces cannot be made (it brings up a two-node Slurm of
# its own, beside this one). Everything else must pass here, because
# setup.sh has just installed and started what it needs.
# usage: bash tests/slurm/ci.sh [PATH/TO/ctrain]   (default build/ctrain)
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
CTRAIN=${1:-$HERE/../../build/ctrain}
start=$SECONDS

timeout 900 bash "$HERE/setup.sh" || { echo "slurm: setup.sh failed"; echo "slurm: 0 passed, 1 failed"; exit 1; }
trap 'bash "$HERE/teardown.sh" >/dev/null' EXIT
echo "slurm: cluster up in $((SECONDS - start)) s"

passed=0 failed=0 skipped=0
run() {   # run NAME SECONDS MAY_SKIP CMD...
    local name=$1 limit=$2 may_skip=$3 t=$SECONDS rc; shift 3
    timeout "$limit" "$@"; rc=$?
    if [ $rc -eq 0 ]; then passed=$((passed + 1)); echo "slurm: $name ok ($((SECONDS - t)) s)"
    elif [ $rc -eq 77 ] && [ "$may_skip" = yes ]; then skipped=$((skipped + 1)); echo "slurm: $name skipped"
    else failed=$((failed + 1)); echo "slurm: $name FAILED (exit $rc$([ $rc -eq 124 ] && echo ", over ${limit} s"))"
    fi
}
run test_mpirun 120 no bash "$HERE/test_mpirun.sh"
run test_manifests 60 yes bash "$HERE/test_manifests.sh"
run test_hello 180 no bash "$HERE/test_hello.sh"
run test_requeue 240 no bash "$HERE/test_requeue.sh"
run test_sbatch 480 no bash "$HERE/test_sbatch.sh" "$CTRAIN"
run test_slurm_two_node 180 yes bash "$HERE/../multinode/test_slurm_two_node.sh" "$CTRAIN"

echo "slurm: $((SECONDS - start)) s in all"
echo "slurm: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
