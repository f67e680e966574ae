"""Fail closed: production shares its cache (rate limits) across workers unless told otherwise.

Settings are read once per process, so each case runs in a subprocess (see test_settings).
"""

from instagender.tests.test_settings import PRODUCTION_ENV, read_setting, run_python


def test_production_defaults_to_the_database_cache_the_release_step_creates():
    cache = read_setting("settings.CACHES['default']", **PRODUCTION_ENV)
    assert "'BACKEND': 'django.core.cache.backends.db.DatabaseCache'" in cache
    assert "'LOCATION': 'instagender_cache'" in cache  # compose's CACHE_URL names the same table


def test_cache_url_still_wins_in_production():
    cache = read_setting(
        "settings.CACHES['default']['BACKEND']", **PRODUCTION_ENV, CACHE_URL="redis://cache:6379/0"
    )
    assert "RedisCache" in cache


def test_a_laptop_keeps_the_cache_in_memory():
    assert "LocMemCache" in read_setting("settings.CACHES['default']['BACKEND']")


def test_per_account_limits_come_from_the_environment():
    limits = read_setting(
        "{k: settings.ACCOUNT_RATE_LIMITS[k] "
        "for k in ('scan_upload', 'predict', 'account_export', 'login_failed')}",
        RATE_LIMIT_SCAN_UPLOAD="5/m/user, 20/h/user",
        RATE_LIMIT_PREDICT="",
    )
    assert limits == (
        "{'scan_upload': '5/m/user, 20/h/user', 'predict': '', 'account_export': '10/h/user', "
        "'login_failed': '10/m/ip,5/5m/key'}"
    )


def test_a_mistyped_limit_stops_the_start():
    code = "import os, django; os.environ['DJANGO_SETTINGS_MODULE'] = 'instagender.settings'; django.setup()"
    result = run_python(code, RATE_LIMIT_PREDICT="60 per hour")
    assert result.returncode != 0
    assert (
        "RATE_LIMIT_PREDICT must look like 60/10m/user,300/d/user (or be empty); got '60 per hour'."
        in result.stderr
    )
