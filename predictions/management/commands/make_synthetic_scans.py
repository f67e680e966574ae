"""Generate synthetic, ultrasound-like scans with known sexes (no real data set exists here).

Writes ``<output>/<split>/<sex>/<baby>_<n>.jpg``, ``manifest.csv`` and ``synthetic.json`` (the
distributions and the Bayes ceilings that follow from them), and/or creates Baby and Scan rows
for a demo owner through the babies services. Seeded: the same options give the same files.
Every scan has a gestational week (11-20 by default; the angle is noisier up to week 12), and
``--marker-fraction`` burns text and calipers into that share of the scans (none by default).

    manage.py make_synthetic_scans --output var/synthetic --train 1200 --val 300 --test 600
    manage.py make_synthetic_scans --output var/markers --train 0 --val 0 --test 200 --marker-fraction 0.5
    manage.py make_synthetic_scans --create-rows --owner-email demo@instagender.local --babies 4
"""

import shutil
import time
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from ml.records import MANIFEST_NAME
from ml.synthetic import SyntheticConfig, bayes_ceiling, equal_weight_ceiling, write_dataset
from predictions.services import synthetic_babies_create


class Command(BaseCommand):
    help = "Generate seeded synthetic ultrasound-like scans (a folder tree + manifest, and/or DB rows)."

    def add_arguments(self, parser):
        parser.add_argument("--output", type=Path, help="Folder to write the data set into.")
        parser.add_argument("--train", type=int, default=1200, help="Training babies (default 1200).")
        parser.add_argument("--val", type=int, default=300, help="Validation babies (default 300).")
        parser.add_argument("--test", type=int, default=600, help="Held-out test babies (default 600).")
        parser.add_argument("--scans-per-baby", type=int, default=3)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--image-size", type=int, default=SyntheticConfig.image_size)
        parser.add_argument(
            "--marker-fraction",
            type=float,
            default=SyntheticConfig.marker_fraction,
            help="Share of scans with burned-in text and/or calipers (default 0: none).",
        )
        parser.add_argument("--force", action="store_true", help="Replace an existing data set in --output.")
        parser.add_argument(
            "--create-rows", action="store_true", help="Also create Baby/Scan rows for --owner-email."
        )
        parser.add_argument("--owner-email", help="Owner of the rows (created, without a password, if new).")
        parser.add_argument("--babies", type=int, default=4, help="How many babies --create-rows makes.")
        parser.add_argument("--dry-run", action="store_true", help="Say what would be made; make nothing.")

    def handle(self, *args, **options):
        if not options["output"] and not options["create_rows"]:
            raise CommandError("Give --output to write a folder, --create-rows to create rows, or both.")
        if options["scans_per_baby"] < 1:
            raise CommandError("--scans-per-baby must be at least 1.")
        try:
            config = SyntheticConfig(
                image_size=options["image_size"], marker_fraction=options["marker_fraction"]
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        scans_per_baby = options["scans_per_baby"]
        self.stdout.write(
            f"Angles: female N({config.female_mean_angle}°, …), male N({config.male_mean_angle}°, …), "
            f"baby sd {config.baby_angle_sd}°, scan sd {config.scan_angle_sd}° "
            f"({config.early_scan_angle_sd}° up to week {config.last_early_week}); weeks "
            f"{config.min_gestational_week}-{config.max_gestational_week}. Bayes ceiling: "
            f"{bayes_ceiling(config, 1):.1%} per scan, "
            f"{bayes_ceiling(config, scans_per_baby):.1%} per baby with {scans_per_baby} scans "
            f"({equal_weight_ceiling(config, scans_per_baby):.1%} with equal weights)."
        )
        if config.marker_fraction:
            self.stdout.write(f"Burning text and/or calipers into {config.marker_fraction:.0%} of the scans.")
        if options["output"]:
            self._write_folder(options, config)
        if options["create_rows"]:
            self._create_rows(options, config)

    def _write_folder(self, options, config):
        output: Path = options["output"]
        babies = {"train": options["train"], "val": options["val"], "test": options["test"]}
        if any(count < 0 for count in babies.values()):
            raise CommandError("Baby counts cannot be negative.")
        scans = sum(babies.values()) * options["scans_per_baby"]
        if options["dry_run"]:
            self.stdout.write(f"Would write {scans} scans of {sum(babies.values())} babies to {output}.")
            return
        if (output / MANIFEST_NAME).exists():
            if not options["force"]:
                raise CommandError(f"{output} already holds a data set; pass --force to replace it.")
            for split in ("train", "val", "test"):
                shutil.rmtree(output / split, ignore_errors=True)
            (output / MANIFEST_NAME).unlink()
        started = time.monotonic()
        dataset = write_dataset(
            output,
            babies=babies,
            scans_per_baby=options["scans_per_baby"],
            seed=options["seed"],
            config=config,
        )
        counts = ", ".join(f"{split} {count}" for split, count in dataset.counts.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Wrote {sum(dataset.counts.values())} scans ({counts}) to {output} "
                f"in {time.monotonic() - started:.1f} s; manifest {dataset.manifest_path}."
            )
        )

    def _create_rows(self, options, config):
        email = options["owner_email"]
        if not email:
            raise CommandError("--create-rows needs --owner-email.")
        if options["dry_run"]:
            self.stdout.write(f"Would create {options['babies']} synthetic babies for {email}.")
            return
        owner = get_user_model().objects.filter(email__iexact=email).first()
        if owner is None:
            owner = get_user_model().objects.create_user(email=email, password=None)
            self.stdout.write(
                f"Created {email} without a password (set one with `manage.py changepassword`)."
            )
        babies, scans = synthetic_babies_create(
            owner=owner,
            babies=options["babies"],
            scans_per_baby=options["scans_per_baby"],
            seed=options["seed"],
            config=config,
        )
        self.stdout.write(
            self.style.SUCCESS(f"Created {babies} synthetic babies with {scans} scans for {email}.")
        )
