#!/bin/sh
# The cron service's jobs, run one after the other on every round of deploy/cron/every.sh:
#
#   deploy/cron/every.sh sh deploy/cron/jobs.sh
#
# Each job runs even when one before it failed (an SMTP outage must not stop file deletions); the
# round fails, and the health check turns red after two failed intervals, if any job failed. Every
# job is idempotent and safe to run concurrently.
#   send_outcome_emails    the "was it right?" e-mails that are due
#   finish_file_deletions  files of deleted rows (and of uploads that never committed) the storage
#                          refused to delete so far: retried until they are gone
#   reconcile_media        storage against rows, both ways: old files without rows are deleted,
#                          rows without files are reported to staff (exits non-zero while any exist)
set -u

failed=""
for job in send_outcome_emails finish_file_deletions reconcile_media; do
    python manage.py "$job" || failed="$failed $job"
done
if [ -n "$failed" ]; then
    echo "failed:$failed" >&2
    exit 1
fi
