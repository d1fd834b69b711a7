#!/usr/bin/env bash
# A one-node SLURM cluster on this machine (Debian's slurm-wlm and munge), for the executor's
# tests: the controller and the node daemon on localhost, one partition `debug` with every CPU.
# Needs root. Idempotent: a cluster already answering is left as it is. Prints `sinfo` when up.
set -euo pipefail
if sinfo -h >/dev/null 2>&1 && sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)'; then
    sinfo; exit 0
fi
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 ||
        { apt-get update -qq && apt-get install -y -q slurm-wlm munge >/dev/null; }
fi
host=$(hostname -s)
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge /etc/slurm \
         /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
[ -s /etc/munge/munge.key ] || dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null
chown -R munge:munge /etc/munge /var/lib/munge /var/log/munge /run/munge
chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key
pidof munged >/dev/null || runuser -u munge -- munged     # pidof skips zombies
mem=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 2048 ))
cat > /etc/slurm/slurm.conf <<CONF
ClusterName=knowshift-test
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
DefMemPerCPU=$(( mem / $(nproc) ))
SchedulerType=sched/backfill
ReturnToService=2
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
MpiDefault=none
NodeName=${host} NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=${mem} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
CONF
pidof slurmctld >/dev/null || slurmctld
pidof slurmd >/dev/null || slurmd
for _ in $(seq 60); do
    if sinfo -h -o %T 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then sinfo; exit 0; fi
    sleep 1
done
echo "the SLURM cluster did not come up in 60 s; see /var/log/slurm/" >&2
exit 1
