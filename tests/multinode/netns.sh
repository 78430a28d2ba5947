#!/bin/sh
# Several "nodes" on one machine, for the multi-node tests: each node is a
# network namespace with one address on a private bridge, and runs its
# commands with its own hostname (a UTS namespace), so MPI and Slurm see
# separate hosts. Nothing touches the host's interfaces or /etc: the bridge
# lives in a namespace of its own, the veth pairs are created directly in
# the namespaces, and the only addresses are SUBNET.1 .. SUBNET.N.
#
#   netns.sh check                 exit 0 when namespaces can be made here
#   netns.sh up PREFIX N SUBNET    makes PREFIXbr (the bridge) and nodes
#                                  PREFIX1..PREFIXN at SUBNET.1..SUBNET.N/24
#                                  (e.g. netns.sh up ctmn42n 2 10.213.42)
#   netns.sh down PREFIX N         removes them; safe to run twice, and it
#                                  ends every process still inside first
#   netns.sh exec K CMD...         runs CMD in node K, hostname PREFIXK
#   netns.sh agent HOST CMD...     Open MPI's launch agent (plm_rsh_agent,
#                                  in place of ssh): HOST is PREFIXK or
#                                  SUBNET.K; CMD is a shell command line
#
# exec and agent read CT_NETNS_PREFIX and CT_NETNS_SUBNET. They enter the
# network namespace with nsenter, not `ip netns exec`, which remounts /sys
# (slurmd then finds no cgroup mount). Needs root.
set -eu

usage() { sed -n '2,22p' "$0" >&2; exit 2; }
die() { echo "netns.sh: $*" >&2; exit 1; }

# run_in K CMD...: CMD (argv) inside node K with hostname PREFIXK.
run_in() {
    k=$1; shift
    ns=${CT_NETNS_PREFIX:?netns.sh: CT_NETNS_PREFIX is not set}$k
    [ -e "/run/netns/$ns" ] || die "no namespace $ns (netns.sh up first)"
    exec nsenter --net="/run/netns/$ns" unshare --uts \
        sh -c 'hostname "$0" && exec "$@"' "$ns" "$@"
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case $cmd in
check)
    [ "$(id -u)" = 0 ] || { echo "netns.sh: not root" >&2; exit 1; }
    for t in ip nsenter unshare; do command -v $t >/dev/null || { echo "netns.sh: no $t" >&2; exit 1; }; done
    probe=ctnsprobe$$
    ip netns add $probe 2>/dev/null || { echo "netns.sh: cannot create a network namespace" >&2; exit 1; }
    ok=0
    ip -n $probe link add vp0 type veth peer name vp1 2>/dev/null \
        && ip -n $probe link add br0 type bridge 2>/dev/null \
        && nsenter --net=/run/netns/$probe unshare --uts true 2>/dev/null && ok=1
    ip netns del $probe
    [ $ok = 1 ] || { echo "netns.sh: no veth, bridge or UTS namespace support" >&2; exit 1; }
    ;;
up)
    [ $# -eq 3 ] || usage
    p=$1 n=$2 net=$3
    ip netns add "${p}br"
    ip -n "${p}br" link add br0 type bridge
    ip -n "${p}br" link set br0 up
    k=1
    while [ "$k" -le "$n" ]; do
        ip netns add "$p$k"
        ip link add "vb$k" netns "${p}br" type veth peer name eth0 netns "$p$k"
        ip -n "${p}br" link set "vb$k" master br0
        ip -n "${p}br" link set "vb$k" up
        ip -n "$p$k" link set lo up
        ip -n "$p$k" addr add "$net.$k/24" dev eth0
        ip -n "$p$k" link set eth0 up
        k=$((k + 1))
    done
    ;;
down)
    [ $# -eq 2 ] || usage
    p=$1 n=$2
    k=1
    while [ "$k" -le "$n" ]; do
        if [ -e "/run/netns/$p$k" ]; then
            # a namespace outlives `ip netns del` while a process is inside
            pids=$(ip netns pids "$p$k" 2>/dev/null || true)
            [ -n "$pids" ] && kill -KILL $pids 2>/dev/null || true
            ip netns del "$p$k" 2>/dev/null || true
        fi
        k=$((k + 1))
    done
    ip netns del "${p}br" 2>/dev/null || true
    ;;
exec)
    [ $# -ge 2 ] || usage
    k=$1; shift
    run_in "$k" "$@"
    ;;
agent)
    [ $# -ge 2 ] || usage
    host=$1; shift
    p=${CT_NETNS_PREFIX:?netns.sh: CT_NETNS_PREFIX is not set}
    net=${CT_NETNS_SUBNET:?netns.sh: CT_NETNS_SUBNET is not set}
    case $host in
    "$p"[0-9]*) k=${host#"$p"} ;;
    "$net".[0-9]*) k=${host#"$net".} ;;
    *) die "agent: unknown host $host (want $p<K> or $net.<K>)" ;;
    esac
    # Open MPI passes a command line for a remote shell, as to ssh.
    run_in "$k" sh -c "$*"
    ;;
*) usage ;;
esac
