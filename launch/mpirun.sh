#!/usr/bin/env bash
# ctrain under mpirun (Open MPI 4.x), on one machine or on hosts you name.
#
#   launch/mpirun.sh CONFIG.yaml [mpirun args...] [-- ctrain train args...]
#
#   launch/mpirun.sh configs/tiny.yaml                        # dp*tp ranks here
#   PPN=8 launch/mpirun.sh cfg.yaml --hostfile hosts -- --set checkpoint.resume=auto
#   PPN=8 launch/mpirun.sh cfg.yaml --hostfile hosts -- --set model.device=cuda \
#       --set parallel.dp=4 --set parallel.tp=8              # 4 nodes x 8 GPUs, DP x TP
#
# Ranks: -np is $NP, else parallel.dp * parallel.tp read from CONFIG and
# from any `--set parallel.dp=N` / `--set parallel.tp=N` after `--`
# (missing keys count as 1). An -np/-n among the mpirun args wins.
#
# Placement: PPN ranks per node (default: all ranks on one node), packed in
# rank order with `--map-by ppr:PPN:node`, so consecutive ranks, and hence
# each tensor-parallel group, share a node. `--map-by node` would deal
# ranks round-robin across nodes and split TP groups over the network.
# On GPU nodes PPN is the GPUs per node: each rank drives the GPU of its
# node-local rank, and ctrain stops at start, on every rank, when a node has
# more ranks than GPUs or a TP group spans nodes. Over more than one node,
# parallel.tp must divide PPN; this script refuses the launch otherwise.
# Each rank is bound to CPR cores (`:PE=CPR --bind-to core`), CPR being
# $CT_CPUS_PER_RANK, else this machine's cores / PPN; run from a launcher
# whose shape differs from the workers (a Kubernetes launcher pod), set it.
# When there are fewer cores than ranks, ranks are not bound and the node
# is oversubscribed (tests on small machines). Your own --map-by/--bind-to
# replace these. OMP_NUM_THREADS defaults to CPR.
#
# Preemption: SIGTERM, SIGINT or SIGHUP to this script (a Kubernetes
# launcher pod's PID 1, Ctrl-C, `kill`) is passed on to mpirun as SIGUSR1,
# which Open MPI forwards to every rank at once: the ranks finish the step,
# save a checkpoint together and exit 75, and so does this script. A second
# signal ends the job now (SIGTERM to mpirun). mpirun runs in its own process
# group, so a terminal's Ctrl-C reaches only this script; mpirun itself must
# not be signalled with SIGTERM: it would pass the stop on only after
# odls_base_sigkill_timeout (default 1 s), SIGKILL one timeout later, and
# exit 1 whatever the ranks do. The ranks know, through CT_LAUNCHER, that
# the stop reaches them at once and do not warn about that timeout.
#
# Environment passed to every rank: CT_*, OMP_*, AWS_*, NCCL_*, UCX_*,
# PATH and LD_LIBRARY_PATH (names only on the command line, never values).
# CTRAIN: the binary, default `ctrain` on PATH, else build/ctrain next to
# this script; it must exist at that path on every host. CT_DRY_RUN=1
# prints the mpirun command instead of running it.
set -euo pipefail

usage() { sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 1 ] || usage
case $1 in -h | --help) usage ;; esac
CONFIG=$1; shift
[ -r "$CONFIG" ] || { echo "mpirun.sh: cannot read config '$CONFIG'" >&2; exit 2; }

mpi_args=() ct_args=()
while [ $# -gt 0 ]; do
    if [ "$1" = -- ]; then shift; ct_args=("$@"); break; fi
    mpi_args+=("$1"); shift
done

# cfg_get FILE SECTION KEY: a scalar from block (`dp: 2` under `parallel:`)
# or flow (`parallel: {dp: 2}`) style YAML; empty when absent.
cfg_get() {
    awk -v sec="$2" -v key="$3" '
        { sub(/[ \t]#.*/, ""); sub(/^#.*/, "") }
        /^[^ \t]/ {
            cur = $0; sub(/[ \t]*:.*/, "", cur)
            if (cur == sec && match($0, /\{.*\}/)) {
                n = split(substr($0, RSTART + 1, RLENGTH - 2), kv, ",")
                for (i = 1; i <= n; i++) {
                    split(kv[i], p, ":"); k = p[1]; v = p[2]
                    gsub(/[ \t"\047]/, "", k); gsub(/[ \t"\047]/, "", v)
                    if (k == key) { print v; exit }
                }
            }
            next
        }
        cur == sec && match($0, "^[ \t]+" key "[ \t]*:") {
            v = substr($0, RLENGTH + 1); gsub(/[ \t"\047]/, "", v); print v; exit
        }' "$1"
}
dp=$(cfg_get "$CONFIG" parallel dp) tp=$(cfg_get "$CONFIG" parallel tp)
for ((i = 0; i < ${#ct_args[@]}; i++)); do   # --set overrides win, as in ctrain
    [ "${ct_args[i]}" = --set ] || continue
    case ${ct_args[i + 1]:-} in
    parallel.dp=*) dp=${ct_args[i + 1]#*=} ;;
    parallel.tp=*) tp=${ct_args[i + 1]#*=} ;;
    esac
done
NP=${NP:-$((${dp:-1} * ${tp:-1}))}

has_opt() {   # has_opt NAME...: one of the mpirun args is (or starts with NAME=)
    local a n
    for a in "${mpi_args[@]+"${mpi_args[@]}"}"; do
        for n in "$@"; do [ "$a" = "$n" ] || [ "${a%%=*}" = "$n" ] && return 0; done
    done
    return 1
}

export CT_LAUNCHER=mpirun.sh   # forwarded below with the other CT_* variables
cmd=(mpirun)
[ "$(id -u)" = 0 ] && cmd+=(--allow-run-as-root)
has_opt -np -n --np || cmd+=(-np "$NP")

PPN=${PPN:-$NP}
CPR=${CT_CPUS_PER_RANK:-$(($(nproc) / PPN))}
if ! has_opt --map-by -map-by --npernode -npernode --bind-to -bind-to; then
    # whole TP groups on each node: tp must divide the ranks per node
    if [[ ${tp:-1} =~ ^[0-9]+$ ]] && [ "${tp:-1}" -gt 1 ] && [ "$NP" -gt "$PPN" ] \
        && [ $((PPN % tp)) -ne 0 ]; then
        echo "mpirun.sh: parallel.tp=$tp does not divide PPN=$PPN ranks per node, so tensor-parallel" \
             "groups would span nodes; set PPN to a multiple of $tp (the GPUs per node) or lower" \
             "parallel.tp" >&2
        exit 2
    fi
    if [ "$CPR" -ge 1 ]; then
        cmd+=(--map-by "ppr:$PPN:node:PE=$CPR" --bind-to core)
    else
        cmd+=(--map-by "ppr:$PPN:node" --bind-to none --oversubscribe)
    fi
fi
[ "$CPR" -ge 1 ] || CPR=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$CPR}

while read -r name; do
    case $name in
    CT_* | OMP_* | AWS_* | NCCL_* | UCX_* | PATH | LD_LIBRARY_PATH) cmd+=(-x "$name") ;;
    esac
done < <(compgen -e)

here=$(cd "$(dirname "$0")" && pwd)
CTRAIN=${CTRAIN:-$(command -v ctrain || echo "$here/../build/ctrain")}
cmd+=("${mpi_args[@]+"${mpi_args[@]}"}" "$CTRAIN" train "$CONFIG" "${ct_args[@]+"${ct_args[@]}"}")

if [ "${CT_DRY_RUN:-0}" = 1 ]; then
    printf '%q ' "${cmd[@]}"; echo
    exit 0
fi

# mpirun in the background, in its own process group (set -m), stdin from
# /dev/null (a background group reading the terminal would be stopped);
# `wait` returns early when a trapped signal arrives, so it is repeated
# until mpirun itself has ended.
stops=0 pid=
on_stop() {
    stops=$((stops + 1))
    if [ "$stops" = 1 ]; then
        echo "mpirun.sh: $1: asking every rank to save a checkpoint and stop (SIGUSR1 to mpirun);" \
             "a second signal ends the job at once" >&2
        kill -USR1 "$pid" 2>/dev/null
    else
        echo "mpirun.sh: $1 again: ending the job now (SIGTERM to mpirun)" >&2
        kill -TERM "$pid" 2>/dev/null
    fi
}
for s in TERM INT HUP USR1; do trap "on_stop SIG$s" "$s"; done
set -m
"${cmd[@]}" < /dev/null &
pid=$!
set +m
while :; do   # a wait that a trap cut short (status > 128) is waited again
    before=$stops rc=0
    wait "$pid" || rc=$?
    [ "$stops" != "$before" ] && [ "$rc" -gt 128 ] || break
done
exit "$rc"
