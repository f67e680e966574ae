#!/bin/sh
# Healthy while the last successful run of deploy/cron/every.sh is younger than two intervals
# (plus the job timeout), so a job that keeps failing turns the container "unhealthy".
set -eu
interval="${CRON_INTERVAL_SECONDS:-3600}"
job_timeout="${CRON_JOB_TIMEOUT_SECONDS:-1800}"
heartbeat="${CRON_HEARTBEAT_FILE:-/tmp/cron-heartbeat}"
[ -f "$heartbeat" ] || { echo "no successful run yet"; exit 1; }
age=$(( $(date +%s) - $(stat -c %Y "$heartbeat") ))
limit=$(( 2 * interval + job_timeout ))
if [ "$age" -gt "$limit" ]; then
    echo "last successful run ${age}s ago (limit ${limit}s)"
    exit 1
fi
