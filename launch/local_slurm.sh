#!/usr/bin/env bash
# A real single-node SLURM cluster on localhost, for the launcher's tests and for trying sweeps:
#   sudo bash launch/local_slurm.sh start [DIR]    install (apt-get) if missing, then munged, slurmctld, slurmd
#   sudo bash launch/local_slurm.sh status [DIR]
#   sudo bash launch/local_slurm.sh stop [DIR]     stop the daemons started here, remove DIR
# DIR (default /tmp/gfa-local-slurm, or $LOCAL_SLURM_DIR) holds slurm.conf, state, spool, logs, pid files.
# Needs root (SlurmUser=root). Idempotent: start on a running cluster, or stop on a stopped one, does
# nothing. Clients find the cluster through /etc/slurm/slurm.conf when that file is ours or absent;
# otherwise `export SLURM_CONF=DIR/slurm.conf` (the script says which). One line per action.
set -euo pipefail
action=${1:?usage: launch/local_slurm.sh start|stop|status [DIR]}
dir=$(realpath -m "${2:-${LOCAL_SLURM_DIR:-/tmp/gfa-local-slurm}}")
conf=$dir/slurm.conf
marker="# written by gfa-jax launch/local_slurm.sh"
etc_conf=/etc/slurm/slurm.conf
node=$(hostname -s)

say() { echo "local_slurm: $*"; }

alive() {  # pidfile
  [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sinfo >/dev/null \
     && command -v munged >/dev/null; then
    return
  fi
  say "installing slurmctld slurmd slurm-client munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null
}

write_conf() {
  local cpus mem_mb
  cpus=$(nproc)
  mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  mkdir -p "$dir/state" "$dir/spool" "$dir/log"
  cat >"$conf" <<EOF
$marker
ClusterName=gfa-local
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MinJobAge=3600
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=30
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=local Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
  say "wrote $conf ($node: $cpus CPUs, $mem_mb MB)"
  if [[ ! -e $etc_conf ]] || grep -qF "$marker" "$etc_conf"; then
    mkdir -p "$(dirname "$etc_conf")"
    cp "$conf" "$etc_conf"
    say "installed it as $etc_conf"
  else
    say "$etc_conf belongs to another cluster: export SLURM_CONF=$conf"
  fi
}

start_munge() {
  if [[ -S /run/munge/munge.socket.2 ]] && munge -n </dev/null >/dev/null 2>&1; then
    say "munged already running"
    return
  fi
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  chmod 0755 /run/munge
  [[ -f /etc/munge/munge.key ]] || { /usr/sbin/mungekey --create >/dev/null 2>&1 || create-munge-key -f; }
  chown munge:munge /etc/munge/munge.key
  runuser -u munge -- /usr/sbin/munged --force
  say "started munged"
}

wait_idle() {
  local state=""
  for _ in $(seq 1 120); do
    state=$(SLURM_CONF=$conf sinfo -h -n "$node" -o %t 2>/dev/null || true)
    if [[ $state == idle* || $state == mix* || $state == alloc* ]]; then
      say "node $node is $state"
      return
    fi
    sleep 0.5
  done
  say "node $node did not come up (state '${state}'); logs in $dir/log" >&2
  exit 1
}

start() {
  install_packages
  if alive "$dir/slurmctld.pid" && alive "$dir/slurmd.pid"; then
    say "already running (config $conf)"
    wait_idle
    return
  fi
  write_conf
  start_munge
  export SLURM_CONF=$conf
  if ! alive "$dir/slurmctld.pid"; then
    /usr/sbin/slurmctld -f "$conf" -i
    say "started slurmctld"
  fi
  if ! alive "$dir/slurmd.pid"; then
    /usr/sbin/slurmd -f "$conf"
    say "started slurmd"
  fi
  wait_idle
}

stop() {
  local daemon
  if ! alive "$dir/slurmd.pid" && ! alive "$dir/slurmctld.pid" && [[ ! -d $dir ]]; then
    say "not running (no $dir)"
  fi
  for daemon in slurmd slurmctld; do
    if alive "$dir/$daemon.pid"; then
      kill "$(cat "$dir/$daemon.pid")"
      for _ in $(seq 1 50); do alive "$dir/$daemon.pid" || break; sleep 0.2; done
      say "stopped $daemon"
    fi
  done
  if [[ -f $etc_conf ]] && grep -qF "$marker" "$etc_conf"; then
    rm -f "$etc_conf"
    say "removed $etc_conf"
  fi
  if [[ -d $dir ]]; then
    rm -rf "$dir"
    say "removed $dir"
  fi
  # munged is shared with anything else using munge on this machine: left running.
}

status() {
  for daemon in slurmctld slurmd; do
    if alive "$dir/$daemon.pid"; then say "$daemon running (pid $(cat "$dir/$daemon.pid"))"; else say "$daemon not running"; fi
  done
  if [[ -f $conf ]]; then
    SLURM_CONF=$conf sinfo || true
  fi
}

case $action in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: launch/local_slurm.sh start|stop|status [DIR]" >&2; exit 2 ;;
esac
