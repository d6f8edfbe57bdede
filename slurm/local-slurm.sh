#!/usr/bin/env bash
# local-slurm.sh -- single-node Slurm "cluster" on localhost for tests/CI.
# Verified on Debian 12 (bookworm), slurm-wlm 22.05.8-4+deb12u3, munge 0.5.15,
# running as root inside a gVisor sandbox (no systemd, no usable cgroups,
# /usr/sbin/policy-rc.d forbids apt from starting services).
#
# Part of trustee: the Slurm test (tests/slurm.sh) and CI use it; see slurm/README.md. Needs root.
#
# usage: local-slurm.sh install   # apt-get install slurm-wlm munge (if missing; as install-deps.sh --tests)
#        local-slurm.sh start     # install + write config + start munged, slurmctld, slurmd; wait until node idle
#        local-slurm.sh status    # show daemons / sinfo
#        local-slurm.sh selftest  # srun + sbatch smoke test
#        local-slurm.sh stop      # stop the daemons this script started (by PID file)
#        local-slurm.sh restart
#        local-slurm.sh purge     # stop + delete state dir and slurm.conf
#        local-slurm.sh submit-wait 120 -n2 -o out.txt job.sh ARGS  # sbatch + fast bounded poll;
#                                  # prints "JOBID STATE EXITCODE", exits with the job's exit code
# env:   SLURM_AUTH=munge|none (default munge; auth/none still exists in 22.05, gone in 23.11)
#        SLURM_CPUS (default: nproc)   LOCAL_SLURM_DIR (default /var/lib/local-slurm)
#        START_TIMEOUT (default 60 s)   SLURM_MPI_DEFAULT (default pmix)
#        SLURM_CRED_EXPIRE (default 30 s; also the delay before a requeued job starts again)
# Every wait is bounded; every function is idempotent (start on a running
# cluster just re-checks it, stop on a stopped one is a no-op).
set -euo pipefail

SLURM_AUTH=${SLURM_AUTH:-munge}
STATE=${LOCAL_SLURM_DIR:-/var/lib/local-slurm}
CONF_DIR=/etc/slurm                 # Debian's compiled-in default: sbatch/srun find it without SLURM_CONF
CONF=$CONF_DIR/slurm.conf
NODE=localhost
CPUS=${SLURM_CPUS:-$(nproc)}
START_TIMEOUT=${START_TIMEOUT:-60}
# pmix: plain `srun ./mpi_prog` works with Debian's Open MPI (only PMIx works; pmi2/none fail)
MPI_DEFAULT=${SLURM_MPI_DEFAULT:-pmix}
CRED_EXPIRE=${SLURM_CRED_EXPIRE:-30}
MUNGE_PID=/run/munge/munged.pid

log() { printf '[local-slurm] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# wait_for SECONDS DESCRIPTION CMD...: poll CMD every 0.5 s until it succeeds
wait_for() {
    local secs=$1 what=$2; shift 2
    local deadline=$((SECONDS + secs))
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || { log "timed out after ${secs}s waiting for: $what"; return 1; }
        sleep 0.5
    done
}

# pid_alive PIDFILE: the PID in the file is alive AND is the daemon named by
# the file (munged.pid -> munged), so a stale file whose PID was reused by
# some other process is never signalled.
pid_alive() {
    local pf=$1 pid name
    [[ -s $pf ]] || return 1
    pid=$(cat "$pf")
    name=$(basename "$pf" .pid)
    kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$name" ]]
}

# the packages scripts/install-deps.sh --tests installs for this (keep the two lists the same)
SLURM_PKGS=(slurm-wlm munge)

do_install() {
    if command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
        command -v sbatch >/dev/null && command -v munged >/dev/null; then
        return 0
    fi
    [[ $(id -u) == 0 ]] || die "Slurm is not installed and installing it needs root (scripts/install-deps.sh --tests)"
    log "installing ${SLURM_PKGS[*]}"
    export DEBIAN_FRONTEND=noninteractive
    local apt=(apt-get install -y -q --no-install-recommends "${SLURM_PKGS[@]}")
    "${apt[@]}" >/dev/null || { apt-get update -q >/dev/null && "${apt[@]}" >/dev/null; }
}

write_conf() {
    mkdir -p "$CONF_DIR" "$STATE/ctld" "$STATE/d"
    local mem_mb auth cred
    mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
    if [[ $SLURM_AUTH == none ]]; then auth=auth/none cred=cred/none; else auth=auth/munge cred=cred/munge; fi
    local tmp
    tmp=$(mktemp)
    cat >"$tmp" <<EOF
# written by local-slurm.sh -- single node, no cgroups, no accounting daemon
ClusterName=localcluster
SlurmctldHost=localhost(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
AuthType=$auth
CredType=$cred
# a requeued job waits cred_expire seconds before it may start again (default 120): keep tests short
AuthInfo=cred_expire=$CRED_EXPIRE
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SwitchType=switch/none
MpiDefault=$MPI_DEFAULT
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/jobcomp.txt
SchedulerType=sched/backfill
# reject impossible requests (e.g. -n4 on 2 CPUs without -O) at submit time instead of pending forever
EnforcePartLimits=ALL
# node config is authoritative (hardware probing under a sandbox is unreliable)
SlurmdParameters=config_overrides
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=600
MessageTimeout=10
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    if ! cmp -s "$tmp" "$CONF"; then
        cp "$tmp" "$CONF"
        log "wrote $CONF (auth=$auth cpus=$CPUS mem=${mem_mb}MB)"
        CONF_CHANGED=1
    fi
    rm -f "$tmp"
    # cgroup.conf is not read with proctrack/linuxproc + task/none; leave none.
}

start_munge() {
    [[ $SLURM_AUTH == munge ]] || return 0
    if pid_alive "$MUNGE_PID"; then return 0; fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        log "creating /etc/munge/munge.key"
        mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null ||
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    fi
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    rm -f /run/munge/munge.socket.2.lock "$MUNGE_PID"
    log "starting munged"
    runuser -u munge -- /usr/sbin/munged # daemonizes; writes $MUNGE_PID
    wait_for 15 "munged" bash -c 'munge -n | unmunge' || die "munged did not come up (see /var/log/munge/munged.log)"
}

start_slurm() {
    if [[ ${CONF_CHANGED:-0} == 1 ]] && { pid_alive "$STATE/slurmctld.pid" || pid_alive "$STATE/slurmd.pid"; }; then
        log "config changed: restarting slurm daemons"
        stop_slurm
    fi
    if ! pid_alive "$STATE/slurmctld.pid"; then
        log "starting slurmctld"
        slurmctld -f "$CONF" # daemonizes
    fi
    wait_for "$START_TIMEOUT" "slurmctld ping" bash -c 'scontrol ping | grep -q UP' ||
        { tail -20 "$STATE/slurmctld.log" >&2; die "slurmctld not responding"; }
    if ! pid_alive "$STATE/slurmd.pid"; then
        log "starting slurmd"
        slurmd -f "$CONF" -N "$NODE" # -N: node name != hostname
    fi
    node_ready() {
        local st
        st=$(sinfo -h -n "$NODE" -o %t 2>/dev/null) || return 1
        case $st in
        idle | mix | alloc) return 0 ;;
        down* | drain* | drng*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true; return 1 ;;
        *) return 1 ;;
        esac
    }
    local deadline=$((SECONDS + START_TIMEOUT))
    until node_ready; do
        ((SECONDS < deadline)) || { sinfo -N -l >&2 || true; tail -20 "$STATE/slurmd.log" >&2; die "node $NODE not idle after ${START_TIMEOUT}s"; }
        sleep 0.5
    done
}

do_start() {
    local t0=$SECONDS
    do_install
    write_conf
    start_munge
    start_slurm
    log "cluster up in $((SECONDS - t0))s: $(sinfo -h -o '%P %a %D %t %C')"
}

stop_pidfile() { # stop_pidfile NAME PIDFILE
    local name=$1 pf=$2 pid
    pid_alive "$pf" || { rm -f "$pf"; return 0; }
    pid=$(cat "$pf")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then
        log "$name (pid $pid) ignored SIGTERM for 10s: SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pf"
}

stop_slurm() {
    stop_pidfile slurmd "$STATE/slurmd.pid"
    stop_pidfile slurmctld "$STATE/slurmctld.pid"
}

do_stop() {
    stop_slurm
    stop_pidfile munged "$MUNGE_PID"
}

do_status() {
    local pf
    for pf in "$MUNGE_PID" "$STATE/slurmctld.pid" "$STATE/slurmd.pid"; do
        if pid_alive "$pf"; then echo "running: $(basename "$pf" .pid) pid $(cat "$pf")"; else echo "stopped: $(basename "$pf" .pid)"; fi
    done
    scontrol ping 2>/dev/null || true
    sinfo -N -l 2>/dev/null || true
}

do_selftest() {
    local t0=$SECONDS
    local out
    out=$(timeout 60 srun -N1 -n2 hostname) || die "srun failed"
    log "srun -n2 hostname -> $(echo "$out" | tr '\n' ' ')"
    local dir res
    dir=$(mktemp -d)
    # (sbatch --wait also works and returns the job's exit code, but it polls
    # at 2 s and then ~10 s; do_submit_wait polls squeue every 0.25 s)
    # shellcheck disable=SC2016  # expanded by the job, not here
    res=$(do_submit_wait 120 -N1 -n2 -o "$dir/job.out" --wrap 'srun bash -c "echo task \$SLURM_PROCID of \$SLURM_NTASKS on \$(hostname)"') ||
        die "batch job failed: $res $(cat "$dir"/* 2>/dev/null)"
    log "batch job (id state exit) $res: $(sort "$dir/job.out" | tr '\n' ' ')"
    rm -rf "$dir"
    log "selftest OK in $((SECONDS - t0))s"
}

# submit_wait TIMEOUT SBATCH_ARGS...: sbatch --parsable, poll every 0.25 s
# (sbatch --wait polls at 2 s, then ~10 s), print "JOBID STATE EXITCODE",
# return the job script's exit code (124 on timeout, after scancel).
do_submit_wait() {
    local secs=$1; shift
    local jid st ec deadline=$((SECONDS + secs))
    jid=$(sbatch --parsable "$@") || return 1
    jid=${jid%%;*}
    while squeue -h -j "$jid" -o %T 2>/dev/null | grep -q .; do
        if ((SECONDS >= deadline)); then
            log "job $jid still queued/running after ${secs}s: scancel"
            scancel "$jid" || true
            echo "$jid TIMEOUT -"
            return 124
        fi
        sleep 0.25
    done
    st=$(scontrol show job "$jid" 2>/dev/null | grep -oE 'JobState=[A-Z_]+' | cut -d= -f2)
    ec=$(scontrol show job "$jid" 2>/dev/null | grep -oE ' ExitCode=[0-9]+:[0-9]+' | cut -d= -f2)
    echo "$jid ${st:-UNKNOWN} ${ec:--}"
    [[ $st == COMPLETED ]] && return 0
    local code=${ec%%:*}
    ((code != 0)) && return "$code"
    return 1
}

case ${1:-} in
install) do_install ;;
start) do_start ;;
stop) do_stop ;;
restart) do_stop; do_start ;;
purge) do_stop; rm -rf "$STATE" "$CONF"; log "removed $STATE and $CONF" ;;
status) do_status ;;
selftest) do_selftest ;;
submit-wait) shift; do_submit_wait "$@" ;;
*) echo "usage: $0 {install|start|stop|restart|status|selftest|purge|submit-wait TIMEOUT SBATCH_ARGS...}" >&2; exit 2 ;;
esac
