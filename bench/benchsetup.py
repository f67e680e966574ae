"""Shared set-up for the benchmarks that go through Django: a throwaway database, media folder and
evaluation-set folder, production code paths (DEBUG off, no SQL logging), nothing written to the
developer's var/; and the demo recipe trained small in a child process, for the benchmarks that
need a model version."""

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def configure_django(workdir: Path, *, database_url: str | None = None) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "instagender.settings"
    os.environ["DATABASE_URL"] = database_url or f"sqlite:///{workdir / 'bench.sqlite3'}"
    os.environ["MEDIA_ROOT"] = str(workdir / "media")
    # The fixed evaluation set (predictions.evaluation_set) is generated here, not under var/.
    os.environ["MODEL_EVALUATION_DIR"] = str(workdir / "evaluation-sets")
    os.environ["DJANGO_DEBUG"] = "0"  # no SQL logging; production code paths
    os.environ["DJANGO_SECRET_KEY"] = "bench-only-secret-key-" + "x" * 40
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,127.0.0.1"
    os.environ["DJANGO_SECURE_SSL_REDIRECT"] = "0"
    os.environ["DJANGO_SECURE_COOKIES"] = "0"
    os.environ["DJANGO_LOG_LEVEL"] = "WARNING"
    os.environ["STATIC_ROOT"] = str(workdir / "static")
    (workdir / "static").mkdir(exist_ok=True)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # Production settings keep the rate limits in the database cache (what release.sh creates).
    call_command("createcachetable", verbosity=0)


def manage(*arguments: str) -> str:
    """A management command in a child process with this process's settings; its output.

    The child inherits the environment ``configure_django`` set, so it uses the same throwaway
    database and folders.
    """
    command = [sys.executable, str(ROOT / "manage.py"), *arguments]
    result = subprocess.run(command, cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(
            f"manage.py {arguments[0]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
        )
    return result.stdout


def train_small_demo_model(workdir: Path, *, babies: dict[str, int], epochs: int, name: str):
    """Synthetic data (seed 0) and the demo recipe (``DEMO_TRAINING``) with ``epochs``, trained by
    ``manage.py train_model`` in a child process (TensorFlow stays out of this one); the new,
    inactive ModelVersion. Call after :func:`configure_django`."""
    from ml.synthetic import SyntheticConfig, write_dataset
    from predictions.management.commands.ensure_demo_model import DEMO_TRAINING
    from predictions.models import ModelVersion

    data_dir = workdir / "demo-data"
    write_dataset(data_dir, babies=babies, scans_per_baby=3, seed=0, config=SyntheticConfig())
    started = time.monotonic()
    before = ModelVersion.objects.order_by("-pk").values_list("pk", flat=True).first()
    options = {**DEMO_TRAINING, "epochs": epochs}
    manage(
        "train_model",
        *("--data", str(data_dir), "--name", name),
        *("--architecture", options["architecture"], "--epochs", str(options["epochs"])),
        *("--batch-size", str(options["batch_size"]), "--learning-rate", str(options["learning_rate"])),
        *("--warmup-epochs", str(options["warmup_epochs"]), "--patience", str(options["patience"])),
        *("--seed", str(options["seed"]), "--max-minutes", str(options["max_minutes"])),
        *("--val-fraction", str(options["val_fraction"]), "--test-fraction", str(options["test_fraction"])),
    )
    version = ModelVersion.objects.order_by("-pk").first()
    if version is None or version.pk == before:
        raise SystemExit("train_model recorded no model version")
    split = "/".join(str(babies[key]) for key in ("train", "val", "test"))
    print(
        f"set-up: trained version #{version.pk} ({options['architecture']}, demo recipe) on {split} "
        f"synthetic babies, {epochs} epoch(s), in {time.monotonic() - started:.0f} s",
        flush=True,
    )
    return version
