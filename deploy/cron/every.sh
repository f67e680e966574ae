#!/bin/sh
# The compose stack's cron: run a command now and then every CRON_INTERVAL_SECONDS, for ever.
#
#   deploy/cron/every.sh python manage.py send_outcome_emails
#
# Why a loop and not crond or supercronic: the only job (send_outcome_emails) is idempotent and safe
# to run concurrently, so it needs "often enough", not a wall-clock schedule. This script runs as the
# image's non-root user with the container's environment (Debian's cron drops both), logs to stdout,
# never starts a run before the previous one ended, stops promptly on SIGTERM between runs (and lets a
# running job finish), kills a job stuck longer than CRON_JOB_TIMEOUT_SECONDS, and touches a heartbeat
# file after each success that the container health check reads (deploy/cron/healthcheck.sh). It
# needs no binary from outside the image's package registries.
set -u

interval="${CRON_INTERVAL_SECONDS:-3600}"
job_timeout="${CRON_JOB_TIMEOUT_SECONDS:-1800}"
heartbeat="${CRON_HEARTBEAT_FILE:-/tmp/cron-heartbeat}"

log() {
    printf 'time=%s level=%s logger=cron message=%s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$1" "$2"
}

if [ "$#" -eq 0 ]; then
    log ERROR "usage: every.sh COMMAND [ARGUMENT...]"
    exit 2
fi

stopping=""
sleeper=""
# SIGTERM (docker stop) during the pause ends the pause at once; during a run, the run finishes
# and is recorded first.
on_stop() {
    stopping=1
    if [ -n "$sleeper" ]; then kill "$sleeper" 2>/dev/null; fi
}
trap on_stop TERM INT

log INFO "running every ${interval}s: $*"
while [ -z "$stopping" ]; do
    started=$(date +%s)
    timeout "$job_timeout" "$@"
    status=$?
    elapsed=$(( $(date +%s) - started ))
    if [ "$status" -eq 0 ]; then
        touch "$heartbeat"
        log INFO "job succeeded in ${elapsed}s: $*"
    else
        log ERROR "job failed with exit status ${status} after ${elapsed}s: $*"
    fi
    [ -n "$stopping" ] && break
    # Sleep in the background so that a signal is handled at once instead of after the sleep.
    sleep "$interval" &
    sleeper=$!
    wait "$sleeper"
    sleeper=""
done
log INFO "stopping"
exit 0
