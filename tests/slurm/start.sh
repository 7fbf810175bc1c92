#!/usr/bin/env bash
# Starts a single-node Slurm cluster on localhost for the launcher tests (idempotent).
# Needs root; installs Debian's slurmctld, slurmd, slurm-client and munge when missing.
# Exit status 3: Slurm cannot be installed here (not root, no apt) — the caller may skip.
# Daemons this script starts are listed in $STARTED (default /run/autoprompt-slurm.started)
# so that stop.sh stops exactly those.
# No systemd here: munged and the Slurm daemons are started directly. No cgroups
# (proctrack/linuxproc, task/none); no accounting, so MinJobAge keeps finished jobs visible.
set -euo pipefail

STARTED="${STARTED:-/run/autoprompt-slurm.started}"
if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "slurm: cannot install Slurm here (needs root and apt-get)" >&2
    exit 3
  fi
  echo "slurm: installing packages"
  if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slurmctld slurmd slurm-client munge >/dev/null; }; then
    echo "slurm: apt-get could not install slurmctld slurmd slurm-client munge" >&2
    exit 3
  fi
fi

host=$(hostname -s)
cpus=$(nproc)
mem_mb=$(( $(awk '/MemTotal/ {print int($2 / 1024)}' /proc/meminfo) - 2048 ))
conf_dir=/etc/slurm
mkdir -p "$conf_dir" /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
cat > "$conf_dir/slurm.conf" <<CONF
ClusterName=autoprompt-test
SlurmctldHost=${host}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=3600
MaxArraySize=10001
DependencyParameters=kill_invalid_depend
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${mem_mb} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF

if [ ! -s /etc/munge/munge.key ]; then
  mkdir -p /etc/munge
  dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge
chmod 0755 /run/munge

# A daemon counts as running only if its process is alive and not a zombie.
running() {
  local pid
  for pid in $(pgrep -x "$1"); do
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ] && return 0
  done
  return 1
}
touch "$STARTED"
if ! running munged; then runuser -u munge -- munged --force; echo munged >> "$STARTED"; fi
if ! running slurmctld; then slurmctld; echo slurmctld >> "$STARTED"; fi
if ! running slurmd; then slurmd; echo slurmd >> "$STARTED"; fi

for _ in $(seq 1 60); do
  state=$(sinfo -h -o %T 2>/dev/null | head -n1 || true)
  if [ "$state" = "idle" ] || [ "$state" = "mixed" ] || [ "$state" = "allocated" ]; then
    echo "slurm: node ${host} is ${state}"
    exit 0
  fi
  if [ "$state" = "drained" ] || [ "$state" = "down" ] || [ "$state" = "drain" ]; then
    scontrol update NodeName="$host" State=RESUME >/dev/null 2>&1 || true
  fi
  sleep 1
done
echo "slurm: node did not become idle; state: $(sinfo -h -o '%T %E' 2>&1)" >&2
tail -n 20 /var/log/slurm/slurmctld.log /var/log/slurm/slurmd.log >&2 || true
exit 1
