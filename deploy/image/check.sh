#!/usr/bin/env bash
# `make image-check`: build the Dockerfile's stages with buildah on stand-in bases (deploy/image/bases.sh)
# and run what operators run inside the built web image, against this machine's PostgreSQL:
# the release step, gunicorn from the image's CMD (/healthz, a static file with whitenoise's
# long-cache headers), the image's HEALTHCHECK, one round of the cron loop and seed_admin.
# It asserts the processes run as the image's non-root user, can write nowhere but the media
# volume (and the scratch folders compose mounts as tmpfs), that the web image holds no
# TensorFlow, no build tools and no npm, and that it is under 400 MB. Prints a summary; exits 1
# when any assertion fails. Needs root, buildah and debootstrap (.ci/run installs them).
#
#   deploy/image/check.sh            # assets, deps and web
#   TRAIN=1 deploy/image/check.sh    # also the train stage (TensorFlow: a much longer build)
#
# Knobs: IMAGE_CHECK_DB (database name, default instagender_image; dropped and re-created),
# IMAGE_CHECK_PG (default postgres://postgres@127.0.0.1:5432), IMAGE_CHECK_PORT (default: a free one).
set -euo pipefail
cd "$(dirname "$0")/../.."

export STORAGE_DRIVER="${STORAGE_DRIVER:-vfs}"
export BUILDAH_ISOLATION=chroot
TRAIN="${TRAIN:-0}"
DB_NAME="${IMAGE_CHECK_DB:-instagender_image}"
PG="${IMAGE_CHECK_PG:-postgres://postgres@127.0.0.1:5432}"
TAG=check
WEB="localhost/instagender-web:$TAG"
SIZE_GOAL_MB=400
APP_UID_EXPECTED=10001
MEDIA_GID_EXPECTED=101
HOST_NAME=instagender.test

WORK="$(mktemp -d /var/tmp/instagender-image-check.XXXXXX)"
CONTAINERS=()
GUNICORN_PID=""
failures=0
SUMMARY=()

log() { printf 'time=%s level=INFO logger=image-check message=%s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
note() { SUMMARY+=("$*"); }
pass() { SUMMARY+=("  ok    $*"); }
fail() {
    SUMMARY+=("  FAIL  $*")
    failures=$((failures + 1))
    printf 'time=%s level=ERROR logger=image-check message=%s\n' "$(date -u +%H:%M:%S)" "$*" >&2
}
# expect DESCRIPTION COMMAND...: pass when the command succeeds.
expect() {
    local description="$1"
    shift
    if "$@"; then pass "$description"; else fail "$description"; fi
}

stop_gunicorn() {
    if [ -n "$GUNICORN_PID" ]; then
        # The whole session setsid started: buildah run, gunicorn's master and its workers.
        kill -TERM -- "-$GUNICORN_PID" 2>/dev/null || true
        for _ in $(seq 1 40); do kill -0 -- "-$GUNICORN_PID" 2>/dev/null || break; sleep 0.5; done
        kill -KILL -- "-$GUNICORN_PID" 2>/dev/null || true
        wait "$GUNICORN_PID" 2>/dev/null || true
        GUNICORN_PID=""
    fi
}

cleanup() {
    stop_gunicorn
    for container in "${CONTAINERS[@]}"; do buildah rm "$container" >/dev/null 2>&1 || true; done
    dropdb -h 127.0.0.1 -U postgres --if-exists "$DB_NAME" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

seconds_since() { echo $(($(date +%s) - $1)); }

# --- 1. Stand-in bases -------------------------------------------------------------------------
started=$(date +%s)
eval "$(deploy/image/bases.sh)"
bases_seconds=$(seconds_since "$started")

# --- 2. Build the stages from the real Dockerfile ------------------------------------------------
# --layers keeps each step's result, so a second run rebuilds only what changed (and the web and
# train targets share the stages they have in common). Host networking lets pip and npm reach
# their registries; --format docker keeps HEALTHCHECK, which the OCI format drops.
build() {  # build TARGET LOG
    buildah bud --quiet=false --layers --format docker --isolation chroot --network host \
        --build-arg PYTHON_IMAGE="$PYTHON_IMAGE" --build-arg NODE_IMAGE="$NODE_IMAGE" \
        --target "$1" --tag "localhost/instagender-$1:$TAG" --file Dockerfile . >"$2" 2>&1
}
targets=(web)
[ "$TRAIN" = 1 ] && targets+=(train)
declare -A build_seconds
for target in "${targets[@]}"; do
    log "building --target $target (log: $WORK/build-$target.log)"
    started=$(date +%s)
    if ! build "$target" "$WORK/build-$target.log"; then
        tail -40 "$WORK/build-$target.log" >&2
        fail "build --target $target"
        exit 1
    fi
    build_seconds[$target]=$(seconds_since "$started")
    # The stages the build went through, from buildah's "[n/m] STEP 1/k: FROM ... AS stage" lines.
    stages="$(grep -oE 'STEP 1/[0-9]+: FROM [^ ]+ AS [a-z-]+' "$WORK/build-$target.log" | awk '{print $NF}' | paste -sd, -)"
    pass "built --target $target in ${build_seconds[$target]}s, stages: $stages"
done

# --- 3. Size of the web image ---------------------------------------------------------------------
# The size of its unpacked file system, and what takes the room. The 400 MB goal is printed with
# the figures, like the benchmarks' goals; what the goal names (no TensorFlow, no build tools, no
# npm) is asserted below.
web_ctr="$(buildah from --quiet "$WEB")"
CONTAINERS+=("$web_ctr")
web_root="$(buildah mount "$web_ctr")"
size_mb=$(($(du -sxb "$web_root" | cut -f1) / 1000000))
largest="$(cd "$web_root/opt/venv/lib/python3.11/site-packages" && du -sxm -- * | sort -rn | head -6 | awk '{printf "%s%s %s MB", (NR > 1 ? ", " : ""), $2, $1}')"
base_mb=$(($(du -sxb --exclude=./opt --exclude=./app "$web_root" | cut -f1) / 1000000))
venv_mb=$(($(du -sxb "$web_root/opt/venv" | cut -f1) / 1000000))
app_mb=$(($(du -sxb "$web_root/app" | cut -f1) / 1000000))
static_mb=$(($(du -sxb "$web_root/app/staticfiles" | cut -f1) / 1000000))
if [ "$size_mb" -lt "$SIZE_GOAL_MB" ]; then size_verdict="goal met"; else size_verdict="GOAL NOT MET"; fi
size_line="web image ${size_mb} MB (goal: under ${SIZE_GOAL_MB} MB: $size_verdict): base system ${base_mb} MB, /opt/venv ${venv_mb} MB (largest: $largest), /app ${app_mb} MB (of which collected static files ${static_mb} MB)"
note "  size  $size_line"
buildah umount "$web_ctr" >/dev/null

# What the image declares, read from its config rather than repeated here.
buildah inspect --type image "$WEB" >"$WORK/web-image.json"
image_config() {
    python3 - "$WORK/web-image.json" "$1" <<'PY'
import json, sys
config = json.load(open(sys.argv[1]))["Docker"]["config"]
value = config.get(sys.argv[2])
print(json.dumps(value) if isinstance(value, (list, dict)) else (value or ""))
PY
}
image_user="$(image_config User)"
image_cmd="$(image_config Cmd)"
image_healthcheck="$(python3 -c 'import json, sys; print(json.dumps(json.loads(sys.argv[1])["Test"]))' "$(image_config Healthcheck)")"
json_words() { python3 -c 'import json, sys; print("\n".join(json.loads(sys.argv[1])))' "$1"; }
mapfile -t cmd_words < <(json_words "$image_cmd")
mapfile -t healthcheck_words < <(json_words "$image_healthcheck")
[ "${healthcheck_words[0]:-}" = CMD ] || fail "the image's HEALTHCHECK is an exec-form CMD: $image_healthcheck"
healthcheck_words=("${healthcheck_words[@]:1}")
# compose's commands for the release step and the cron service.
compose_command() {
    python3 - "$1" <<'PY'
import re, sys
# compose.yaml's commands are one-line JSON-style lists; no YAML library needed on the host.
service, lines, inside = sys.argv[1], open("compose.yaml").read().splitlines(), False
for line in lines:
    if re.fullmatch(r"  [a-z]+:", line):
        inside = line.strip() == f"{service}:"
    elif inside and line.strip().startswith("command:"):
        import json
        print("\n".join(json.loads(line.split("command:", 1)[1])))
        break
PY
}
mapfile -t release_words < <(compose_command migrate)
mapfile -t cron_words < <(compose_command cron)

# --- 4. Run it, as compose would ------------------------------------------------------------------
# A fresh database of our own; the media volume is a folder made the way a new named volume is
# (copied from the image's /srv/media: owner APP_UID, group MEDIA_GID, mode 2750).
dropdb -h 127.0.0.1 -U postgres --if-exists "$DB_NAME"
createdb -h 127.0.0.1 -U postgres "$DB_NAME"
media="$WORK/media"
mkdir -p "$media"
chown "$(stat -c %u:%g "$web_root/srv/media" 2>/dev/null || echo "$APP_UID_EXPECTED:$MEDIA_GID_EXPECTED")" "$media"
chmod 2750 "$media"
if [ -z "${IMAGE_CHECK_PORT:-}" ]; then
    IMAGE_CHECK_PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
fi
secret_key="$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')"
admin_password="$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')"
# Host networking: gunicorn binds to loopback on a free port so it meets nobody else's server.
run_env=(
    --env "DJANGO_SECRET_KEY=$secret_key"
    --env "DATABASE_URL=$PG/$DB_NAME"
    --env "DJANGO_ALLOWED_HOSTS=$HOST_NAME"
    --env "DJANGO_CSRF_TRUSTED_ORIGINS=https://$HOST_NAME"
    --env "CACHE_URL=dbcache://instagender_cache"
    --env "PRIVATE_MEDIA_SERVING=x-accel"
    --env "GUNICORN_BIND=127.0.0.1:$IMAGE_CHECK_PORT"
    --env "GUNICORN_WORKERS=2"
)
# in_image COMMAND...: run in the web container as the image's USER, with compose's environment,
# the media volume and a fresh tmpfs-like /tmp.
in_image() {
    buildah run --isolation chroot --network host --volume "$media:/srv/media" \
        --mount type=tmpfs,destination=/tmp "${run_env[@]}" "$web_ctr" -- "$@"
}

# Fails closed: without DJANGO_SECRET_KEY the image refuses to start (DJANGO_DEBUG=0 by default).
if out="$(buildah run --isolation chroot --network host "$web_ctr" -- python manage.py check 2>&1)"; then
    fail "the image started without DJANGO_SECRET_KEY"
else
    if grep -q "DJANGO_SECRET_KEY must be set" <<<"$out"; then
        pass "without DJANGO_SECRET_KEY it refuses to start: $(grep -o 'DJANGO_SECRET_KEY must be set[^"]*' <<<"$out" | head -1)"
    else
        fail "without DJANGO_SECRET_KEY it failed for another reason: $(tail -1 <<<"$out")"
    fi
fi
debug_value="$(in_image python -c 'from django.conf import settings; import django, os; os.environ.setdefault("DJANGO_SETTINGS_MODULE", "instagender.settings"); django.setup(); print(settings.DEBUG)' 2>&1 | tail -1)"
[ "$debug_value" = False ] && pass "DEBUG is False by default in the image" || fail "DEBUG in the image: $debug_value"

# The release step (compose's migrate service).
log "release step: ${release_words[*]}"
if release_out="$(in_image "${release_words[@]}" 2>&1)"; then
    pass "release step (${release_words[*]}) exited 0"
else
    fail "release step (${release_words[*]}) failed"
fi
grep -q "release step finished" <<<"$release_out" || fail "release step did not finish"
in_image python manage.py migrate --check --noinput >/dev/null 2>&1 && pass "no migration left unapplied" \
    || fail "migrations left unapplied after the release step"
release_again="$(in_image "${release_words[@]}" 2>&1)" && pass "release step is safe to run twice" \
    || fail "release step failed the second time: $(tail -3 <<<"$release_again")"

# gunicorn from the image's CMD, in its own session so that it can be stopped as a whole.
log "gunicorn: ${cmd_words[*]} on 127.0.0.1:$IMAGE_CHECK_PORT"
setsid buildah run --isolation chroot --network host --volume "$media:/srv/media" \
    --mount type=tmpfs,destination=/tmp "${run_env[@]}" "$web_ctr" -- "${cmd_words[@]}" \
    >"$WORK/gunicorn.log" 2>&1 &
GUNICORN_PID=$!
base_url="http://127.0.0.1:$IMAGE_CHECK_PORT"
curl_app() { curl -sS --max-time 10 -H "Host: $HOST_NAME" -H "X-Forwarded-Proto: https" "$@"; }
healthz=""
for _ in $(seq 1 90); do
    healthz="$(curl_app "$base_url/healthz" 2>/dev/null)" && break
    kill -0 "$GUNICORN_PID" 2>/dev/null || break
    sleep 1
done
healthz_status="$(curl_app -o /dev/null -w '%{http_code}' "$base_url/healthz" 2>/dev/null || true)"
if [ "$healthz_status" = 200 ] && grep -q '"status": *"ok"' <<<"$healthz"; then
    pass "gunicorn in the image: GET /healthz -> $healthz_status $healthz"
else
    fail "gunicorn in the image: GET /healthz -> ${healthz_status:-no answer} $healthz"
    tail -30 "$WORK/gunicorn.log" >&2
fi
login_status="$(curl_app -o /dev/null -w '%{http_code}' "$base_url/accounts/login/" || true)"
[ "$login_status" = 200 ] && pass "GET /accounts/login/ -> 200 (templates and hashed static names resolve)" \
    || fail "GET /accounts/login/ -> $login_status"

# A hashed static file, named by the manifest collectstatic wrote at build time.
static_name="$(in_image python -c 'import json; print(json.load(open("/app/staticfiles/staticfiles.json"))["paths"]["vendor/bootstrap/css/bootstrap.min.css"])' 2>/dev/null || true)"
static_headers="$(curl_app -o /dev/null -D - -H 'Accept-Encoding: gzip, br' "$base_url/static/$static_name" | tr -d '\r' || true)"
static_status="$(head -1 <<<"$static_headers" | awk '{print $2}')"
cache_control="$(grep -i '^cache-control:' <<<"$static_headers" | cut -d' ' -f2- || true)"
encoding="$(grep -i '^content-encoding:' <<<"$static_headers" | cut -d' ' -f2- || true)"
if [ "$static_status" = 200 ] && grep -q 'max-age=315360000' <<<"$cache_control" && grep -q immutable <<<"$cache_control"; then
    pass "GET /static/$static_name -> 200, Cache-Control: $cache_control, Content-Encoding: ${encoding:-none}"
else
    fail "GET /static/$static_name -> ${static_status:-no answer}, Cache-Control: ${cache_control:-none}"
fi

# The user the server's processes run as, seen from the host: everything in gunicorn's session.
ids="$(ps -o uid=,gid=,args= --sid "$GUNICORN_PID" | awk '$3 ~ /gunicorn/ {print $1 ":" $2}' | sort | uniq -c | sed 's/^ *//')"
processes="$(ps -o args= --sid "$GUNICORN_PID" | grep -c gunicorn || true)"
if [ -n "$ids" ] && ! grep -qvE "^[0-9]+ $APP_UID_EXPECTED:$MEDIA_GID_EXPECTED$" <<<"$ids"; then
    pass "gunicorn master and workers ($processes processes) run as uid:gid $APP_UID_EXPECTED:$MEDIA_GID_EXPECTED (image USER $image_user)"
else
    fail "gunicorn processes run as: ${ids:-none found} (want $APP_UID_EXPECTED:$MEDIA_GID_EXPECTED)"
fi

# The image's HEALTHCHECK, while the server runs and after it stopped.
set +e
in_image "${healthcheck_words[@]}" >"$WORK/healthcheck.log" 2>&1
healthcheck_exit=$?
set -e
[ "$healthcheck_exit" = 0 ] && pass "HEALTHCHECK (${healthcheck_words[*]}) exit code $healthcheck_exit while gunicorn runs" \
    || fail "HEALTHCHECK exit code $healthcheck_exit while gunicorn runs: $(cat "$WORK/healthcheck.log")"
stop_gunicorn
grep -q "Shutting down: Master" "$WORK/gunicorn.log" && pass "gunicorn stopped cleanly on SIGTERM" \
    || fail "gunicorn did not log a clean shutdown"
set +e
in_image "${healthcheck_words[@]}" >"$WORK/healthcheck.log" 2>&1
down_exit=$?
set -e
[ "$down_exit" = 1 ] && pass "HEALTHCHECK exit code 1 once gunicorn is down: $(head -1 "$WORK/healthcheck.log")" \
    || fail "HEALTHCHECK exit code $down_exit once gunicorn is down"

# One round of the cron loop (compose's cron command), stopped with SIGTERM as `docker stop` does,
# then the cron service's health check, which reads the heartbeat the round left.
log "cron: ${cron_words[*]}"
set +e
cron_out="$(in_image sh -c '
    CRON_INTERVAL_SECONDS=3600 "$@" &
    loop=$!
    for _ in $(seq 1 120); do [ -f /tmp/cron-heartbeat ] && break; kill -0 "$loop" 2>/dev/null || break; sleep 1; done
    kill -TERM "$loop"; wait "$loop"; echo "every.sh exit=$?"
    sh /app/deploy/cron/healthcheck.sh; echo "cron healthcheck exit=$?"
' sh "${cron_words[@]}" 2>&1)"
set -e
if grep -q "job succeeded" <<<"$cron_out" && grep -q "every.sh exit=0" <<<"$cron_out" \
    && grep -q "cron healthcheck exit=0" <<<"$cron_out"; then
    pass "cron: one round succeeded, stopped on SIGTERM (exit 0), its health check exit code 0"
else
    fail "cron round: $(tr '\n' ' ' <<<"$cron_out" | tail -c 600)"
fi

# seed_admin, twice (it is idempotent).
set +e
seed_out="$(in_image env DJANGO_ADMIN_EMAIL=admin@$HOST_NAME DJANGO_ADMIN_PASSWORD="$admin_password" \
    python manage.py seed_admin 2>&1 && in_image env DJANGO_ADMIN_EMAIL=admin@$HOST_NAME \
    DJANGO_ADMIN_PASSWORD="$admin_password" python manage.py seed_admin 2>&1)"
seed_exit=$?
set -e
if [ "$seed_exit" = 0 ] && grep -q "Created staff superuser" <<<"$seed_out" && grep -q "Updated staff superuser" <<<"$seed_out"; then
    pass "seed_admin: $(tr '\n' ' ' <<<"$seed_out")"
else
    fail "seed_admin (exit $seed_exit): $(tr '\n' ' ' <<<"$seed_out" | tail -c 400)"
fi

# Who the processes are, and where they can write: every file and folder outside /proc, /sys and
# /dev that the image's user may write. Only the media volume and the scratch folders (/tmp,
# /var/tmp: tmpfs in compose) may appear.
ids_inside="$(in_image sh -c 'echo "$(id -u):$(id -g)"')"
[ "$ids_inside" = "$APP_UID_EXPECTED:$MEDIA_GID_EXPECTED" ] && pass "commands in the image run as uid:gid $ids_inside" \
    || fail "commands in the image run as $ids_inside"
in_image find / \( -path /proc -o -path /sys -o -path /dev \) -prune -o -writable -print 2>/dev/null \
    >"$WORK/writable.txt" || true
outside="$(grep -vE '^/(srv/media|tmp|var/tmp)(/|$)' "$WORK/writable.txt" || true)"
if [ -z "$outside" ]; then
    pass "writable by the app user: only $(grep -oE '^/(srv/media|tmp|var/tmp)' "$WORK/writable.txt" | sort -u | paste -sd' ' -)"
else
    fail "writable by the app user outside the media volume: $(head -20 <<<"$outside" | paste -sd' ' -)"
fi
write_probe="$(in_image python - <<'PY' 2>&1
import pathlib

refused, allowed = [], []
for folder in ["/", "/app", "/app/staticfiles", "/app/instagender", "/opt/venv/lib", "/etc", "/usr/local/bin", "/srv", "/home", "/srv/media"]:
    target = pathlib.Path(folder) / "image-check-probe"
    try:
        target.write_text("x")
    except OSError as error:
        refused.append(f"{folder} ({error.strerror})")
    else:
        target.unlink()
        allowed.append(folder)
print("allowed:", " ".join(allowed))
print("refused:", ", ".join(refused))
PY
)"
if grep -qx "allowed: /srv/media" <<<"$write_probe"; then
    pass "writing a file: $(tr '\n' ';' <<<"$write_probe")"
else
    fail "writing a file: $(tr '\n' ';' <<<"$write_probe")"
fi

# No TensorFlow, no build tools and no npm in the web image.
tf_probe="$(in_image python -c '
import importlib.metadata as md, importlib.util
names = sorted(d.metadata["Name"] for d in md.distributions())
tf = [n for n in names if n.lower().startswith(("tensorflow", "keras", "tf-", "tf_"))]
print("find_spec(tensorflow)=%s, find_spec(keras)=%s, TensorFlow packages=%s, packages=%d" % (
    importlib.util.find_spec("tensorflow"), importlib.util.find_spec("keras"), tf or "none", len(names)))
' 2>&1)"
grep -q "find_spec(tensorflow)=None, find_spec(keras)=None, TensorFlow packages=none" <<<"$tf_probe" \
    && pass "no TensorFlow in web: $tf_probe" || fail "TensorFlow in web: $tf_probe"
tools="$(in_image sh -c 'for tool in gcc cc make npm node git; do command -v "$tool"; done; true')"
[ -z "$tools" ] && pass "no build tools or npm in web (gcc, cc, make, npm, node, git: none on the PATH)" \
    || fail "web image has: $(paste -sd' ' - <<<"$tools")"
litert="$(in_image python -c 'from ai_edge_litert.interpreter import Interpreter; print("LiteRT interpreter imports")' 2>&1 | tail -1)"
[ "$litert" = "LiteRT interpreter imports" ] && pass "$litert (inference runtime present)" || fail "LiteRT: $litert"

# --- 5. The train stage, when asked --------------------------------------------------------------
if [ "$TRAIN" = 1 ]; then
    train_ctr="$(buildah from --quiet "localhost/instagender-train:$TAG")"
    CONTAINERS+=("$train_ctr")
    train_out="$(buildah run --isolation chroot --network host --env "DJANGO_SECRET_KEY=$secret_key" \
        --env "DATABASE_URL=$PG/$DB_NAME" "$train_ctr" -- sh -c \
        'python -c "import tensorflow as tf; print(\"TensorFlow\", tf.__version__)" && python manage.py train_model --help >/dev/null && echo "train_model --help ok"' 2>&1 | grep -v -E 'oneDNN|cuda|TF-TRT|rebuild TensorFlow|AVX' || true)"
    grep -q "train_model --help ok" <<<"$train_out" && pass "train image: $(tr '\n' ' ' <<<"$train_out")" \
        || fail "train image: $(tail -5 <<<"$train_out" | tr '\n' ' ')"
    train_size="$(buildah inspect --type image --format '{{.Docker.Size}}' "localhost/instagender-train:$TAG" 2>/dev/null || echo 0)"
    note "  train image: $((train_size / 1000000)) MB"
fi

# --- Summary -----------------------------------------------------------------------------------
echo
echo "== image-check summary =="
echo "stand-in bases: PYTHON_IMAGE=$PYTHON_IMAGE NODE_IMAGE=$NODE_IMAGE (${bases_seconds}s; made from Debian bookworm packages)"
echo "web image: $WEB, ${size_mb} MB (goal < ${SIZE_GOAL_MB} MB: $size_verdict), built in ${build_seconds[web]}s (all its stages, from the bases)"
echo "image config: USER $image_user; CMD $image_cmd; HEALTHCHECK $image_healthcheck"
printf '%s\n' "${SUMMARY[@]}"
echo "release output:"
sed 's/^/    /' <<<"$release_out"
echo "differences between the stand-in bases and the official images (deploy/image/README.md):"
sed -n '/^<!-- differences -->$/,/^<!-- end differences -->$/p' deploy/image/README.md | grep '^- ' | sed 's/^/    /'
if [ "$failures" -gt 0 ]; then
    echo "image-check: $failures assertion(s) failed"
    exit 1
fi
echo "image-check: all assertions hold"
