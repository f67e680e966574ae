#!/bin/sh
# The one-shot release step (compose's `migrate` service; run it once per deploy, before web starts).
# Refuses a broken production configuration, migrates, and creates the cache table that a
# `dbcache://` CACHE_URL needs (a no-op for other caches). Every step is safe to run twice.
set -eu
cd "$(dirname "$0")/.."
python manage.py check --deploy --fail-level ERROR
python manage.py migrate --noinput
python manage.py createcachetable
echo "time=$(date -u +%Y-%m-%dT%H:%M:%SZ) level=INFO logger=release message=release step finished"
