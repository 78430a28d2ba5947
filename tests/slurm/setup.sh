#!/usr/bin/env bash
# A real one-node Slurm on loopback, for CI and for trying launch/slurm/
# by hand: installs what is missing (Debian/Ubuntu), starts munged, writes
# /etc/slurm/slurm.conf for this host alone, starts slurmctld and slurmd as
# plain daemons (no systemd needed) and waits until the node is idle.
#
# Idempotent: a second run with the same config and healthy daemons only
# checks them. It refuses to overwrite a slurm.conf it did not write, so it
# cannot clobber a real cluster's config. No accounting (no slurmdbd), no
# cgroups, no GPUs: it is for testing launch scripts, not for production.
# tests/slurm/teardown.sh stops what this started.
#
# Environment: CT_SLURM_WAIT_S (default 60) bounds the wait for the node;
# CT_SLURM_FORCE=1 overwrites a foreign slurm.conf.
set -euo pipefail
[ "$(id -u)" = 0 ] || exec sudo -E bash "$0" "$@"

NODE=$(hostname -s)
CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
MARK="# written by ctrain tests/slurm/setup.sh"
STATE=/run/ctrain-slurm            # what this script started, for teardown.sh
WAIT_S=${CT_SLURM_WAIT_S:-60}
# slurmd + slurmctld + client tools; munge for auth; libpmix-dev because
# Slurm's mpi/pmix plugin dlopens pmix2/lib/libpmix.so, the unversioned
# name that only the -dev package ships; Open MPI for the tests' mpicc.
PKGS="slurmd slurmctld slurm-client munge libpmix-dev openmpi-bin libopenmpi-dev"

log() { echo "slurm-setup: $*"; }
die() { echo "slurm-setup: error: $*" >&2; exit 1; }
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---- packages -------------------------------------------------------------------
missing=$(for p in $PKGS; do installed "$p" || echo "$p"; done)
if [ -n "$missing" ]; then
    log "installing:" $missing
    # Keep Debian's maintainer scripts from starting munge/slurm themselves
    # (they would start slurmd with no config); this script starts them.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e $policy ]; then
        printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy
        trap 'rm -f '$policy EXIT
    fi
    timeout 600 apt-get update -qq
    DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
mkdir -p $STATE

# ---- munge ----------------------------------------------------------------------
install -d -o munge -g munge -m 0700 /etc/munge /var/lib/munge /var/log/munge
install -d -o munge -g munge -m 0755 /run/munge
if [ ! -s /etc/munge/munge.key ]; then
    log "creating /etc/munge/munge.key"
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key && chmod 0400 /etc/munge/munge.key
munge_ok() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }
if ! munge_ok; then
    log "starting munged"
    # --force: a stale socket from an earlier, killed munged is not an error.
    runuser -u munge -- /usr/sbin/munged --force
    touch $STATE/munged
    for _ in $(seq 50); do munge_ok && break; sleep 0.2; done
    munge_ok || die "munged does not answer; see /var/log/munge/munged.log"
fi

# ---- slurm.conf -----------------------------------------------------------------
cpus=$(nproc)
# Configured memory below the real total: a node that reports less than
# its configured RealMemory is drained, and MemTotal can shift slightly.
mem=$(free -m | awk '/^Mem:/ {print int($2 * 0.9)}')
new=$(mktemp)
cat > "$new" <<EOF
$MARK
# One node on loopback for tests; see launch/README.md.
ClusterName=ctrain
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job may start again only after its credential expired (default
# 120 s) and a scheduler pass saw it (default every 60 s, backfill 30 s):
# short here, to keep the requeue test short.
AuthInfo=cred_expire=10
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MailProg=/bin/true
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in containers or sandboxes: track processes through /proc and
# do no binding; accounting off (scontrol, not sacct, reports job states).
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SelectType=select/cons_tres
# CR_CPU: a task takes a CPU, not a whole core, so -n \$(nproc) fits even
# when the CPUs are hyperthreads.
SelectTypeParameters=CR_CPU
# Scripts say --mpi=pmix themselves, as launch/slurm/train.sbatch does.
MpiDefault=none
ReturnToService=2
JobRequeue=1
# Trust this file's CPUs and memory over what slurmd detects: a container's
# CPU set can differ from the topology hwloc sees.
SlurmdParameters=config_overrides
# Finished jobs stay visible to 'scontrol show job' for 10 minutes.
MinJobAge=600
KillWait=10
InactiveLimit=0
SlurmdTimeout=60
NodeName=$NODE NodeHostname=$NODE NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=10 State=UP
EOF

healthy() {
    alive /run/slurmctld.pid && alive /run/slurmd.pid \
        && [ "$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null)" = idle ]
}

if [ -f "$CONF" ] && ! grep -qxF "$MARK" "$CONF" && [ "${CT_SLURM_FORCE:-0}" != 1 ]; then
    rm -f "$new"
    die "$CONF exists and was not written by this script; set CT_SLURM_FORCE=1 to replace it"
fi
if [ -f "$CONF" ] && cmp -s "$new" "$CONF" && healthy; then
    rm -f "$new"
    log "already up: node $NODE idle"
    exit 0
fi

# Config changed or daemons not healthy: stop ours, write, start fresh.
bash "$(dirname "$0")/teardown.sh" --keep-munge
install -d -m 0755 $CONF_DIR /var/log/slurm
install -d -m 0700 /var/spool/slurmctld /var/spool/slurmd
install -m 0644 "$new" "$CONF" && rm -f "$new"
# Fresh state each start (-c): no jobs or node states from an earlier run.
rm -rf /var/spool/slurmctld/* /var/spool/slurmd/*

log "starting slurmctld and slurmd for node $NODE ($cpus CPUs, $mem MiB)"
slurmctld -c || die "slurmctld did not start; see /var/log/slurm/slurmctld.log"
slurmd -N "$NODE" || die "slurmd did not start; see /var/log/slurm/slurmd.log"
touch $STATE/slurm

deadline=$((SECONDS + WAIT_S))
while [ $SECONDS -lt $deadline ]; do
    state=$(sinfo -h -N -n "$NODE" -o %t 2>/dev/null || true)
    [ "$state" = idle ] && { log "node $NODE idle after ${SECONDS}s"; exit 0; }
    sleep 0.5
done
echo "slurm-setup: error: node $NODE not idle after ${WAIT_S}s (state '${state:-none}')" >&2
scontrol show node "$NODE" >&2 || true
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
