# Instagender images. Stages:
#   assets      npm ci: Bootstrap, Cropper.js and exifr from package-lock.json (never a CDN)
#   base        Python, the non-root user, the media folder
#   deps        the web's Python packages (requirements.txt, no TensorFlow) in /opt/venv
#   web-deps    deps without pip and setuptools, for the web image
#   train-deps  deps + requirements-train.txt (TensorFlow, Keras)
#   train       `docker build --target train`: runs manage.py train_model and friends
#   web         the default target: gunicorn, static files collected at build time
#
# Base images are pinned to a patch release; bump them in one place here (Renovate/Dependabot can),
# and pin a digest (name:tag@sha256:...) when the registry in use makes that practical.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG NODE_IMAGE=node:22.16.0-bookworm-slim

FROM ${NODE_IMAGE} AS assets
WORKDIR /build
COPY package.json package-lock.json deploy/vendor-files.txt ./
# Then only the files the pages load, with their source maps (deploy/vendor-files.txt), go on.
RUN npm ci --no-audit --no-fund --ignore-scripts --omit=dev \
    && mkdir vendor \
    && sed -e '/^#/d' -e '/^$/d' -e 's|^|node_modules/|' vendor-files.txt > kept-files \
    && xargs --arg-file=kept-files cp --parents -t vendor

FROM ${PYTHON_IMAGE} AS base
# APP_UID owns what the app writes. MEDIA_GID is the app's group and the group nginx's workers run
# as in the official nginx image (101), so the scans Django writes (0640, folders 0750) in the
# shared media volume are readable by nginx and by nobody else. Both are kept in ENV because an
# ARG does not reach the stages built FROM this one. The user has no home folder: the app writes
# to the media volume and to /tmp only (make image-check lists what it can write).
# DJANGO_DEBUG=0: the image fails closed. Without DJANGO_SECRET_KEY it refuses to start instead of
# signing outcome links and password resets with the public development key; only an explicit
# DJANGO_DEBUG=1 (compose.dev.yaml) turns development mode on.
ARG APP_UID=10001
ARG MEDIA_GID=101
ENV APP_UID=${APP_UID} \
    MEDIA_GID=${MEDIA_GID} \
    DJANGO_DEBUG=0 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    NODE_MODULES_DIR=/opt/node_modules \
    STATIC_ROOT=/app/staticfiles \
    MEDIA_ROOT=/srv/media \
    MODEL_EVALUATION_DIR=/srv/media/evaluation-sets
RUN groupadd --system --gid "${MEDIA_GID}" media \
    && useradd --system --uid "${APP_UID}" --gid media --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin instagender \
    && mkdir -p /srv/media \
    && chown instagender:media /srv/media \
    && chmod 2750 /srv/media
WORKDIR /app

FROM base AS deps
COPY requirements.txt ./
RUN python -m venv /opt/venv \
    && pip install --no-cache-dir -r requirements.txt

# The web image runs packages and never installs any: its venv leaves pip and setuptools behind.
# It speaks British English only (LANGUAGE_CODE en-gb, no LocaleMiddleware), so the packages'
# translations into other languages (about 30 MB in Django and allauth) are never read: they go too.
# So do LiteRT's GPU (WebGPU) and NPU (vendors) plug-ins and its plug-in tool (30 MB): the web runs
# models on the CPU (ml.litert); and botocore's descriptions of the 400-odd AWS services other than
# S3 and STS (27 MB): django-storages talks to S3, and boto3's credential chain may ask STS for a
# role. make image-check runs a model and an S3 round trip in the built image.
FROM deps AS web-deps
RUN pip uninstall --yes --quiet pip setuptools \
    && find /opt/venv/lib -type d -path "*/locale/*" ! -path "*/locale/*/*" ! -name en ! -name en_GB \
        -prune -exec rm -rf {} + \
    && rm -rf /opt/venv/lib/python3*/site-packages/ai_edge_litert/libLiteRtWebGpuAccelerator.so \
        /opt/venv/lib/python3*/site-packages/ai_edge_litert/vendors \
        /opt/venv/lib/python3*/site-packages/ai_edge_litert/tools/apply_plugin_main \
    && find /opt/venv/lib/python3*/site-packages/botocore/data -mindepth 1 -maxdepth 1 -type d \
        ! -name s3 ! -name sts -exec rm -rf {} +

FROM deps AS train-deps
COPY requirements-train.txt ./
RUN pip install --no-cache-dir -r requirements-train.txt

FROM base AS train
COPY --from=train-deps /opt/venv /opt/venv
COPY --from=assets /build/vendor/node_modules /opt/node_modules
COPY . /app
# The app user has no home folder: matplotlib's and Keras's caches go to /tmp.
ENV MPLCONFIGDIR=/tmp/matplotlib \
    KERAS_HOME=/tmp/keras
USER ${APP_UID}:${MEDIA_GID}
CMD ["python", "manage.py", "train_model", "--help"]

FROM base AS web
LABEL org.opencontainers.image.title="instagender-web" \
      org.opencontainers.image.description="Instagender web (gunicorn), cron and release steps"
# Least often changed first: packages, then front-end libraries, then the code.
COPY --from=web-deps /opt/venv /opt/venv
COPY --from=assets /build/vendor/node_modules /opt/node_modules
# The code belongs to root and is read-only for the app user.
COPY . /app
# Hashed, compressed static files for whitenoise, made once here rather than at every start.
# The key below only lets settings load for this command (DEBUG=0 insists on one); it is not used
# at run time, where DJANGO_SECRET_KEY comes from the environment. collectstatic writes with the
# private media modes (FILE_UPLOAD_PERMISSIONS 0640, folders 0750) as root: the static files are
# public, and the app user must read them (whitenoise indexes them when a worker starts).
RUN DJANGO_DEBUG=0 DJANGO_SECRET_KEY=collectstatic-at-build-time-only \
        DATABASE_URL=postgres://build@localhost/unused \
        python manage.py collectstatic --noinput --verbosity 0 \
    && chmod -R u=rwX,go=rX /app/staticfiles \
    && python -m compileall -q /app
USER ${APP_UID}:${MEDIA_GID}
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "/app/deploy/healthcheck.py"]
CMD ["gunicorn", "--config", "/app/deploy/gunicorn.conf.py", "instagender.wsgi:application"]
