#!/usr/bin/env bash
# A single-node SLURM cluster on this machine, for CI and for trying the sbatch script locally:
#   launch/slurm/ci/cluster.sh start DIR   # munged, slurmctld, slurmd; waits for the node to be idle
#   launch/slurm/ci/cluster.sh stop DIR    # stops them by their process ids
# Debian's SLURM (22.05) without systemd: cgroup/v1 in cgroup.conf, proctrack/linuxproc, task/none.
# Needs root and the packages slurmctld slurmd munge (apt install slurmctld slurmd munge).
set -euo pipefail
cmd=${1:?usage: cluster.sh start|stop DIR}
dir=$(mkdir -p "${2:?usage: cluster.sh start|stop DIR}" && cd "$2" && pwd)

stop() {
    for name in slurmd slurmctld munged; do
        if [[ -f "$dir/$name.pid" ]]; then
            kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
            rm -f "$dir/$name.pid"
        fi
    done
}

if [[ $cmd == stop ]]; then
    stop
    exit 0
fi
[[ $cmd == start ]] || { echo "cluster.sh: unknown command $cmd (start or stop)" >&2; exit 2; }
for tool in munged mungekey slurmctld slurmd sinfo; do
    command -v "$tool" >/dev/null || { echo "cluster.sh: $tool not found: apt install slurmctld slurmd munge" >&2; exit 3; }
done
cpus=$(nproc)
mkdir -p "$dir/state" "$dir/spool" /etc/slurm /run/munge
chown munge:munge /run/munge
[[ -f /etc/munge/munge.key ]] || mungekey --create --keyfile=/etc/munge/munge.key
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=gestalt-ci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
SchedulerType=sched/backfill
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
NodeName=localhost CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
echo "CgroupPlugin=cgroup/v1" > /etc/slurm/cgroup.conf
trap 'stop' ERR
# munged runs as user munge, which may not enter DIR: its pid file stays in /run/munge.
runuser -u munge -- munged --pid-file=/run/munge/munged.pid --socket=/run/munge/munge.socket.2
cp /run/munge/munged.pid "$dir/munged.pid"
slurmctld
slurmd
for _ in $(seq 1 60); do
    state=$(sinfo -h -o %t 2>/dev/null || true)
    if [[ $state == idle ]]; then
        echo "cluster.sh: node localhost idle ($cpus CPUs); logs in $dir"
        exit 0
    fi
    sleep 1
done
echo "cluster.sh: the node did not become idle (sinfo: ${state:-nothing}); logs in $dir" >&2
tail -5 "$dir/slurmctld.log" "$dir/slurmd.log" >&2 || true
stop
exit 1
