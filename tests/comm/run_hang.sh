#!/usr/bin/env bash
# A rank stopped from outside must be named, and no other rank.
#
#   run_hang.sh stop NP TP K MPIEXEC MPI_FAILURE_BINARY [NUMPROC_FLAG]
# runs `mpi_failure loop` on NP ranks (dp = NP/TP), SIGSTOPs rank K once
# every rank is looping, and checks that every other rank logs, within
# comm.timeout_s + 5 s of the stop, that rank K (its host and pid) holds up
# the collective it waits in, that no other rank is named, and that
# rank K itself blames no one. It prints the time from the stop to the last
# of those reports.
#
#   run_hang.sh suspend NP TP K MPIEXEC MPI_FAILURE_BINARY [NUMPROC_FLAG]
# gives rank K a 3 s timeout and the others 60 s. It stops rank K+1 (so that
# rank K waits inside a collective), 1 s later rank K, resumes rank K after
# 5 s and rank K+1 0.5 s after that. Rank K's collective has then lasted
# 6.5 s, but rank K was running for only 1.5 s of them: it must say that it
# was suspended, not end the job nor blame anyone, and the job must finish
# with exit status 0. Use NP=2 (rank K+1 must be in every group of rank K).
set -u
mode=$1 np=$2 tp=$3 k=$4 mpiexec=$5 bin=$6 npflag=${7:--np}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
timeout_s=3
tag="run_hang.sh $mode np=$np tp=$tp k=$k"

out=$(mktemp)
mpid=
pid_k=
pid_j=
# Only while the job runs: once mpirun is reaped, the pids may be reused.
cleanup() {
  if [ -n "$mpid" ] && kill -0 "$mpid" 2>/dev/null; then
    for p in $pid_k $pid_j; do kill -CONT "$p" 2>/dev/null; done
    kill -TERM "$mpid" 2>/dev/null; sleep 1; kill -KILL "$mpid" 2>/dev/null
    for p in $pid_k $pid_j; do kill -KILL "$p" 2>/dev/null; done
  fi
  rm -f "$out"
}
trap cleanup EXIT
fail() { echo "--- output"; cat "$out"; echo "FAIL $tag: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

case $mode in
  stop) args=(loop "$timeout_s" "$tp" 40) ;;
  suspend) args=(loop 60 "$tp" 8 "$k" 3) ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
timeout --kill-after=5 90 "$mpiexec" "$npflag" "$np" --oversubscribe "$bin" "${args[@]}" >"$out" 2>&1 &
mpid=$!

# Every rank prints its pid once it is looping.
for _ in $(seq 300); do
  [ "$(grep -c 'mpi_failure: rank [0-9]* of [0-9]* pid [0-9]* ready' "$out")" -ge "$np" ] && break
  kill -0 "$mpid" 2>/dev/null || fail "the job ended before every rank was ready"
  sleep 0.1
done
pid_of() { sed -n "s/^mpi_failure: rank $1 of $np pid \([0-9]*\) ready$/\1/p" "$out"; }
pid_k=$(pid_of "$k")
[ -n "$pid_k" ] || fail "rank $k never said it was ready"
sleep 0.5
if [ "$mode" = suspend ]; then
  j=$(( (k + 1) % np ))
  pid_j=$(pid_of "$j")
  [ -n "$pid_j" ] || fail "rank $j never said it was ready"
  kill -STOP "$pid_j"
  sleep 1
  kill -STOP "$pid_k"
  sleep 5
  kill -CONT "$pid_k"
  sleep 0.5
  kill -CONT "$pid_j"
  wait "$mpid"
  rc=$?
  mpid=
  cat "$out"
  echo "$tag: exit status $rc"
  [ "$rc" -eq 0 ] || fail "the job failed after rank $k was resumed"
  grep -q "ERROR" "$out" && fail "a rank logged an error"
  grep -q "mpi_failure: rank $k finished" "$out" || fail "rank $k did not finish"
  grep -q "r$k/$np WARN .*was suspended for" "$out" || fail "rank $k did not say it was suspended"
  echo "ok $tag"
  exit 0
fi
kill -STOP "$pid_k"
t_stop=$(now)
echo "$tag: stopped rank $k (pid $pid_k)"

# The report lines: "hostname:pid rR/N ERROR ... rank J (host H, pid P)
# holds up collective #S ..." ("has not entered" for a rank that answers).
# Wait until every other rank has one.
named() { grep -Eo "r[0-9]*/$np ERROR .*rank [0-9]+ \(host [^,]*, pid [0-9]+\) (holds up|has not entered)" "$out"; }
reporters() { named | sed 's|^r\([0-9]*\)/.*|\1|' | sort -un | tr '\n' ' '; }
want=$(seq 0 $((np - 1)) | grep -vx "$k" | tr '\n' ' ')
t_done=
while :; do
  if [ -z "$t_done" ] && [ "$(reporters)" = "$want" ]; then t_done=$(now); fi
  kill -0 "$mpid" 2>/dev/null || break
  awk -v e="$(elapsed "$t_stop" "$(now)")" -v l=$((timeout_s + 30)) 'BEGIN { exit !(e > l) }' && break
  sleep 0.1
done
[ -z "$t_done" ] && [ "$(reporters)" = "$want" ] && t_done=$(now)
t_end=$(now)
wait "$mpid" 2>/dev/null
rc=$?
mpid=
cat "$out"
echo "$tag: exit status $rc, job ended $(elapsed "$t_stop" "$t_end") s after the stop"
[ -n "$t_done" ] || fail "not every other rank (want: $want; got: $(reporters)) named a rank"
took=$(elapsed "$t_stop" "$t_done")
echo "$tag: every other rank named a rank ${took} s after the stop (comm.timeout_s $timeout_s)"
[ "$rc" -ne 0 ] || fail "the job exited 0"
bad=$(named | grep -Ev "rank $k \(host [^,]*, pid $pid_k\) (holds up|has not entered)$")
[ -z "$bad" ] || fail "a rank other than $k (pid $pid_k) was named: $bad"
grep "r$k/$np " "$out" | grep -Eq "holds up|has not entered|dead or hung" && fail "the stopped rank $k blamed a peer"
awk -v e="$took" -v l=$((timeout_s + 5)) 'BEGIN { exit !(e > l) }' \
  && fail "the report took ${took} s, more than comm.timeout_s + 5 s"
echo "ok $tag"
