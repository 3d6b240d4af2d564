#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine (Debian slurm-wlm + munge), for CI and the tests.
#   .ci/slurm.sh [start]   install if missing, configure, start; idempotent (a running cluster is kept)
#   .ci/slurm.sh stop      stop the daemons this script started (by their pid files)
# Needs root. Accounting is off, so sacct does not work: watch jobs with scontrol and their outputs.
# The last line printed is `export SLURM_CONF=...` (the Debian default path: plain sbatch finds it).
set -euo pipefail

export SLURM_CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
STATE=${V2D_SLURM_STATE:-/var/spool/v2d_slurm}

stop() {  # the daemons named by these pid files; waits until they are gone (ports and sockets free)
    for file in "$@"; do
        [ -s "$file" ] || continue
        pid=$(cat "$file")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$file"
    done
}
SLURM_PIDS=("$STATE/slurmd.pid" "$STATE/slurmctld.pid")

node_ready() {  # the controller sees the node up, and this machine's slurmd answers
    sinfo -h -N -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated|completing)' \
        && scontrol show slurmd >/dev/null 2>&1
}

if [ "${1:-start}" = stop ]; then
    stop "${SLURM_PIDS[@]}" /run/munge/munged.pid
    exit 0
fi

if node_ready; then
    echo "slurm: already running" >&2
    echo "export SLURM_CONF=$SLURM_CONF"
    exit 0
fi

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    echo "slurm: installing slurm-wlm and munge" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
fi

stop "${SLURM_PIDS[@]}"  # leftovers of an earlier start that is no longer healthy; munged is reused
mkdir -p "$STATE/ctld" "$STATE/d" "$(dirname "$SLURM_CONF")" /run/munge /var/lib/munge /var/log/munge /etc/munge
if [ ! -s /etc/munge/munge.key ]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown -R munge:munge /etc/munge /run/munge /var/lib/munge /var/log/munge
chmod 0700 /etc/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge
chmod 0400 /etc/munge/munge.key

host=$(hostname -s)
cat >"$SLURM_CONF" <<EOF
# Written by .ci/slurm.sh: one node, root, no accounting, no cgroups.
ClusterName=v2d
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
MaxArraySize=100001
MinJobAge=300
KillWait=5
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
$(slurmd -C | head -1) NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

munge -n 2>/dev/null | unmunge >/dev/null 2>&1 || runuser -u munge -- /usr/sbin/munged
slurmctld -i   # -i: ignore state saved by an earlier run
slurmd

for _ in $(seq 60); do
    if node_ready; then
        echo "slurm: node $host is up ($(sinfo -h -N -o '%c CPUs, %m MB'))" >&2
        echo "export SLURM_CONF=$SLURM_CONF"
        exit 0
    fi
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    sleep 0.5
done
echo "slurm: node did not become idle; see $STATE/slurmctld.log and $STATE/slurmd.log" >&2
sinfo -N -l >&2 || true
exit 1
