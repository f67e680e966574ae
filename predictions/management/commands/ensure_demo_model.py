"""Make sure a model is active, so a fresh ``make run`` can predict with no other step.

Does nothing when a model version is active. Otherwise generates synthetic scans (kept under
``var/demo-data`` and reused, unless an older generator wrote them), trains the small CNN for a
few minutes, records the version as synthetic ("Synthetic demo model") and activates it. Runs
take a file lock, so two at once do the work once. ``--with-demo-user`` also gives
demo@instagender.local a few synthetic babies.

Everything about this model is synthetic: its answers say nothing about real babies.
"""

import fcntl
import json
import shutil
import time
from pathlib import Path

from allauth.account.models import EmailAddress
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from predictions.management.commands.train_model import load_folder, summary_line, train_and_record
from predictions.ml.records import MANIFEST_NAME
from predictions.ml.synthetic import DATASET_INFO_NAME, GENERATOR_VERSION, SyntheticConfig, write_dataset
from predictions.models import ModelVersion
from predictions.services import model_version_activate, synthetic_babies_create

DEMO_MODEL_NAME = "Synthetic demo model"
DEMO_USER_EMAIL = "demo@instagender.local"
# Sized so a first `make run` trains in about three minutes on two cores.
DEMO_BABIES = {"train": 800, "val": 200, "test": 300}
DEMO_TRAINING = {
    "architecture": "small_cnn",
    "epochs": 12,
    "batch_size": 64,
    "learning_rate": 2e-3,
    "patience": 4,
    "seed": 0,
    "max_minutes": 4.0,
    "val_fraction": 0.15,
    "test_fraction": 0.2,
}


def _is_outdated_synthetic_data(data_dir: Path) -> bool:
    """True for a data set an older synthetic generator wrote (only those are ever replaced).

    Version 1 recorded no version. A folder without the generator's info file is not synthetic
    and is left alone (training on it is refused below).
    """
    try:
        info = json.loads((data_dir / DATASET_INFO_NAME).read_text())
    except (OSError, ValueError):
        return False
    return info.get("kind") == "synthetic" and int(info.get("generator_version", 1)) < GENERATOR_VERSION


class Command(BaseCommand):
    help = "Train and activate a synthetic demo model unless a model version is already active."

    def add_arguments(self, parser):
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=None,
            help="Where the synthetic data lives (default var/demo-data).",
        )
        parser.add_argument(
            "--with-demo-user", action="store_true", help=f"Also give {DEMO_USER_EMAIL} babies."
        )
        parser.add_argument("--demo-babies", type=int, default=3)
        parser.add_argument(
            "--demo-password", default="", help="Password for the demo user (default: none; set one later)."
        )
        parser.add_argument(
            "--babies", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"), help="Data set size."
        )
        parser.add_argument("--epochs", type=int, default=DEMO_TRAINING["epochs"])
        parser.add_argument("--max-minutes", type=float, default=DEMO_TRAINING["max_minutes"])

    def handle(self, *args, **options):
        data_dir: Path = options["data_dir"] or Path(settings.VAR_DIR) / "demo-data"
        data_dir.mkdir(parents=True, exist_ok=True)
        with (data_dir / ".lock").open("w") as lock:
            # Two `make run`s at once: the second waits, then finds the first one's model.
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._ensure_model(data_dir, options)
        if options["with_demo_user"]:
            self._demo_user(options)

    def _ensure_model(self, data_dir: Path, options):
        active = ModelVersion.objects.active().first()
        if active is not None:
            self.stdout.write(f"An active model exists: {active}. Nothing to do.")
            return
        started = time.monotonic()
        if (data_dir / MANIFEST_NAME).exists() and _is_outdated_synthetic_data(data_dir):
            # Scans from an older generator lack what the metrics now report on (weeks per scan).
            self.stdout.write(
                f"The synthetic scans in {data_dir} are from an older generator: replacing them."
            )
            for split in ("train", "val", "test"):
                shutil.rmtree(data_dir / split, ignore_errors=True)
            (data_dir / MANIFEST_NAME).unlink()
        if not (data_dir / MANIFEST_NAME).exists():
            babies = (
                dict(zip(DEMO_BABIES, options["babies"], strict=True)) if options["babies"] else DEMO_BABIES
            )
            self.stdout.write(f"No active model: generating synthetic scans in {data_dir} …")
            write_dataset(data_dir, babies=babies, scans_per_baby=3, seed=0, config=SyntheticConfig())
        else:
            self.stdout.write(f"No active model: reusing the synthetic scans in {data_dir}.")
        data = load_folder(data_dir)
        if data.synthetic_info is None:
            raise CommandError(f"{data_dir} is not a synthetic data set; point --data-dir elsewhere.")
        self.stdout.write("Training the synthetic demo model (a few minutes, once) …")
        version = train_and_record(
            data,
            options={**DEMO_TRAINING, "epochs": options["epochs"], "max_minutes": options["max_minutes"]},
            log=self.stdout.write,
            name=DEMO_MODEL_NAME,
            is_synthetic=True,
        )
        model_version_activate(model_version=version, reason="ensure_demo_model: no model was active")
        self.stdout.write(self.style.SUCCESS(summary_line(version, time.monotonic() - started)))

    def _demo_user(self, options):
        User = get_user_model()
        user = User.objects.filter(email__iexact=DEMO_USER_EMAIL).first()
        if user is None:
            user = User.objects.create_user(email=DEMO_USER_EMAIL, password=options["demo_password"] or None)
            if not options["demo_password"]:
                self.stdout.write(
                    f"Created {DEMO_USER_EMAIL} without a password: "
                    f"`manage.py changepassword {DEMO_USER_EMAIL}` sets one."
                )
        # The address is ours (a .local demo), so mark it verified: allauth requires that to log in.
        EmailAddress.objects.get_or_create(
            user=user, email=DEMO_USER_EMAIL, defaults={"verified": True, "primary": True}
        )
        babies, scans = synthetic_babies_create(owner=user, babies=options["demo_babies"], seed=0)
        self.stdout.write(f"{DEMO_USER_EMAIL}: {babies} synthetic babies with {scans} scans added.")
