#!/usr/bin/env bash
# Preemption through the launchers, not by signalling the ranks: a model
# whose step takes over a second (longer than Open MPI's default kill
# timeout), dp=2, and a SIGTERM to
#  A. plain mpirun, with OMPI_MCA_odls_base_sigkill_timeout sized for a step
#     and a save: a complete checkpoint. mpirun's own status is Open MPI's
#     fixed 1 after it was signalled (ORTE's abort handler sets it);
#  B. launch/mpirun.sh: a checkpoint, and status 75 from mpirun;
#  C. a Kubernetes MPIJob, emulated: the launcher's PID 1 is
#     launch/mpirun.sh, each of two worker "pods" (own PID, UTS and mount
#     namespaces; mpirun reaches them through an agent instead of ssh) has
#     launch/k8s/worker-entry.sh as PID 1 around a stand-in for sshd, and
#     every PID 1 gets SIGTERM at once, as from the kubelet. Status 75, and
#     each worker exits 0 after its ranks.
# Each resumed run reproduces the uninterrupted run's losses bit for bit
# for 3 steps past its checkpoint.
# Also: without the sized timeout, train warns at start under plain mpirun
# and says what to set; under launch/mpirun.sh it does not.
. "$(dirname "$0")/lib.sh"
setup_mpi_test 60 || { finish; exit 1; }
C="$WORK/cfg.yaml"
# about 1.2 s a step on one core: 4 x 256 wide, 48 x 128 tokens per rank
sed -i 's/^model:.*/model: {n_layer: 4, n_head: 4, n_embd: 256, max_seq_len: 128, vocab_size: 512}/
        s/^train:.*/train: {run_dir: "RUN", steps: 12, batch_size: 48, seq_len: 128, seed: 7, log_every: 1, threads: 1}/
        s/^eval:.*/eval: {every: 0, sample_every: 0, sample_tokens: 0}/' "$C"
echo "parallel: {dp: 2}" >> "$C"
LAUNCH="$SRC/launch/mpirun.sh"
losses() { grep -o '"step":[0-9]*,"loss":[^,}]*' "$1/metrics.jsonl" | sort -t: -k2 -n | uniq; }
run_dir() { echo "--set train.run_dir=$WORK/$1"; }
wait_step() {   # wait_step RUN N: until RUN has logged step N (60 s at most)
    for _ in $(seq 600); do grep -q "\"step\":$2," "$WORK/$1/metrics.jsonl" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
wait_gone() {   # wait_gone PID SECONDS: 0 once PID has exited
    for _ in $(seq $(($2 * 10))); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
    return 1
}
# stop_run NAME STEP WHAT CMD...: runs CMD in the background (output in
# NAME.log) until it has logged STEP, sends it SIGTERM, waits at most 40 s
# and prints how long it took; sets rc to its exit status.
stop_run() {
    local name=$1 step=$2 what=$3 job t0; shift 3
    "$@" > "$WORK/$name.log" 2>&1 &
    job=$!
    wait_step "$name" "$step" || fail "$name: no step $step"
    t0=$(date +%s.%N)
    kill -TERM $job
    wait_gone $job 40 || { fail "$name: still running 40 s after SIGTERM"; kill -KILL $job; }
    wait $job; rc=$?
    echo "$what: exited after $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s with status $rc"
}
# check_resume NAME LOG RC WANT_RC: the interrupted run NAME left a complete
# checkpoint, and resuming it gives the uninterrupted losses: 3 steps past
# the checkpoint (--stop-at keeps the 12-step schedule), which is where a
# resume goes wrong if it does; running on to 12 took 30 s more.
check_resume() {
    local name=$1 log=$2 rc=$3 want=$4
    [ "$rc" = "$want" ] && pass || fail "$name: exit status $rc, want $want: $(tail -3 "$log")"
    local at
    at=$(grep -o 'saving a checkpoint at step [0-9]*' "$log" | head -1 | grep -o '[0-9]*$')
    if [ -z "$at" ]; then fail "$name: no 'saving a checkpoint' line: $(tail -3 "$log")"; return; fi
    pass
    [ "$at" -lt 12 ] && [ -f "$WORK/$name/ckpt/step_$(printf %08d "$at")/manifest.yaml" ] && pass ||
        fail "$name: no complete checkpoint at step $at"
    local upto=$((at + 3 < 12 ? at + 3 : 12))
    "$MPIRUN" -np 2 "$CTRAIN" train "$C" $(run_dir "$name") --set checkpoint.resume=auto \
        --stop-at $upto > "$WORK/$name.resume.log" 2>&1 ||
        fail "$name: resume failed: $(tail -3 "$WORK/$name.resume.log")"
    grep -q "resumed from .*step_$(printf %08d "$at")" "$WORK/$name.resume.log" && pass ||
        fail "$name: did not resume from step $at"
    [ "$(losses "$WORK/$name" | wc -l)" = "$upto" ] &&
        [ "$(losses "$WORK/$name")" = "$(losses "$WORK/straight" | head -n $upto)" ] && pass ||
        fail "$name: resumed losses differ: $(diff <(losses "$WORK/$name") <(losses "$WORK/straight" | head -n $upto) | head -4)"
    echo "$name: stopped at step $at of 12, exit status $rc"
}

"$MPIRUN" -np 2 "$CTRAIN" train "$C" $(run_dir straight) > "$WORK/straight.log" 2>&1 ||
    fail "uninterrupted run: $(tail -3 "$WORK/straight.log")"
ms=$(grep -o '"ms":[0-9.]*' "$WORK/straight/metrics.jsonl" | tail -1 | cut -d: -f2)
echo "a step takes $ms ms"
awk -v ms="$ms" 'BEGIN { exit !(ms > 1000) }' && pass || echo "note: a step took $ms ms here, not over 1 s"

# 0. the warning: plain mpirun with the default 1 s kill timeout
"$MPIRUN" -np 2 "$CTRAIN" train "$C" $(run_dir warn) --stop-at 1 > "$WORK/warn.log" 2>&1
grep -q 'a SIGTERM to mpirun would lose the work' "$WORK/warn.log" &&
    grep -q 'HINT: .*launch/mpirun.sh.*OMPI_MCA_odls_base_sigkill_timeout=[0-9]' "$WORK/warn.log" && pass ||
    fail "no kill-timeout warning under plain mpirun: $(head -5 "$WORK/warn.log")"

# A. SIGTERM to plain mpirun, the kill timeout sized for a step + a save +
# 2 s (twice the measured step + 6 s: 8 s here, more under ASan)
T=$(awk -v ms="$ms" 'BEGIN { printf "%d", 2 * ms / 1000 + 6 }')
stop_run direct 1 "A. SIGTERM to mpirun (kill timeout $T s)" \
    env OMPI_MCA_odls_base_sigkill_timeout=$T "$MPIRUN" -np 2 "$CTRAIN" train "$C" $(run_dir direct)
grep -q 'would lose the work' "$WORK/direct.log" && fail "direct: warned with a sufficient timeout" || pass
check_resume direct "$WORK/direct.log" "$rc" 1

# B. SIGTERM to launch/mpirun.sh
stop_run wrapped 2 "B. SIGTERM to launch/mpirun.sh" bash "$LAUNCH" "$C" -- $(run_dir wrapped)
grep -q 'would lose the work' "$WORK/wrapped.log" && fail "wrapped: warned under launch/mpirun.sh" || pass
check_resume wrapped "$WORK/wrapped.log" "$rc" 75

# C. the MPIJob, emulated (needs root for the namespaces)
if [ "$(id -u)" != 0 ] || ! unshare --pid --fork --mount-proc --uts true 2>/dev/null; then
    echo "C. skipped: no PID/UTS namespaces here (needs root)"
    finish; exit
fi
pods=()
cleanup_pods() { for p in "${pods[@]}"; do kill -KILL "$p" 2>/dev/null; done; }
trap cleanup_pods EXIT
for w in w1 w2; do
    unshare --pid --fork --mount-proc --uts bash -c "hostname $w; exec $SRC/launch/k8s/worker-entry.sh sleep 100000" \
        > "$WORK/$w.log" 2>&1 &
    pods+=($!)
done
for w in w1 w2; do   # the host's pid of each pod's PID 1 (unshare's child)
    for _ in $(seq 50); do p=$(pgrep -P "${pods[${w#w} - 1]}" | head -1); [ -n "$p" ] && break; sleep 0.1; done
    echo "$p" > "$WORK/$w.pid1"
done
cat > "$WORK/agent.sh" <<EOF
#!/bin/sh
# mpirun's "ssh": runs the command inside worker pod \$1's namespaces
host=\$1; shift
exec nsenter -t "\$(cat "$WORK/\$host.pid1")" -p -u -m sh -c "\$*"
EOF
chmod +x "$WORK/agent.sh"
printf 'w1 slots=1\nw2 slots=1\n' > "$WORK/hosts"
bash "$LAUNCH" "$C" --hostfile "$WORK/hosts" --mca plm_rsh_agent "$WORK/agent.sh" --map-by ppr:1:node \
    --bind-to none -- $(run_dir k8s) > "$WORK/k8s.log" 2>&1 &
launcher=$!
wait_step k8s 2 || fail "k8s: no step 2: $(tail -3 "$WORK/k8s.log")"
t0=$(date +%s.%N)
kill -TERM $launcher $(cat "$WORK/w1.pid1") $(cat "$WORK/w2.pid1")
wait_gone $launcher 40 || { fail "k8s: launcher still running 40 s after SIGTERM"; kill -KILL $launcher; }
wait $launcher; rc=$?
echo "C. SIGTERM to the launcher and worker PID 1s: launcher exited after $(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s with status $rc"
for i in 0 1; do
    w=w$((i + 1))
    wait_gone "${pods[i]}" 20 || fail "k8s: pod $w still running 20 s after SIGTERM"
    wait "${pods[i]}"; prc=$?
    [ "$prc" = 0 ] && grep -q 'the ranks exited after' "$WORK/$w.log" && pass ||
        fail "k8s: pod $w exited $prc: $(tail -3 "$WORK/$w.log")"
    # the pod held one rank (pgrep in its own PID namespace found it)
    grep -q 'ranks of this pod ([0-9]* )' "$WORK/$w.log" && pass ||
        fail "k8s: pod $w did not hold exactly one rank: $(head -2 "$WORK/$w.log")"
done
check_resume k8s "$WORK/k8s.log" "$rc" 75
finish
