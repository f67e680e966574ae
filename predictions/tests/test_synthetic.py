"""The synthetic generator: reproducible, labelled as it says, with the ceiling it claims."""

import csv
import io
import json
import math

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from predictions.ml.metrics import bayes_oracle
from predictions.ml.synthetic import (
    SyntheticConfig,
    bayes_ceiling,
    generate_baby,
    generate_split,
    render_scan,
    write_dataset,
)

SMALL = SyntheticConfig(image_size=64)


def test_same_seed_gives_identical_jpegs_and_angles():
    first = list(generate_split(seed=3, split="train", babies=4, scans_per_baby=2, config=SMALL))
    second = list(generate_split(seed=3, split="train", babies=4, scans_per_baby=2, config=SMALL))
    assert [scan.jpeg for scan in first] == [scan.jpeg for scan in second]
    assert [scan.measured_angle for scan in first] == [scan.measured_angle for scan in second]


def test_a_baby_does_not_depend_on_how_many_were_generated_before_it():
    alone = generate_baby(seed=3, split="test", index=5, scans_per_baby=2, config=SMALL)
    in_a_run = list(generate_split(seed=3, split="test", babies=6, scans_per_baby=2, config=SMALL))[-2:]
    assert [scan.jpeg for scan in alone] == [scan.jpeg for scan in in_a_run]


def test_other_seed_or_split_gives_other_babies():
    base = generate_baby(seed=3, split="train", index=0, scans_per_baby=1, config=SMALL)[0]
    assert generate_baby(seed=4, split="train", index=0, scans_per_baby=1, config=SMALL)[0].jpeg != base.jpeg
    assert generate_baby(seed=3, split="val", index=0, scans_per_baby=1, config=SMALL)[0].jpeg != base.jpeg


def test_scans_of_one_baby_share_its_latent_angle_but_not_their_pixels():
    scans = generate_baby(seed=1, split="train", index=2, scans_per_baby=3, config=SMALL)
    assert len({scan.latent_angle for scan in scans}) == 1
    assert len({scan.measured_angle for scan in scans}) == 3
    assert len({scan.jpeg for scan in scans}) == 3
    assert len({(scan.sex, scan.gestational_week, scan.baby_key) for scan in scans}) == 1


def test_render_is_a_grey_sector_on_black():
    image = render_scan(np.random.default_rng(0), angle=20.0, size=96)
    assert image.mode == "L" and image.size == (96, 96)
    pixels = np.asarray(image)
    # The top corners are outside the fan; its middle is not empty.
    assert pixels[:10, :10].max() == 0 and pixels[:10, -10:].max() == 0
    assert pixels[40:70, 30:66].mean() > 20


def test_angle_distributions_follow_the_config():
    scans = list(generate_split(seed=0, split="train", babies=400, scans_per_baby=1, config=SMALL))
    for sex, mean in [("female", SMALL.female_mean_angle), ("male", SMALL.male_mean_angle)]:
        angles = np.array([scan.measured_angle for scan in scans if scan.sex == sex])
        assert abs(angles.mean() - mean) < 2.5
        assert abs(angles.std() - math.hypot(SMALL.baby_angle_sd, SMALL.scan_angle_sd)) < 2.0
    assert 0.4 < np.mean([scan.sex == "male" for scan in scans]) < 0.6


def test_bayes_ceiling_closed_form():
    config = SyntheticConfig()
    # Phi(15 / sqrt(136)), Phi(15 / sqrt(112)), Phi(15 / 10)
    assert bayes_ceiling(config, 1) == pytest.approx(0.90082, abs=1e-4)
    assert bayes_ceiling(config, 3) == pytest.approx(0.92181, abs=1e-4)
    assert bayes_ceiling(config, None) == pytest.approx(0.93319, abs=1e-4)
    assert bayes_ceiling(config, 1) < bayes_ceiling(config, 2) < bayes_ceiling(config, 3)
    with pytest.raises(ValueError):
        bayes_ceiling(config, 0)


def test_bayes_ceiling_matches_a_simulation_of_the_generator_distributions():
    """Monte Carlo: the Bayes rule on simulated angles scores what the formula says."""
    config = SyntheticConfig()
    rng = np.random.default_rng(0)
    babies, k = 200_000, 3
    labels = rng.random(babies) < 0.5
    means = np.where(labels, config.male_mean_angle, config.female_mean_angle)
    latent = rng.normal(means, config.baby_angle_sd)
    angles = latent[:, None] + rng.normal(0, config.scan_angle_sd, size=(babies, k))
    per_scan = np.mean((angles[:, 0] > config.decision_angle) == labels)
    per_baby = np.mean((angles.mean(axis=1) > config.decision_angle) == labels)
    assert per_scan == pytest.approx(bayes_ceiling(config, 1), abs=0.003)
    assert per_baby == pytest.approx(bayes_ceiling(config, k), abs=0.003)


def test_write_dataset_tree_manifest_and_info(tmp_path):
    dataset = write_dataset(tmp_path, babies={"train": 3, "test": 2}, scans_per_baby=2, seed=5, config=SMALL)
    with dataset.manifest_path.open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 10 and dataset.counts == {"train": 6, "test": 4}
    for row in rows:
        path = tmp_path / row["path"]
        assert path.parts[-3:-1] == (row["split"], row["sex"])
        assert path.name == f"{row['baby_key']}_{row['scan_index']}.jpg"
        assert int(row["label"]) == (row["sex"] == "male")
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            assert image.format == "JPEG" and image.size == (64, 64)
    info = json.loads((tmp_path / "synthetic.json").read_text())
    assert info["kind"] == "synthetic" and info["seed"] == 5
    assert info["bayes_ceiling"]["per_baby"] == pytest.approx(bayes_ceiling(SMALL, 2))
    # The oracle helper applied to the manifest's angles agrees with itself per baby.
    oracle = bayes_oracle(
        labels=np.array([int(r["label"]) for r in rows]),
        measured_angles=np.array([float(r["measured_angle"]) for r in rows]),
        baby_keys=[r["baby_key"] for r in rows],
        decision_angle=SMALL.decision_angle,
    )
    assert oracle["babies"] == 5


def test_command_writes_refuses_to_overwrite_and_dry_runs(tmp_path):
    output = tmp_path / "data"
    out = io.StringIO()
    call_command("make_synthetic_scans", output=output, train=2, val=1, test=1, image_size=48, stdout=out)
    assert "Wrote 12 scans" in out.getvalue() and "Bayes ceiling: 90.1% per scan" in out.getvalue()
    first = (output / "manifest.csv").read_bytes()
    with pytest.raises(CommandError, match="--force"):
        call_command("make_synthetic_scans", output=output, train=2, val=1, test=1, stdout=io.StringIO())
    call_command(
        "make_synthetic_scans", output=output, train=2, val=1, test=1, image_size=48, force=True, stdout=out
    )
    assert (output / "manifest.csv").read_bytes() == first
    dry = tmp_path / "dry"
    call_command("make_synthetic_scans", output=dry, dry_run=True, stdout=out)
    assert not dry.exists()
    with pytest.raises(CommandError):
        call_command("make_synthetic_scans", stdout=out)


def test_command_creates_rows_for_a_demo_owner_once(db):
    from babies.models import Baby, Scan

    out = io.StringIO()
    options = {"create_rows": True, "owner_email": "demo@example.com", "babies": 2, "scans_per_baby": 2}
    call_command("make_synthetic_scans", image_size=64, stdout=out, **options)
    babies = Baby.objects.filter(owner__email="demo@example.com")
    assert babies.count() == 2 and Scan.objects.filter(baby__in=babies).count() == 4
    assert all(baby.name.startswith("Synthetic baby") and baby.due_date for baby in babies)
    assert set(Scan.objects.values_list("gestational_week", flat=True)) <= set(range(12, 17))
    assert "Created 2 synthetic babies with 4 scans" in out.getvalue()
    call_command("make_synthetic_scans", image_size=64, stdout=out, **options)
    assert babies.count() == 2
    with pytest.raises(CommandError, match="--owner-email"):
        call_command("make_synthetic_scans", create_rows=True, stdout=out)
