"""Settings are read from the environment once per process, so each case runs in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parents[2]

PRODUCTION_ENV = {
    "DJANGO_DEBUG": "0",
    "DJANGO_SECRET_KEY": "kP3v!x9-hG6s_Lq2#Yt8uWe4%Rz1@oNa5&bH8*cJ4^mD0vF3-Tg7yUi9oPl2",
    "DJANGO_ALLOWED_HOSTS": "instagender.example",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://instagender.example",
}


def run_python(code: str, **environment: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "DATABASE_URL", "EMAIL_", "STORAGE_"))
    }
    env.update(environment)
    return subprocess.run(
        [sys.executable, "-c", code], cwd=BASE_DIR, env=env, capture_output=True, text=True, timeout=120
    )


def read_setting(expression: str, **environment: str) -> str:
    code = (
        "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'instagender.settings';"
        f"from django.conf import settings; print(repr({expression}))"
    )
    result = run_python(code, **environment)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_laptop_defaults_are_sqlite_console_email_and_local_files():
    assert "sqlite3" in read_setting("settings.DATABASES['default']['ENGINE']")
    assert "console" in read_setting("settings.EMAIL_BACKEND")
    assert "PrivateFileSystemStorage" in read_setting("settings.STORAGES['scans']['BACKEND']")
    assert read_setting("settings.DEBUG") == "True"


def test_database_url_is_parsed():
    url = "postgres://someone:secret@db.internal:6543/instagender"
    database = read_setting("settings.DATABASES['default']", DATABASE_URL=url)
    assert "'ENGINE': 'django.db.backends.postgresql'" in database
    assert "'HOST': 'db.internal'" in database
    assert "'PORT': 6543" in database
    assert "'NAME': 'instagender'" in database


def test_email_url_configures_smtp():
    backend = read_setting(
        "(settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS)",
        EMAIL_URL="smtp+tls://mailer:pw@smtp.example.com:587",
    )
    assert backend == "('django.core.mail.backends.smtp.EmailBackend', 'smtp.example.com', 587, True)"


def test_production_refuses_to_start_without_a_secret_key():
    result = run_python(
        "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'instagender.settings';"
        "from django.conf import settings; settings.SECRET_KEY",
        DJANGO_DEBUG="0",
    )
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr


@pytest.mark.parametrize("value", ["maybe", "2", "treu"])
def test_a_malformed_boolean_fails_loudly(value):
    result = run_python(
        "import os; os.environ['DJANGO_SETTINGS_MODULE'] = 'instagender.settings';"
        "from django.conf import settings; settings.DEBUG",
        DJANGO_DEBUG=value,
    )
    assert result.returncode != 0
    assert "DJANGO_DEBUG must be one of" in result.stderr


def test_production_settings_are_secure():
    values = read_setting(
        "(settings.DEBUG, settings.SESSION_COOKIE_SECURE, settings.CSRF_COOKIE_SECURE,"
        " settings.SECURE_HSTS_SECONDS, settings.SECURE_SSL_REDIRECT, settings.SECURE_PROXY_SSL_HEADER)",
        **PRODUCTION_ENV,
    )
    assert values == "(False, True, True, 31536000, True, ('HTTP_X_FORWARDED_PROTO', 'https'))"


def test_check_deploy_is_clean_with_a_production_environment():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=BASE_DIR,
        # The test process allows async-unsafe ORM calls for Playwright; a deployment never does.
        env={k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"} | PRODUCTION_ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
