#!/usr/bin/env bash
# SLURM and munge for the slurm test tier (tests/slurm), on Debian/Ubuntu as root. Idempotent: returns at
# once when the binaries are there. The tests start their own daemons; nothing is started or enabled here.
set -euo pipefail
need=(munged slurmctld slurmd sbatch squeue scontrol scancel sinfo)
missing=()
for b in "${need[@]}"; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || missing+=("$b")
done
if [ "${#missing[@]}" -eq 0 ]; then echo "slurm: already installed"; exit 0; fi
if [ "$(id -u)" -ne 0 ]; then echo "slurm: ${missing[*]} missing; run as root: sudo bash $0" >&2; exit 1; fi
if ! command -v apt-get >/dev/null 2>&1; then echo "slurm: no apt-get; install slurm-wlm and munge by hand" >&2; exit 1; fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q slurm-wlm munge || { apt-get update -q && apt-get install -y -q slurm-wlm munge; }
echo "slurm: installed $(dpkg-query -W -f '${Version}' slurm-wlm 2>/dev/null)"
