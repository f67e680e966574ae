"""Shared set-up for the benchmarks that go through Django: a throwaway database, media folder and
evaluation-set folder, production code paths (DEBUG off, no SQL logging), nothing written to the
developer's var/."""

import os
from pathlib import Path


def configure_django(workdir: Path) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "instagender.settings"
    os.environ["DATABASE_URL"] = f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    # The fixed evaluation set (predictions.evaluation_set) is generated here, not under var/.
    os.environ["MODEL_EVALUATION_DIR"] = str(workdir / "evaluation-sets")
    os.environ["DJANGO_DEBUG"] = "0"  # no SQL logging; production code paths
    os.environ["DJANGO_SECRET_KEY"] = "bench-only-secret-key-" + "x" * 40
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "0"
    os.environ["DJANGO_SECURE_COOKIES"] = "0"
    os.environ["DJANGO_LOG_LEVEL"] = "WARNING"
    os.environ["STATIC_ROOT"] = str(workdir / "static")
    (workdir / "static").mkdir(exist_ok=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
