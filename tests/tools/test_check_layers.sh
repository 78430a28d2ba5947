#!/usr/bin/env bash
# tools/check_layers.py, the include-rule checker CI runs: on a fake tree
# with the project's layout it passes clean includes, and fails on an
# upward, a sideways and a private include, naming file:line and the rule
# for each; --warn reports the same but exits 0. Then an upward include
# planted in a copy of the real layer folders must make it fail, naming the
# planted line. Usage: test_check_layers.sh [SOURCE_DIR]
set -u
SRC=${1:-${CT_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}}
CHECK="$SRC/tools/check_layers.py"
mkdir -p "${CT_TEST_TMP:-/tmp}" && WORK=$(mktemp -d "${CT_TEST_TMP:-/tmp}/check_layers.XXXXXX") || exit 1
trap 'rm -rf "$WORK"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }
pass() { :; }

# runs the checker on $1 (more args follow); sets rc and out
run_check() {
    local root=$1; shift
    out=$(python3 "$CHECK" --root "$root" "$@" 2>&1); rc=$?
}
expect_line() { # substring the output must contain
    grep -qF -- "$1" <<<"$out" && pass || fail "output lacks '$1':"$'\n'"$out"
}

# ---- a fake tree with the layout, every include allowed ------------------
T="$WORK/fake"
mkdir -p "$T"/{core,kernels/cpu,kernels/cuda,comm,data,model,trainer,cli,tests/trainer,bench}
for h in core/log.h core/arena.h kernels/kernels.h kernels/cpu/cpu_impl.h kernels/cuda/common.cuh \
         comm/comm.h comm/comm_impl.h data/data.h data/source.h model/model.h model/gpt2.h \
         trainer/trainer.h trainer/ckpt.h cli/cli.h; do
    echo "/* $h */" > "$T/$h"
done
cat > "$T/kernels/cpu/gelu.c" <<'EOF'
#include "core/log.h"
#include "kernels/kernels.h"
#include "kernels/cpu/cpu_impl.h"
#include "cpu_impl.h"
#include "kernels/cuda/common.cuh"
#include <stdio.h>
EOF
cat > "$T/trainer/train.c" <<'EOF'
/* a comment naming #include "cli/cli.h" is not an include
#include "cli/cli.h"
*/
// #include "cli/cli.h"
#include "core/arena.h"
#include "comm/comm.h"
#include "data/data.h"
#include "model/model.h"
#include "trainer/ckpt.h"
#include "config_generated.h"
EOF
printf '#include "trainer/trainer.h"\n#include "model/model.h"\n#include "cli/cli.h"\n' > "$T/cli/main.c"
# tests/ and bench/ may include anything
printf '#include "cli/cli.h"\n#include "comm/comm_impl.h"\n' > "$T/tests/trainer/test_x.c"
printf '#include "data/source.h"\n' > "$T/bench/bench_x.c"
run_check "$T"
[ "$rc" -eq 0 ] && pass || fail "clean fake tree: exit $rc, want 0:"$'\n'"$out"

# ---- planted violations --------------------------------------------------
printf '#include "core/log.h"\n#include "model/model.h"\n' > "$T/data/up.c"        # up
printf '#include "data/data.h"\n' > "$T/comm/side.c"                                # sideways
printf '\n\n#include "comm/comm_impl.h"\n' > "$T/trainer/priv.c"                     # private
printf '#include "../../trainer/trainer.h"\n' > "$T/kernels/cuda/rel.cu"              # up, relative
printf '#include "model/gpt2.h"\n' > "$T/cli/priv2.c"                                 # private, 2 levels down
run_check "$T"
[ "$rc" -eq 1 ] && pass || fail "planted violations: exit $rc, want 1:"$'\n'"$out"
expect_line "data/up.c:2: error: include rule 'up'"
expect_line "comm/side.c:1: error: include rule 'sideways'"
expect_line "trainer/priv.c:3: error: include rule 'private'"
expect_line "kernels/cuda/rel.cu:1: error: include rule 'up'"
expect_line "cli/priv2.c:1: error: include rule 'private'"
n=$(grep -c 'include rule' <<<"$out")
[ "$n" -eq 5 ] && pass || fail "want exactly the 5 planted violations, got $n:"$'\n'"$out"

run_check "$T" --warn
[ "$rc" -eq 0 ] && pass || fail "--warn: exit $rc, want 0"
expect_line "data/up.c:2: warning: include rule 'up'"

# a missing layer folder is tolerated
rm -rf "$T/model" "$T/cli"
rm -f "$T/data/up.c" "$T/comm/side.c" "$T/trainer/priv.c" "$T/kernels/cuda/rel.cu"
run_check "$T"
[ "$rc" -eq 0 ] && pass || fail "tree without model/ and cli/: exit $rc, want 0:"$'\n'"$out"

# ---- a copy of the real layer folders, with an upward include planted ----
R="$WORK/real"
mkdir -p "$R"
for d in core kernels comm data model trainer cli; do
    [ -d "$SRC/$d" ] && cp -RL "$SRC/$d" "$R/$d"  # -L: never write through a link
done
[ -f "$R/core/arena.c" ] || { fail "no core/arena.c in $SRC"; exit 1; }
run_check "$R" --warn
[ "$rc" -eq 0 ] && pass || fail "real tree in --warn mode: exit $rc:"$'\n'"$out"
before=$(grep -c 'include rule' <<<"$out")
line=$(($(wc -l < "$R/core/arena.c") + 1))
echo '#include "trainer/trainer.h"' >> "$R/core/arena.c"
run_check "$R"
[ "$rc" -eq 1 ] && pass || fail "planted core -> trainer include: exit $rc, want 1"
expect_line "core/arena.c:$line: error: include rule 'up'"
after=$(grep -c 'include rule' <<<"$out")
[ "$after" -eq $((before + 1)) ] && pass || fail "planting one include added $((after - before)) reports"

[ "$fails" -eq 0 ] && echo "test_check_layers: ok" >&2
[ "$fails" -eq 0 ]
