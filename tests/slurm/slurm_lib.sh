# shellcheck shell=bash
# Helpers for the Slurm tests: is a cluster up, read a job's fields, wait
# for a job or a log line with a bound. Sourced; needs only Slurm's client
# tools. scontrol, not sacct: setup.sh runs without accounting, and keeps
# finished jobs visible for 10 minutes (MinJobAge=600).

# slurm_up: a controller answers and some node can take jobs.
slurm_up() {
    command -v sinfo >/dev/null 2>&1 \
        && timeout 10 sinfo -h -o %t 2>/dev/null | grep -qE '^(idle|mix|alloc)'
}

# job_field JOBID FIELD: one field of `scontrol show job`, e.g. JobState.
job_field() {
    timeout 10 scontrol show job -o "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

# wait_job JOBID SECONDS: waits until the job reaches a final state and
# prints it. A REQUEUED or PENDING job is waited through. On timeout it
# cancels the job, prints TIMEOUT_WAITING and returns 1.
wait_job() {
    local id=$1 deadline=$((SECONDS + $2)) state=
    while [ $SECONDS -lt $deadline ]; do
        state=$(job_field "$id" JobState)
        case $state in
        COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | PREEMPTED | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
            echo "$state"; return 0 ;;
        esac
        sleep 1
    done
    timeout 10 scancel "$id" 2>/dev/null
    echo "TIMEOUT_WAITING(last state ${state:-unknown})"
    return 1
}

# wait_log FILE PATTERN COUNT SECONDS: waits until FILE has COUNT lines
# matching the fixed string PATTERN.
wait_log() {
    local deadline=$((SECONDS + $4))
    while [ $SECONDS -lt $deadline ]; do
        [ "$(grep -cF -- "$2" "$1" 2>/dev/null)" -ge "$3" ] 2>/dev/null && return 0
        sleep 0.5
    done
    return 1
}
