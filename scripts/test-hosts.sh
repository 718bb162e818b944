#!/usr/bin/env bash
# The cluster tests' hosts on one machine: host A is this machine (10.200.0.1 on a veth), host B
# a network namespace `swtest-b` (10.200.0.2); a two-node Slurm cluster (slurmctld and slurmd "na"
# on A, slurmd "nb" in B, one munged), and an sshd in B that lets in one generated key; host C, a
# second namespace `swtest-c` (10.201.0.2, its own veth from A, 10.201.0.1), with an sshd of its
# own, for `workers run -S` across two hosts.
#
#   scripts/test-hosts.sh up       start everything; prints the env file's path (source it, or
#                                  export WORKERS_TEST_HOSTS_ENV=<path> for the tests)
#   scripts/test-hosts.sh down     stop what `up` started, by its recorded PIDs only; delete B
#   scripts/test-hosts.sh slurmd-b restart B's slurmd (after a test killed it)
#   scripts/test-hosts.sh status
#
# Needs root, and Debian's slurmctld slurmd slurm-client munge openssh-server iproute2
# (`.ci/run` installs them). Everything lives under $WORKERS_TEST_HOSTS_DIR (default
# /tmp/workers-test-hosts). Uses `nsenter --net`, not `ip netns exec`, which remounts /sys and
# breaks slurmd (notes/slurm.md, P10).
set -euo pipefail
D=${WORKERS_TEST_HOSTS_DIR:-/tmp/workers-test-hosts}
NS=swtest-b
NSC=swtest-c
B="nsenter --net=/run/netns/$NS"
C="nsenter --net=/run/netns/$NSC"
CONF=$D/etc/slurm.conf
export SLURM_CONF=$CONF

pids() { cat "$D"/run/*.pid 2>/dev/null || true; }

# The recorded PIDs that still are one of our daemons. After a reboot or a machine image taken
# mid-run the files outlive their processes, and a PID may since name somebody else's process:
# such a PID is never signalled.
live_pids() {
    local p
    for p in $(pids); do
        case "$(cat "/proc/$p/comm" 2>/dev/null)" in
            munged|slurmctld|slurmd|sshd|nsenter) grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null || echo "$p" ;;
        esac
    done
}

wait_for() {  # tries, command...
    local tries=$1; shift
    for _ in $(seq "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    return 1
}

add_namespace() {  # namespace, our veth, its veth, /24 prefix: we are .1, it is .2
    ip netns add "$1"
    ip link add "$2" type veth peer name "$3"
    ip link set "$3" netns "$1"
    ip addr add "$4.1/24" dev "$2"
    ip -n "$1" addr add "$4.2/24" dev "$3"
    ip link set "$2" up
    ip -n "$1" link set lo up
    ip -n "$1" link set "$3" up
}

start_slurmd() {  # node, launcher prefix
    local node=$1; shift
    setsid "$@" slurmd -D -f "$CONF" -N "$node" </dev/null >"$D/log/slurmd-$node.out" 2>&1 &
    echo $! >"$D/run/slurmd-$node.pid"
}

up() {
    if [ -n "$(live_pids)" ]; then echo "already up (run down first)" >&2; exit 1; fi
    # What a run that never reached `down` left behind (its processes are gone): the namespace,
    # the veth, the PID files.
    [ -e "$D/run" ] || [ -e /run/netns/$NS ] || [ -e /run/netns/$NSC ] && down >/dev/null
    rm -rf "$D"; mkdir -p "$D"/{etc,run,log,state/ctld,state/na,state/nb,munge,ssh}
    chmod 700 "$D/munge" "$D/ssh"
    add_namespace $NS veth-swa veth-swb 10.200.0
    add_namespace $NSC veth-swc veth-swd 10.201.0

    mkdir -p /run/munge && chmod 755 /run/munge
    mungekey --create --keyfile="$D/munge/munge.key" 2>/dev/null || dd if=/dev/urandom of="$D/munge/munge.key" bs=1024 count=1 2>/dev/null
    chmod 600 "$D/munge/munge.key"
    munged --key-file="$D/munge/munge.key" --socket=/run/munge/munge.socket.2 --pid-file="$D/run/munged.pid" \
        --log-file="$D/log/munged.log" --seed-file="$D/munge/seed" -f
    wait_for 50 test -s "$D/run/munged.pid"

    local host; host=$(hostname -s)  # slurmctld insists that SlurmctldHost is `hostname -s`
    cat >"$CONF" <<CONF
ClusterName=workers
SlurmctldHost=$host(10.200.0.1)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$D/state/ctld
SlurmdSpoolDir=$D/state/%n
SlurmctldPidFile=$D/run/slurmctld.daemon-pid
SlurmdPidFile=$D/run/slurmd-%n.daemon-pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd-%n.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=2
InactiveLimit=0
SlurmdTimeout=30
EnforcePartLimits=ALL
NodeName=na NodeHostname=$host NodeAddr=10.200.0.1 CPUs=4 Boards=1 SocketsPerBoard=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=1000
NodeName=nb NodeHostname=$host NodeAddr=10.200.0.2 CPUs=4 Boards=1 SocketsPerBoard=1 CoresPerSocket=4 ThreadsPerCore=1 RealMemory=1000
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
    setsid slurmctld -D -f "$CONF" </dev/null >"$D/log/slurmctld.out" 2>&1 &
    echo $! >"$D/run/slurmctld.pid"
    wait_for 100 sh -c "scontrol ping | grep -q 'is UP'" || { echo "slurmctld did not come up" >&2; tail "$D/log/slurmctld.log" >&2; exit 1; }
    start_slurmd na
    start_slurmd nb $B
    wait_for 100 sh -c "[ \"\$(sinfo -h -o %T | sort -u | tr -d '\n')\" = idle ]" || { echo "nodes not idle: $(sinfo -h -o '%N %T')" >&2; exit 1; }

    ssh-keygen -q -t ed25519 -N "" -f "$D/ssh/host_key"
    ssh-keygen -q -t ed25519 -N "" -f "$D/ssh/client_key"
    cp "$D/ssh/client_key.pub" "$D/ssh/authorized_keys"
    cat >"$D/ssh/sshd_config" <<SSHD
Port 22
ListenAddress 10.200.0.2
HostKey $D/ssh/host_key
PidFile $D/run/sshd.daemon-pid
AuthorizedKeysFile $D/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
LogLevel ERROR
SSHD
    sed -e "s/^ListenAddress .*/ListenAddress 10.201.0.2/" -e "s|^PidFile .*|PidFile $D/run/sshd-c.daemon-pid|" \
        "$D/ssh/sshd_config" >"$D/ssh/sshd_config_c"
    mkdir -p /run/sshd && chmod 755 /run/sshd
    setsid $B /usr/sbin/sshd -D -f "$D/ssh/sshd_config" -E "$D/log/sshd.log" </dev/null >"$D/log/sshd.out" 2>&1 &
    echo $! >"$D/run/sshd.pid"
    setsid $C /usr/sbin/sshd -D -f "$D/ssh/sshd_config_c" -E "$D/log/sshd-c.log" </dev/null >"$D/log/sshd-c.out" 2>&1 &
    echo $! >"$D/run/sshd-c.pid"
    cat >"$D/ssh/client_options" <<OPTS
-i $D/ssh/client_key -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=5
OPTS
    # shellcheck disable=SC2046
    wait_for 50 ssh $(cat "$D/ssh/client_options") root@10.200.0.2 true || { echo "sshd in $NS does not answer" >&2; cat "$D/log/sshd.log" >&2; exit 1; }
    # shellcheck disable=SC2046
    wait_for 50 ssh $(cat "$D/ssh/client_options") root@10.201.0.2 true || { echo "sshd in $NSC does not answer" >&2; cat "$D/log/sshd-c.log" >&2; exit 1; }

    cat >"$D/env" <<ENV
SLURM_CONF=$CONF
WORKERS_TEST_HOST_A=10.200.0.1
WORKERS_TEST_HOST_B=10.200.0.2
WORKERS_TEST_NETNS_B=$NS
WORKERS_TEST_HOST_C=10.201.0.2
WORKERS_TEST_NETNS_C=$NSC
WORKERS_TEST_SSH_OPTIONS=$(cat "$D/ssh/client_options")
WORKERS_TEST_HOSTS_SCRIPT=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
ENV
    echo "$D/env"
}

# Processes in namespace $1 (slurmstepd, agents, workers, jobs) that are not its daemons.
leftovers_in() {
    [ -e "/run/netns/$1" ] || return 0
    local ns daemons p
    ns="net:[$(stat -L -c %i "/run/netns/$1")]"
    daemons=" $(live_pids | tr '\n' ' ') "
    for p in $(ls /proc | grep -E '^[0-9]+$'); do
        [ "$(readlink "/proc/$p/ns/net" 2>/dev/null)" = "$ns" ] || continue
        case "$daemons" in *" $p "*) continue ;; esac
        echo "$p"
    done
}
leftovers_in_b() { leftovers_in $NS; }
leftovers_in_c() { leftovers_in $NSC; }

down() {
    # scancel only while our slurmctld runs: with none it would wait out its message timeout.
    if [ -s "$D/run/slurmctld.pid" ] && live_pids | grep -qx "$(cat "$D/run/slurmctld.pid")"; then
        scancel -u root 2>/dev/null || true
    fi
    local live p
    live=$(live_pids)
    for p in $live; do kill -TERM "$p" 2>/dev/null || true; done
    for _ in $(seq 30); do [ -z "$(live_pids)" ] && break; sleep 0.1; done
    for p in $(live_pids); do kill -KILL "$p" 2>/dev/null || true; done
    for p in $(leftovers_in_b); do kill -KILL "$p" 2>/dev/null || true; done
    for p in $(leftovers_in_c); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del $NS 2>/dev/null || true
    ip link del veth-swa 2>/dev/null || true
    ip netns del $NSC 2>/dev/null || true
    ip link del veth-swc 2>/dev/null || true
    # The env file too: tests that find it take the hosts to be up.
    rm -f "$D"/run/*.pid "$D/env"
    echo "test hosts down"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    slurmd-b)
        [ -s "$D/run/slurmd-nb.pid" ] && kill -KILL "$(cat "$D/run/slurmd-nb.pid")" 2>/dev/null || true
        start_slurmd nb $B
        wait_for 100 sh -c "[ \"\$(sinfo -h -n nb -o %T)\" = idle ]" || scontrol update NodeName=nb State=RESUME
        ;;
    leftovers-b) leftovers_in_b ;;
    leftovers-c) leftovers_in_c ;;
    status) sinfo; ip -n $NS addr show veth-swb | grep inet || true ;;
    *) echo "usage: $0 up|down|slurmd-b|leftovers-b|leftovers-c|status" >&2; exit 2 ;;
esac
