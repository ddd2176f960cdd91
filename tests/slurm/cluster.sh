#!/usr/bin/env bash
# A real single-node Slurm cluster on loopback, for the tests: munged, MariaDB (unix socket only),
# slurmdbd (so that sacct works), slurmctld and slurmd, with one GPU declared as a generic resource
# (backed by /dev/null: GPU requests are scheduled, nothing uses a GPU).
#
#   tests/slurm/cluster.sh start STATE_DIR   # prints `export SLURM_CONF=...` on success
#   tests/slurm/cluster.sh stop STATE_DIR    # stops every daemon by its PID file
#
# Needs root and the Debian packages munge slurmctld slurmd slurm-client slurmdbd mariadb-server.
set -euo pipefail
action=${1:?start|stop}
state=$(mkdir -p "${2:?state dir}" && cd "$2" && pwd)
host=$(hostname -s)
conf="$state/etc/slurm.conf"

stop_pid() {  # stop_pid PIDFILE: TERM, wait, then KILL
  local file=$1 pid
  [ -f "$file" ] || return 0
  pid=$(cat "$file")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$file"
}

if [ "$action" = stop ]; then
  for daemon in slurmd slurmctld slurmdbd mariadb munged; do stop_pid "$state/$daemon.pid"; done
  if [ -f "$state/mariadb.dir" ]; then rm -rf "$(cat "$state/mariadb.dir")" "$state/mariadb.dir"; fi
  exit 0
fi

trap 'echo "cluster: start failed; stopping what started (logs in $state/log)" >&2; "$0" stop "$state"' ERR

wait_for() {  # wait_for SECONDS COMMAND...
  local limit=$1; shift
  for _ in $(seq 1 $((limit * 10))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "cluster: timed out waiting for: $*" >&2
  return 1
}

mkdir -p "$state"/{etc,ctld,spool,log} /run/munge /run/mysqld
chown munge:munge /run/munge
chown mysql:mysql /run/mysqld
# MariaDB runs as mysql, which may not traverse the state folder's parents: its data lives apart.
db=$(mktemp -d -t harness-mariadb.XXXXXX)
chown mysql:mysql "$db"
echo "$db" > "$state/mariadb.dir"

# munge: authentication between the daemons and the client commands.
[ -s /etc/munge/munge.key ] || { dd if=/dev/urandom bs=1 count=1024 of=/etc/munge/munge.key 2>/dev/null; }
chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
runuser -u munge -- munged --pid-file=/run/munge/munged.pid
cp /run/munge/munged.pid "$state/munged.pid"
wait_for 10 munge -n

# MariaDB on its unix socket only, holding the accounting database.
mariadb-install-db --user=mysql --datadir="$db" --auth-root-authentication-method=socket >"$state/log/mariadb-install.log" 2>&1
mariadbd --user=mysql --datadir="$db" --socket=/run/mysqld/mysqld.sock --skip-networking \
  --pid-file="$db/mariadb.pid" --log-error="$db/mariadb.log" 2>>"$state/log/mariadb.log" &
wait_for 30 mariadb --socket=/run/mysqld/mysqld.sock -e 'select 1'
cp "$db/mariadb.pid" "$state/mariadb.pid"
mariadb --socket=/run/mysqld/mysqld.sock -e "CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm';
  GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost'; FLUSH PRIVILEGES;"

cat > "$state/etc/slurmdbd.conf" <<CONF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=16819
SlurmUser=root
CommunicationParameters=NoInAddrAny
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=slurm
StoragePass=slurm
StorageLoc=slurm_acct_db
PidFile=$state/slurmdbd.pid
LogFile=$state/log/slurmdbd.log
CONF
chmod 600 "$state/etc/slurmdbd.conf"

cat > "$state/etc/slurm.conf" <<CONF
ClusterName=harness
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU_Memory
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=16819
JobCompType=jobcomp/none
MinJobAge=600
KillWait=5
OverTimeLimit=0
InactiveLimit=0
ReturnToService=2
GresTypes=gpu
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$(( $(free -m | awk '/Mem:/{print $2}') * 3 / 4 )) Gres=gpu:1 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
printf 'AutoDetect=off\nNodeName=%s Name=gpu File=/dev/null\n' "$host" > "$state/etc/gres.conf"
export SLURM_CONF="$conf"

slurmdbd
wait_for 20 sacctmgr -n list cluster
sacctmgr -i add cluster harness >/dev/null 2>&1 || true
slurmctld -f "$conf"
wait_for 20 scontrol ping
slurmd -f "$conf"
wait_for 30 bash -c "sinfo -h -o %T | grep -qE '^(idle|mixed|allocated)'"
echo "export SLURM_CONF=$conf"
