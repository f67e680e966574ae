"""Instagender settings: one module for every environment.

Every deploy-time value comes from the environment (see `.env.example` and the README's
"Configuration" section). The defaults are for a laptop: SQLite, console e-mail, local files.
With ``DJANGO_DEBUG=0`` the process refuses to start without ``DJANGO_SECRET_KEY``.
"""

import re
from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

_TRUE_WORDS = {"1", "true", "yes", "on"}
_FALSE_WORDS = {"0", "false", "no", "off"}


def env_bool(name: str, *, default: bool) -> bool:
    """A boolean from the environment; a value that is neither yes nor no stops the start."""
    value = env.str(name, default="").strip().lower()
    if not value:
        return default
    if value in _TRUE_WORDS:
        return True
    if value in _FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name} must be one of 1/0, true/false, yes/no, on/off; got {value!r}.")


DEBUG = env_bool("DJANGO_DEBUG", default=True)

_DEVELOPMENT_SECRET_KEY = "django-insecure-development-only-never-use-in-production"  # noqa: S105
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DJANGO_DEBUG=0.")
    SECRET_KEY = _DEVELOPMENT_SECRET_KEY
# Old keys keep existing sessions and signed links valid while the key is rotated.
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "crispy_forms",
    "crispy_bootstrap5",
    "csp",
    "audit",
    "accounts",
    "babies",
    "predictions",
    "curation",
]

MIDDLEWARE = [
    "instagender.logging.RequestIdMiddleware",
    "instagender.middleware.DatabaseUnavailableMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "instagender.middleware.RequestBodyErrorsMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # Staff: signed out after STAFF_SESSION_IDLE_SECONDS, and no admin page before a second factor.
    "accounts.middleware.StaffIdleTimeoutMiddleware",
    "accounts.middleware.StaffMFARequiredMiddleware",
]

ROOT_URLCONF = "instagender.urls"
WSGI_APPLICATION = "instagender.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
    {
        # The partials drawn once per baby (instagender/jinja2.py says why); only by name.
        "NAME": "jinja2",
        "BACKEND": "django.template.backends.jinja2.Jinja2",
        "DIRS": [BASE_DIR / "templates" / "jinja2"],
        "APP_DIRS": False,
        "OPTIONS": {"environment": "instagender.jinja2.environment", "autoescape": True},
    },
]

# --- Database -------------------------------------------------------------------------------
# DATABASE_URL, e.g. postgres://user:password@host:5432/instagender; SQLite by default.
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# The rate limits (allauth's and instagender.ratelimits') live in the cache, so several workers
# need a shared one. In production that is the database table deploy/release.sh creates
# (createcachetable) unless CACHE_URL names another; a laptop keeps it in memory.
CACHES = {
    "default": env.cache_url(
        "CACHE_URL", default="locmemcache://instagender" if DEBUG else "dbcache://instagender_cache"
    ),
}
# Each worker's drawn dashboard cards (babies.card_cache): its own memory, never shared, so a
# deploy with new templates starts empty. Their key changes with what they show; the timeout
# only bounds how long an idle parent's cards take up room. At most this many parents' cards
# per worker (about 10 KB for two babies, 100 KB for twenty); 0 draws them on every request.
DASHBOARD_CARDS_KEPT = env.int("DASHBOARD_CARDS_KEPT", default=500)
CACHES["dashboard_cards"] = (
    {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "dashboard-cards",
        "TIMEOUT": 15 * 60,
        "OPTIONS": {"MAX_ENTRIES": DASHBOARD_CARDS_KEPT},
    }
    if DASHBOARD_CARDS_KEPT > 0
    else {"BACKEND": "django.core.cache.backends.dummy.DummyCache"}
)

# --- Accounts -------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
SITE_ID = 1
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "babies:dashboard"
ACCOUNT_LOGOUT_REDIRECT_URL = "home"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
# A GET only renders the form; the POST confirms, so mail scanners cannot confirm addresses.
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_EMAIL_CONFIRMATION_EXPIRE_DAYS = 3
# Confirming the address logs the parent in, but only in the browser session that signed up
# (allauth checks the pending login stage), so a leaked link does not open the account.
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Instagender] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = env.str("ACCOUNT_DEFAULT_HTTP_PROTOCOL", default="http" if DEBUG else "https")
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_RATE_LIMITS = {
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip",
    "confirm_email": "1/3m/key",
    "reset_password": "20/m/ip,5/m/key",
}


def _per_account_rate(name: str, default: str) -> str:
    """A per-account limit such as ``60/10m/user,300/d/user`` (periods s, m, h, d); empty: none."""
    value = env.str(name, default=default).strip()
    for part in filter(None, (part.strip() for part in value.split(","))):
        if not re.fullmatch(r"[1-9][0-9]*/([1-9][0-9]*)?[smhd]/user", part):
            raise ImproperlyConfigured(
                f"{name} must look like 60/10m/user,300/d/user (or be empty); got {value!r}."
            )
    return value


# Per account, on what costs the most (instagender.ratelimits): a refusal is a 429 with a sentence.
ACCOUNT_RATE_LIMITS |= {
    "scan_upload": _per_account_rate("RATE_LIMIT_SCAN_UPLOAD", "60/10m/user,300/d/user"),
    "predict": _per_account_rate("RATE_LIMIT_PREDICT", "60/10m/user,300/d/user"),
    "account_export": _per_account_rate("RATE_LIMIT_ACCOUNT_EXPORT", "10/h/user"),
}
ALLAUTH_TRUSTED_PROXY_COUNT = env.int("ALLAUTH_TRUSTED_PROXY_COUNT", default=0)
SITE_NAME = env.str("SITE_NAME", default="Instagender")
# Two-factor sign-in (allauth.mfa): an authenticator app (TOTP) with recovery codes. Required for
# staff before any admin page (accounts.middleware), optional for parents.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = SITE_NAME
MFA_FORMS = {"authenticate": "accounts.forms.SecondFactorForm"}
# Staff sessions end after this many seconds without a request (parents keep Django's two weeks).
STAFF_SESSION_IDLE_SECONDS = env.int("STAFF_SESSION_IDLE_SECONDS", default=30 * 60)
SITE_DOMAIN = env.str("SITE_DOMAIN", default="127.0.0.1:8000")

# --- E-mail ---------------------------------------------------------------------------------
# EMAIL_URL, e.g. smtp+tls://user:password@smtp.example.com:587; the console by default.
if "EMAIL_URL" in env:
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Instagender <noreply@instagender.local>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
ADMINS = [("Operators", address) for address in env.list("DJANGO_ADMINS", default=[])]
EMAIL_SUBJECT_PREFIX = "[Instagender] "
# Seconds any one SMTP operation may take: a server that accepts and never answers must not hold
# the outcome e-mail run (or a sign-up request) until a cron or gunicorn timeout.
EMAIL_TIMEOUT = env.float("EMAIL_TIMEOUT", default=10.0)

# --- Static files (whitenoise) and private media --------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))
# Front-end libraries come from npm (package.json + lock file); nothing is vendored by hand.
NODE_MODULES_DIR = Path(env.str("NODE_MODULES_DIR", default=str(BASE_DIR / "node_modules")))
STATICFILES_DIRS = [
    BASE_DIR / "static",
    ("vendor/bootstrap", NODE_MODULES_DIR / "bootstrap" / "dist"),
    ("vendor/cropperjs", NODE_MODULES_DIR / "cropperjs" / "dist"),
    ("vendor/exifr", NODE_MODULES_DIR / "exifr" / "dist"),
]
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG

# Media is private: no MEDIA_URL is ever routed. Scans are served by an owner-checking view.
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
# "local" (files on disk, streamed by Django in development or handed to nginx with
# X-Accel-Redirect in production) or "s3" (django-storages, private objects, presigned URLs).
STORAGE_BACKEND = env.str("STORAGE_BACKEND", default="local")
# How a JPEG reaches its owner with local storage: "stream" (Django) or "x-accel" (nginx).
PRIVATE_MEDIA_SERVING = env.str("PRIVATE_MEDIA_SERVING", default="stream")
PRIVATE_MEDIA_ACCEL_PREFIX = env.str("PRIVATE_MEDIA_ACCEL_PREFIX", default="/protected/")

if STORAGE_BACKEND == "s3":
    # Credentials come from boto3's own chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an
    # instance role, ...), never from settings. The bucket must not be public.
    _s3_options = {
        "bucket_name": env.str("AWS_STORAGE_BUCKET_NAME"),
        "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default="") or None,
        "region_name": env.str("AWS_S3_REGION_NAME", default="") or None,
        # "private" for buckets with ACLs; empty for new AWS buckets, whose ACLs are disabled
        # (S3 rejects any ACL header but bucket-owner-full-control; objects are private anyway).
        "default_acl": env.str("AWS_DEFAULT_ACL", default="private") or None,
        "querystring_auth": True,
        "querystring_expire": env.int("AWS_QUERYSTRING_EXPIRE", default=300),
        # SigV4 URLs are accepted by every region and S3-compatible server (MinIO, R2, ...).
        "signature_version": "s3v4",
        # "path" for most S3-compatible servers, "virtual" or empty (auto) for AWS.
        "addressing_style": env.str("AWS_S3_ADDRESSING_STYLE", default="") or None,
        "file_overwrite": False,
    }
    # Originals and model files are read by the app only: their storage cannot make a URL at all.
    _s3_backends = {
        "default": "storages.backends.s3.S3Storage",
        "scans": "storages.backends.s3.S3Storage",
        "originals": "instagender.storage_s3.UnlinkableS3Storage",
        "models": "instagender.storage_s3.UnlinkableS3Storage",
    }
    STORAGES = {
        alias: {"BACKEND": backend, "OPTIONS": {**_s3_options, "location": alias}}
        for alias, backend in _s3_backends.items()
    }
elif STORAGE_BACKEND == "local":
    STORAGES = {
        alias: {"BACKEND": "instagender.storage.PrivateFileSystemStorage", "OPTIONS": {"folder": alias}}
        for alias in ("default", "originals", "scans", "models")
    }
else:
    raise ImproperlyConfigured(f"STORAGE_BACKEND must be 'local' or 's3', not {STORAGE_BACKEND!r}.")
STORAGES["staticfiles"] = {
    "BACKEND": (
        "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "instagender.storage.HashedStaticFilesStorage"  # whitenoise's, its URLs kept
    )
}
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750

# --- Uploads and images ---------------------------------------------------------------------
# The formats a parent may upload (Pillow format names), as the original Flask app kept them in config.
SCAN_ALLOWED_FORMATS = env.list(
    "SCAN_ALLOWED_FORMATS", default=["JPEG", "PNG", "WEBP", "HEIF", "BMP", "TIFF", "MPO"]
)
SCAN_MAX_UPLOAD_BYTES = env.int("SCAN_MAX_UPLOAD_BYTES", default=25 * 1024 * 1024)
SCAN_MAX_PIXELS = env.int("SCAN_MAX_PIXELS", default=50_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# A scan is read into memory whole anyway (babies.images.read_upload): Django keeps it there
# from the start instead of writing it to a temporary file and reading it back.
FILE_UPLOAD_MAX_MEMORY_SIZE = SCAN_MAX_UPLOAD_BYTES + 64 * 1024

# --- Predictions and outcomes ---------------------------------------------------------------
OUTCOME_EMAIL_DELAY_DAYS = env.int("OUTCOME_EMAIL_DELAY_DAYS", default=7)
OUTCOME_LINK_MAX_AGE_DAYS = env.int("OUTCOME_LINK_MAX_AGE_DAYS", default=60)
INFERENCE_NUM_THREADS = env.int("INFERENCE_NUM_THREADS", default=2)
PREDICTION_MIN_GESTATIONAL_WEEK = env.int("PREDICTION_MIN_GESTATIONAL_WEEK", default=12)
# 0.2: on the fixed evaluation set the demo model then answers about 91 % of babies and is right
# for about 94.5 % of those, against about 59 % for the babies it declines (README).
PREDICTION_ABSTAIN_MARGIN = env.float("PREDICTION_ABSTAIN_MARGIN", default=0.2)
# "Cannot tell" also when one scan says male with p >= 0.5 + this and another female with
# p <= 0.5 - this (see ml.abstention).
PREDICTION_DISAGREEMENT_THRESHOLD = env.float("PREDICTION_DISAGREEMENT_THRESHOLD", default=0.3)
# The fixed synthetic evaluation set every synthetic version is measured and compared on
# (predictions.evaluation_set): generated from its own seed, never trained on.
MODEL_EVALUATION_SEED = env.int("MODEL_EVALUATION_SEED", default=20261130)
MODEL_EVALUATION_BABIES = env.int("MODEL_EVALUATION_BABIES", default=3000)
MODEL_EVALUATION_DIR = Path(env.str("MODEL_EVALUATION_DIR", default=str(VAR_DIR / "evaluation-sets")))

# --- Forms ----------------------------------------------------------------------------------
CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "en-gb"
TIME_ZONE = env.str("TIME_ZONE", default="Europe/London")
USE_I18N = True
# One wording everywhere ("Log in", "Log out", "Sign up", "e-mail", sentence-case headings): this
# catalogue rewords allauth's pages, form labels, messages and e-mails (locale/en_GB/…/django.po).
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_TZ = True

# --- Security -------------------------------------------------------------------------------
# No inline scripts or styles anywhere: JavaScript lives in static files.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:", "blob:"] + env.list("CSP_EXTRA_IMG_SRC", default=[]),
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
# fetch() callers get JSON with a sentence, people a page that says to reload.
CSRF_FAILURE_VIEW = "instagender.views.csrf_failure"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
if not DEBUG:
    SESSION_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env_bool("DJANGO_SECURE_COOKIES", default=True)
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env_bool("DJANGO_SECURE_HSTS_PRELOAD", default=True)
    # nginx terminates TLS and says so in X-Forwarded-Proto.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# --- Logging: one line per record on stdout -------------------------------------------------
LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "request_id": {"()": "instagender.logging.RequestIdFilter"},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {
        "line": {
            "format": (
                "time=%(asctime)s level=%(levelname)s logger=%(name)s "
                "request_id=%(request_id)s message=%(message)s"
            ),
        },
    },
    "handlers": {
        "stdout": {"class": "logging.StreamHandler", "formatter": "line", "filters": ["request_id"]},
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false"],
        },
    },
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.request": {"handlers": ["stdout", "mail_admins"], "level": "ERROR", "propagate": False},
        # Scanners send odd Host headers all day: a log line each, not a mail to the operators.
        "django.security.DisallowedHost": {"handlers": ["stdout"], "level": "ERROR", "propagate": False},
    },
}
