#!/usr/bin/env bash
# Stops the Slurm daemons start.sh started (by their pid files), after cancelling every job.
set -uo pipefail
STARTED="${STARTED:-/run/autoprompt-slurm.started}"
[ -f "$STARTED" ] || exit 0
command -v scancel >/dev/null && scancel --full --quiet --user "$(id -un)" 2>/dev/null
sleep 1
for daemon in slurmd slurmctld munged; do
  grep -qx "$daemon" "$STARTED" || continue
  case "$daemon" in
    munged) pidfile=/run/munge/munged.pid ;;
    *) pidfile=/run/$daemon.pid ;;
  esac
  if [ -s "$pidfile" ]; then
    kill "$(cat "$pidfile")" 2>/dev/null
  fi
done
rm -f "$STARTED"
echo "slurm: daemons stopped"
