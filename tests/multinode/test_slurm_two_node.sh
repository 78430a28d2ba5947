#!/usr/bin/env bash
# launch/slurm/train.sbatch on a real two-node Slurm, on one machine: two
# network namespaces (tests/multinode/netns.sh) with a slurmd each, the
# controller in the first, and a private munged, all started here and
# stopped on every exit. Nothing of the machine's own Slurm or munge is
# used or touched (own configs, state, ports inside the namespaces, own
# munge socket and key), so it runs beside tests/slurm/setup.sh's cluster.
#
# `sbatch -N2 --ntasks-per-node=2` of the recipe trains configs/tiny.yaml
# (made small) with DP=2 x TP=2. The job must end COMPLETED with exit 0
# on both nodes (ranks 0,1 on node 1 and 2,3 on node 2, so each TP pair in
# one node, "2 per node"), and reproduce the losses of one process within
# 1e-5 relative (summation order is the only difference).
#
# Both nodes read one slurm.conf whose per-node paths (spool, pid and log
# files, TmpFS) hold %n, the node name: two slurmd on one file system must
# not share them (PMIx makes its sockets and directories there), and PMIx
# reaches a peer's step through the unexpanded spool path, which the peer's
# slurmd expands, so per-node files with literal paths do not work. Exits 77 (skipped) when namespaces cannot be
# made here or Slurm or munge is not installed (tests/slurm/setup.sh
# installs them). The exit code is the verdict.
# usage: test_slurm_two_node.sh PATH/TO/ctrain
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
NETNS=$HERE/netns.sh
why=$(sh "$NETNS" check 2>&1) || { echo "test_slurm_two_node: ${why#netns.sh: }; skipped"; exit 77; }
for t in slurmctld slurmd sbatch srun munged munge; do
    command -v $t >/dev/null || { echo "test_slurm_two_node: no $t (run tests/slurm/setup.sh); skipped"; exit 77; }
done
[ -e /usr/lib/x86_64-linux-gnu/slurm-wlm/mpi_pmix.so ] || ls /usr/lib/*/slurm*/mpi_pmix.so >/dev/null 2>&1 \
    || { echo "test_slurm_two_node: no Slurm mpi/pmix plugin; skipped"; exit 77; }
. "$HERE/../integration/lib.sh"   # CTRAIN, SRC, WORK, fail/pass/finish, make_corpus
CTRAIN=$(cd "$(dirname "$CTRAIN")" && pwd)/$(basename "$CTRAIN")
t_start=$SECONDS

export CT_NETNS_PREFIX=ctsl$$n CT_NETNS_SUBNET=10.214.$(($$ % 250 + 1))
N1=${CT_NETNS_PREFIX}1 N2=${CT_NETNS_PREFIX}2
# Slurm's and munge's state under a short path: unix socket paths (the
# step's PMIx socket in the spool) must stay under 108 bytes.
S=$(mktemp -d /tmp/ctsl.XXXXXX) || exit 1
mkdir -p "$S/munge" "$S/key" "$S/ctld" "$WORK/logs" "$WORK/bin"
chmod 755 "$S/munge" && chmod 700 "$S/key"
PIDS=() MUNGED=
cleanup() {
    # the daemons, then everything left in the namespaces (job steps)
    [ ${#PIDS[@]} -gt 0 ] && kill -TERM "${PIDS[@]}" 2>/dev/null
    for _ in $(seq 20); do
        alive=0
        for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.25
    done
    [ ${#PIDS[@]} -gt 0 ] && kill -KILL "${PIDS[@]}" 2>/dev/null
    sh "$NETNS" down "$CT_NETNS_PREFIX" 2
    [ -n "$MUNGED" ] && kill -TERM "$MUNGED" 2>/dev/null
    wait 2>/dev/null   # reap them
    if [ $FAILURES -gt 0 ]; then
        for f in "$S"/slurmctld.log "$S"/slurmd-*.log "$S"/*.out; do
            [ -f "$f" ] && { echo "--- tail of $f" >&2; tail -n 8 "$f" >&2; }
        done
        echo "test_slurm_two_node: Slurm's files are kept in $S" >&2
    else
        rm -rf "$S"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
sh "$NETNS" up "$CT_NETNS_PREFIX" 2 "$CT_NETNS_SUBNET" || { fail "netns.sh up"; finish; exit 1; }

# ---- munge: a daemon and key of our own --------------------------------------
dd if=/dev/urandom of="$S/key/munge.key" bs=1024 count=1 status=none && chmod 400 "$S/key/munge.key"
MSOCK=$S/munge/munge.sock
munged -F -f -S "$MSOCK" --key-file="$S/key/munge.key" --pid-file="$S/munged.pid" \
    --log-file="$S/munged.log" --seed-file="$S/key/seed" > "$S/munged.out" 2>&1 &
MUNGED=$!
munge_ok() { munge -S "$MSOCK" -n </dev/null 2>/dev/null | unmunge -S "$MSOCK" >/dev/null 2>&1; }
for _ in $(seq 50); do munge_ok && break; sleep 0.1; done
munge_ok || { fail "munged does not answer: $(tail -3 "$S/munged.out")"; finish; exit 1; }

# ---- one slurm.conf for both nodes ----------------------------------------------
# Per-node paths through %n (the node name), not per-node files: PMIx
# addresses a peer's step by the unexpanded SlurmdSpoolDir, which the
# receiving slurmd expands for itself.
mkdir -p "$S/spool-$N1" "$S/spool-$N2" "$S/tmp-$N1" "$S/tmp-$N2"
cat > "$S/slurm.conf" <<EOF
# the two-node test cluster of tests/multinode/test_slurm_two_node.sh
ClusterName=ct2node
SlurmctldHost=$N1($CT_NETNS_SUBNET.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MSOCK
StateSaveLocation=$S/ctld
SlurmctldPidFile=$S/slurmctld.pid
SlurmctldLogFile=$S/slurmctld.log
SlurmdSpoolDir=$S/spool-%n
SlurmdPidFile=$S/slurmd-%n.pid
SlurmdLogFile=$S/slurmd-%n.log
TmpFS=$S/tmp-%n
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=600
KillWait=5
InactiveLimit=0
NodeName=$N1 NodeAddr=$CT_NETNS_SUBNET.1 CPUs=2 RealMemory=1000 State=UNKNOWN
NodeName=$N2 NodeAddr=$CT_NETNS_SUBNET.2 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=two Nodes=$N1,$N2 Default=YES MaxTime=10 State=UP
EOF
export SLURM_CONF=$S/slurm.conf
# The clients reach the controller from node 1: wrappers for slurm_lib.sh.
for t in sinfo squeue scontrol scancel sbatch; do
    printf '#!/bin/sh\nexec "%s" exec 1 "%s" "$@"\n' "$NETNS" "$(command -v $t)" > "$WORK/bin/$t"
    chmod +x "$WORK/bin/$t"
done
PATH_JOB=$PATH
export PATH=$WORK/bin:$PATH
. "$SRC/tests/slurm/slurm_lib.sh"

t=$SECONDS
"$NETNS" exec 1 slurmctld -D -c -f "$SLURM_CONF" > "$S/slurmctld.out" 2>&1 &
PIDS+=($!)
for k in 1 2; do
    "$NETNS" exec $k slurmd -D -f "$SLURM_CONF" > "$S/slurmd-$k.out" 2>&1 &
    PIDS+=($!)
done
up=0
for _ in $(seq 120); do
    [ "$(timeout 10 sinfo -h -N -o %t 2>/dev/null | grep -c '^idle$')" -eq 2 ] && { up=1; break; }
    sleep 0.5
done
echo "test_slurm_two_node: two nodes idle after $((SECONDS - t)) s: $(timeout 10 sinfo -h -N -o '%N %t' | tr '\n' ' ')"
[ $up = 1 ] && pass || { fail "the two slurmd nodes are not idle after 60 s"; finish; exit 1; }

# ---- the recipe, -N2: DP=2 x TP=2 --------------------------------------------
make_corpus "$WORK/data" 512 || { finish; exit 1; }
D=$WORK/data
TINY=(--set model.n_layer=2 --set model.n_embd=64 --set model.max_seq_len=32
      --set model.vocab_size=512 --set data.train="$D/c_train_*.bin" --set data.val="$D/c_val_*.bin"
      --set eval.tokenizer="$D/tok.bpe" --set eval.every=3 --set eval.tokens=1024
      --set eval.sample_tokens=0 --set train.steps=6 --set train.batch_size=2 --set train.seq_len=32
      --set train.batch_tokens=128 --set train.log_every=1 --set train.threads=1
      --set optim.warmup_steps=2 --set checkpoint.every=0 --set comm.timeout_s=30)
"$CTRAIN" train "$SRC/configs/tiny.yaml" "${TINY[@]}" --set train.run_dir="$WORK/single" \
    > "$WORK/single.log" 2>&1 || { fail "one-process run: $(tail -3 "$WORK/single.log")"; finish; exit 1; }

t=$SECONDS
id=$(cd "$WORK" && PATH=$PATH_JOB CTRAIN=$CTRAIN CT_LOG_FILE="$WORK/logs/%h.r%r.log" CT_LOG_LEVEL=debug \
    timeout 30 "$NETNS" exec 1 sbatch --parsable -J ct-two -N2 --ntasks-per-node=2 --cpus-per-task=1 \
    --time=2 --output="$WORK/logs/%x-%j.out" "$SRC/launch/slurm/train.sbatch" "$SRC/configs/tiny.yaml" \
    "${TINY[@]}" --set train.run_dir="$WORK/two" --set parallel.dp=2 --set parallel.tp=2 2>&1) \
    || { fail "sbatch: $id"; finish; exit 1; }
log=$WORK/logs/ct-two-$id.out
state=$(wait_job "$id" 120)
echo "test_slurm_two_node: job $id ended $state in $((SECONDS - t)) s"
[ "$state" = COMPLETED ] && pass || fail "job $id ended $state"
[ "$(job_field "$id" ExitCode)" = 0:0 ] && pass || fail "job exit code $(job_field "$id" ExitCode)"
[ "$(job_field "$id" NodeList)" = "${CT_NETNS_PREFIX}[1-2]" ] && pass \
    || fail "job ran on '$(job_field "$id" NodeList)', want both nodes"
grep -q "on ${CT_NETNS_PREFIX}\[1-2\]: 4 tasks x 1 cpus" "$log" 2>/dev/null && pass \
    || fail "the script's first line does not show 4 tasks on both nodes"
grep -q "srun exited with 0" "$log" 2>/dev/null && pass || fail "srun did not exit 0"
r0=$WORK/logs/$N1.r0.log
grep -q "comm: backend mpi, world 4 = dp 2 x tp 2, 2 per node" "$r0" 2>/dev/null && pass \
    || fail "rank 0 does not log '2 per node'"
want="ct-two-$id.out $N1.r0.log $N1.r1.log $N2.r2.log $N2.r3.log"
got=$(cd "$WORK/logs" && echo *)
[ "$got" = "$want" ] && pass || fail "logs are '$got', want '$want' (TP pairs inside one node)"
for r in 0 1 2 3; do
    f=$WORK/logs/$([ $r -lt 2 ] && echo "$N1" || echo "$N2").r$r.log
    grep -qF "local rank $((r % 2)) of 2 on this node, device cpu" "$f" 2>/dev/null && pass \
        || fail "rank $r: wrong or no placement line in $f"
done
python3 "$SRC/tests/integration/compare.py" losses "$WORK/two/metrics.jsonl" "$WORK/single/metrics.jsonl" 1e-5 \
    && pass || fail "losses over two Slurm nodes differ from one process"
[ $FAILURES -eq 0 ] || { echo "--- $log" >&2; tail -n 20 "$log" >&2; }
echo "test_slurm_two_node: all in $((SECONDS - t_start)) s"
finish
