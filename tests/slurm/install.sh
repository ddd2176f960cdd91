#!/usr/bin/env bash
# Installs what tests/slurm/cluster.sh needs (Debian packages) when it is missing. With CI=true a
# failure is fatal; elsewhere the Slurm tests then skip.
set -uo pipefail
packages=(munge slurmctld slurmd slurm-client slurmdbd mariadb-server)
missing=()
for package in "${packages[@]}"; do dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package"); done
[ ${#missing[@]} -eq 0 ] && exit 0
fail() {
  echo "slurm: $*" >&2
  if [ "${CI:-}" = "true" ]; then exit 1; fi
  echo "slurm: tests that need a cluster will be skipped" >&2
  exit 0
}
[ "$(id -u)" = 0 ] || fail "need ${missing[*]} and root to install them"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
  || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } \
  || fail "apt-get install ${missing[*]} failed"
echo "slurm: installed ${missing[*]}"
