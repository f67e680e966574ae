"""Fixtures shared by every app's tests."""

import os

import pytest

from accounts.tests.factories import DEFAULT_PASSWORD, StaffFactory, UserFactory

# Playwright's sync API runs an event loop in the test thread; Django's ORM must still be usable.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM_PATH = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


@pytest.fixture(autouse=True)
def _private_media_in_tmp(settings, tmp_path):
    """Every test writes its files under its own temporary MEDIA_ROOT."""
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(scope="session")
def _evaluation_sets_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("evaluation-sets")


@pytest.fixture(autouse=True)
def _small_evaluation_set(settings, _evaluation_sets_dir):
    """The fixed evaluation set has 3,000 babies in production; 60 are enough to exercise it.

    Generated once per session (in a folder of its own, never the developer's var/).
    """
    settings.MODEL_EVALUATION_BABIES = 60
    settings.MODEL_EVALUATION_DIR = _evaluation_sets_dir


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """PBKDF2 costs ~0.5 s per user on these machines; tests make hundreds of users."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def _fresh_cache():
    """allauth's rate limits live in the cache: no test inherits another's counters."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def password():
    return DEFAULT_PASSWORD


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture
def other_user(db):
    return UserFactory()


@pytest.fixture
def staff_user(db):
    return StaffFactory()


@pytest.fixture
def parent_client(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


# --- Browser tests (pytest-playwright driving Debian's Chromium) ---------------------------
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM_PATH,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    }


# --- Babies and scans (factories in babies/tests/factories.py) ------------------------------
@pytest.fixture
def baby(user):
    """An unborn baby of ``user``."""
    from babies.tests.factories import BabyFactory

    return BabyFactory(owner=user)


@pytest.fixture
def born_baby(user):
    from babies.tests.factories import BabyFactory

    return BabyFactory(owner=user, born=True)


@pytest.fixture
def scan(baby):
    """A scan of ``baby`` made through ``babies.services.scan_create`` (its files exist)."""
    from babies.tests.factories import create_scan

    return create_scan(baby)
