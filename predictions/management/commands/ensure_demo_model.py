"""Make sure a model is active, so a fresh ``make run`` can predict with no other step.

Does nothing when a model version is active and passes the quality gate. Otherwise generates
synthetic scans (kept under ``var/demo-data`` and reused, unless an older generator or another
size wrote them), trains the small CNN (about 90 s on two cores), records the version as
synthetic ("Synthetic demo model") and activates it only if it passes the quality gate
(``ml.gate``) on the fixed evaluation set. A run that does not pass is retried with
another training seed, up to ``--attempts`` times; then the command fails with a non-zero exit
and no model is switched on, so predictions are refused instead of a coin flip served.
``make run`` runs it in the background while the server already serves; as long as it holds its
lock, a prediction answers that predictions are warming up. An active demo model that does not pass
the gate (one trained before it existed) is replaced. Runs take a file lock, so two at once do
the work once. ``--with-demo-user`` also gives
demo@instagender.local a few synthetic babies.

Everything about this model is synthetic: its answers say nothing about real babies.
"""

import fcntl
import json
import shutil
import time
from pathlib import Path

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ml import gate
from ml.records import MANIFEST_NAME
from ml.synthetic import DATASET_INFO_NAME, GENERATOR_VERSION, SyntheticConfig, write_dataset
from predictions.inference import demo_model_lock_path
from predictions.models import ModelVersion
from predictions.services import ModelGateError, model_version_activate, synthetic_babies_create
from predictions.training.runs import load_folder, summary_line, train_and_record

DEMO_MODEL_NAME = "Synthetic demo model"
DEMO_USER_EMAIL = "demo@instagender.local"
# Sized so a first `make run` trains in about 90 s on two cores (bench/training.py measures it).
DEMO_BABIES = {"train": 1600, "val": 400, "test": 400}
DEMO_TRAINING = {
    "architecture": "small_cnn",
    "epochs": 10,
    "batch_size": 64,
    "learning_rate": 2e-3,
    "warmup_epochs": 1,
    "patience": 4,
    "seed": 0,
    "max_minutes": 3.0,
    "val_fraction": 0.15,
    "test_fraction": 0.2,
}
DEMO_ATTEMPTS = 3


def _is_outdated_synthetic_data(data_dir: Path, babies: dict | None = None) -> bool:
    """True for a data set an older synthetic generator wrote, or of another size than ``babies``.

    Only synthetic data sets are ever replaced. Version 1 recorded no version. A folder without
    the generator's info file is not synthetic and is left alone (training on it is refused).
    """
    try:
        info = json.loads((data_dir / DATASET_INFO_NAME).read_text())
    except (OSError, ValueError):
        return False
    if info.get("kind") != "synthetic":
        return False
    if int(info.get("generator_version", 1)) < GENERATOR_VERSION:
        return True
    return babies is not None and info.get("babies") != dict(babies)


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
        parser.add_argument(
            "--attempts",
            type=int,
            default=DEMO_ATTEMPTS,
            help="Training seeds to try before giving up (each must pass the quality gate).",
        )

    def handle(self, *args, **options):
        data_dir: Path = options["data_dir"] or demo_model_lock_path().parent
        data_dir.mkdir(parents=True, exist_ok=True)
        # While this lock is held, a prediction tells the parent that predictions are warming up
        # (predictions.inference.demo_model_is_training): `make run` serves during the training.
        with (data_dir / ".lock").open("w") as lock:
            # Two `make run`s at once: the second waits, then finds the first one's model.
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._ensure_model(data_dir, options)
        if options["with_demo_user"]:
            self._demo_user(options)

    def _ensure_model(self, data_dir: Path, options):
        active = ModelVersion.objects.active().first()
        if active is not None:
            verdict = gate.check(active.measured.evaluation)
            if verdict.passed or not (active.is_synthetic and active.name == DEMO_MODEL_NAME):
                self.stdout.write(f"An active model exists: {active}. Nothing to do.")
                if not verdict.passed:
                    self.stderr.write(f"Warning: {active} would not pass the quality gate: {verdict.message}")
                return
            self.stdout.write(f"The active demo model {active} does not pass the quality gate: replacing it.")
        started = time.monotonic()
        babies = dict(zip(DEMO_BABIES, options["babies"], strict=True)) if options["babies"] else DEMO_BABIES
        if (data_dir / MANIFEST_NAME).exists() and _is_outdated_synthetic_data(data_dir, babies):
            # Scans from an older generator lack what the metrics now report on (weeks per scan).
            self.stdout.write(
                f"The synthetic scans in {data_dir} are from an older generator or of another size: "
                "replacing them."
            )
            for split in ("train", "val", "test"):
                shutil.rmtree(data_dir / split, ignore_errors=True)
            (data_dir / MANIFEST_NAME).unlink()
        if not (data_dir / MANIFEST_NAME).exists():
            self.stdout.write(f"No usable model: generating synthetic scans in {data_dir} …")
            write_dataset(data_dir, babies=babies, scans_per_baby=3, seed=0, config=SyntheticConfig())
        else:
            self.stdout.write(f"No usable model: reusing the synthetic scans in {data_dir}.")
        data = load_folder(data_dir)
        if data.synthetic_info is None:
            raise CommandError(f"{data_dir} is not a synthetic data set; point --data-dir elsewhere.")
        refusals = []
        for attempt in range(max(1, options["attempts"])):
            seed = DEMO_TRAINING["seed"] + attempt
            self.stdout.write(f"Training the synthetic demo model (seed {seed}, about 90 s) …")
            version = train_and_record(
                data,
                options={
                    **DEMO_TRAINING,
                    "seed": seed,
                    "epochs": options["epochs"],
                    "max_minutes": options["max_minutes"],
                },
                log=self.stdout.write,
                name=DEMO_MODEL_NAME,
                is_synthetic=True,
            )
            try:
                version = model_version_activate(
                    model_version=version, reason="ensure_demo_model: no model passing the gate was active"
                )
            except ModelGateError as exc:
                refusals.append(f"seed {seed}: {exc.verdict.message}")
                self.stdout.write(f"Version #{version.pk} (seed {seed}) was refused by the quality gate.")
                continue
            self.stdout.write(self.style.SUCCESS(summary_line(version, time.monotonic() - started)))
            return
        raise CommandError(
            f"No demo model passed the quality gate in {len(refusals)} attempt(s), so none was switched on "
            "(predictions would be a coin flip):\n  " + "\n  ".join(refusals)
        )

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
