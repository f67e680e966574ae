"""The synthetic generator: reproducible, labelled as it says, with the ceiling it claims."""

import csv
import io
import json
import math

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from PIL import Image

from ml.metrics import bayes_oracle
from ml.synthetic import (
    GENERATOR_VERSION,
    SyntheticConfig,
    bayes_ceiling,
    bayes_ceiling_for_weeks,
    equal_weight_ceiling,
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
    assert len({(scan.sex, scan.baby_key) for scan in scans}) == 1
    # Each scan has its own week (scans can come from different appointments).
    assert all(scan.gestational_week in SMALL.weeks for scan in scans)


def test_weeks_are_spread_over_the_range_and_early_scans_are_noisier():
    tiny = SyntheticConfig(image_size=32)  # the angles do not depend on the image size
    scans = list(generate_split(seed=0, split="train", babies=600, scans_per_baby=2, config=tiny))
    weeks = np.array([scan.gestational_week for scan in scans])
    assert set(weeks.tolist()) == set(range(11, 21))
    assert np.mean(weeks <= 12) == pytest.approx(SMALL.early_fraction, abs=0.04)
    noise = np.array([scan.measured_angle - scan.latent_angle for scan in scans])
    early, late = noise[weeks <= 12], noise[weeks >= 13]
    assert early.std() == pytest.approx(SMALL.early_scan_angle_sd, rel=0.12)
    assert late.std() == pytest.approx(SMALL.scan_angle_sd, rel=0.08)
    assert len({(s.baby_key, s.gestational_week) for s in scans}) > 600  # weeks differ within babies


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
        # A mixture over weeks: the scan noise's variance is averaged over the week distribution.
        mean_scan_variance = np.mean([SMALL.scan_sd(week) ** 2 for week in SMALL.weeks])
        assert abs(angles.std() - math.sqrt(SMALL.baby_angle_sd**2 + mean_scan_variance)) < 1.5
    assert 0.4 < np.mean([scan.sex == "male" for scan in scans]) < 0.6


def test_bayes_ceiling_closed_form():
    config = SyntheticConfig()
    late, early = math.sqrt(136), math.sqrt(244)  # sqrt(10² + 6²), sqrt(10² + 12²)
    # Per scan: weeks 11-12 (a fifth) at Phi(15 / sqrt(244)), the rest at Phi(15 / sqrt(136)).
    assert bayes_ceiling(config, 1) == pytest.approx(0.2 * _phi(15 / early) + 0.8 * _phi(15 / late), abs=1e-9)
    assert bayes_ceiling(config, 1) == pytest.approx(0.88696, abs=1e-4)
    assert bayes_ceiling(config, 3) == pytest.approx(0.91912, abs=1e-4)
    assert equal_weight_ceiling(config, 3) == pytest.approx(0.91541, abs=1e-4)
    assert bayes_ceiling(config, None) == pytest.approx(0.93319, abs=1e-4)  # Phi(15 / 10)
    assert bayes_ceiling(config, 1) < bayes_ceiling(config, 2) < bayes_ceiling(config, 3)
    assert equal_weight_ceiling(config, 3) < bayes_ceiling(config, 3)
    assert equal_weight_ceiling(config, 1) == pytest.approx(bayes_ceiling(config, 1))
    assert bayes_ceiling_for_weeks(config, [11, 12]) == pytest.approx(_phi(15 / early))
    assert bayes_ceiling_for_weeks(config, range(13, 16)) == pytest.approx(0.90082, abs=1e-4)
    assert bayes_ceiling_for_weeks(config, [5, 30]) is None
    with pytest.raises(ValueError):
        bayes_ceiling(config, 0)
    with pytest.raises(ValueError):
        equal_weight_ceiling(config, 0)


def test_a_config_written_by_the_first_generator_keeps_its_ceilings():
    """Version 1 drew the same noise at every week: its recorded config must not gain early noise."""
    recorded = {
        **{key: value for key, value in SyntheticConfig().to_dict().items() if key != "early_scan_angle_sd"},
        "min_gestational_week": 12,
        "max_gestational_week": 16,
        "some_future_setting": 1,
    }
    del recorded["marker_fraction"], recorded["last_early_week"]
    config = SyntheticConfig.from_dict(recorded)
    # Phi(15 / sqrt(136)) and Phi(15 / sqrt(112)): the first generator's figures.
    assert bayes_ceiling(config, 1) == pytest.approx(0.90082, abs=1e-4)
    assert bayes_ceiling(config, 3) == pytest.approx(0.92181, abs=1e-4)
    assert SyntheticConfig.from_dict(SyntheticConfig().to_dict()) == SyntheticConfig()


@pytest.mark.parametrize(
    "fields",
    [
        {"min_gestational_week": 20, "max_gestational_week": 11},
        {"marker_fraction": 1.5},
        {"scan_angle_sd": 0},
    ],
)
def test_config_refuses_nonsense(fields):
    with pytest.raises(ValueError):
        SyntheticConfig(**fields)


def _phi(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_bayes_ceiling_matches_a_simulation_of_the_generator_distributions():
    """Monte Carlo: the Bayes rule (precision-weighted mean) scores what the formula says."""
    config = SyntheticConfig()
    rng = np.random.default_rng(0)
    babies, k = 200_000, 3
    labels = rng.random(babies) < 0.5
    means = np.where(labels, config.male_mean_angle, config.female_mean_angle)
    latent = rng.normal(means, config.baby_angle_sd)
    weeks = rng.integers(config.min_gestational_week, config.max_gestational_week + 1, size=(babies, k))
    spreads = np.where(weeks <= config.last_early_week, config.early_scan_angle_sd, config.scan_angle_sd)
    angles = latent[:, None] + rng.normal(0, 1, size=(babies, k)) * spreads
    precision = 1 / spreads**2
    weighted = (angles * precision).sum(axis=1) / precision.sum(axis=1)
    per_scan = np.mean((angles[:, 0] > config.decision_angle) == labels)
    per_baby = np.mean((weighted > config.decision_angle) == labels)
    plain = np.mean((angles.mean(axis=1) > config.decision_angle) == labels)
    assert per_scan == pytest.approx(bayes_ceiling(config, 1), abs=0.003)
    assert per_baby == pytest.approx(bayes_ceiling(config, k), abs=0.003)
    assert plain == pytest.approx(equal_weight_ceiling(config, k), abs=0.003)


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
        assert 11 <= int(row["gestational_week"]) <= 20 and row["markers"] == ""
    info = json.loads((tmp_path / "synthetic.json").read_text())
    assert info["kind"] == "synthetic" and info["seed"] == 5
    assert info["generator_version"] == GENERATOR_VERSION
    assert info["bayes_ceiling"]["per_baby"] == pytest.approx(bayes_ceiling(SMALL, 2))
    assert info["bayes_ceiling"]["per_baby_equal_weights"] == pytest.approx(equal_weight_ceiling(SMALL, 2))
    assert SyntheticConfig.from_dict(info["config"]) == SMALL
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
    assert "Wrote 12 scans" in out.getvalue() and "Bayes ceiling: 88.7% per scan" in out.getvalue()
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
    assert set(Scan.objects.values_list("gestational_week", flat=True)) <= set(range(11, 21))
    # Marked as generated where they are made, not guessed later from names or the owner.
    assert all(baby.is_synthetic for baby in babies)
    assert set(Scan.objects.values_list("is_synthetic", flat=True)) == {True}
    assert "Created 2 synthetic babies with 4 scans" in out.getvalue()
    call_command("make_synthetic_scans", image_size=64, stdout=out, **options)
    assert babies.count() == 2
    with pytest.raises(CommandError, match="--owner-email"):
        call_command("make_synthetic_scans", create_rows=True, stdout=out)


def test_markers_are_off_by_default_and_burning_them_in_moves_no_other_pixel():
    plain = generate_baby(seed=4, split="test", index=1, scans_per_baby=3, config=SMALL)
    marked_config = SyntheticConfig(image_size=64, marker_fraction=1.0)
    marked = generate_baby(seed=4, split="test", index=1, scans_per_baby=3, config=marked_config)
    assert all(scan.markers == () for scan in plain)
    assert all(scan.markers and set(scan.markers) <= {"text", "calipers"} for scan in marked)
    for clean, with_markers in zip(plain, marked, strict=True):
        assert (clean.measured_angle, clean.gestational_week) == (
            with_markers.measured_angle,
            with_markers.gestational_week,
        )
        assert clean.jpeg != with_markers.jpeg
        clean_pixels = np.asarray(Image.open(io.BytesIO(clean.jpeg)).convert("L"), dtype=int)
        marked_pixels = np.asarray(Image.open(io.BytesIO(with_markers.jpeg)).convert("L"), dtype=int)
        # Most pixels are the same scan (JPEG blocks around the overlay change a little).
        assert np.mean(np.abs(clean_pixels - marked_pixels) <= 8) > 0.8
    # Seeded like everything else.
    again = generate_baby(seed=4, split="test", index=1, scans_per_baby=3, config=marked_config)
    assert [scan.jpeg for scan in again] == [scan.jpeg for scan in marked]


def test_marker_fraction_is_a_share_and_the_manifest_names_the_overlays(tmp_path):
    config = SyntheticConfig(image_size=64, marker_fraction=0.3)
    write_dataset(tmp_path, babies={"test": 100}, scans_per_baby=2, seed=1, config=config)
    with (tmp_path / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    marked = [row for row in rows if row["markers"]]
    assert 0.2 < len(marked) / len(rows) < 0.4
    assert {row["markers"] for row in marked} == {"text", "calipers", "text+calipers"}
    with Image.open(tmp_path / marked[0]["path"]) as image:
        assert image.format == "JPEG"


def test_command_burns_markers_into_the_share_asked_and_refuses_a_bad_share(tmp_path):
    out = io.StringIO()
    output = tmp_path / "markers"
    call_command(
        "make_synthetic_scans",
        output=output,
        train=0,
        val=0,
        test=20,
        marker_fraction=1.0,
        image_size=64,
        stdout=out,
    )
    with (output / "manifest.csv").open() as handle:
        assert all(row["markers"] for row in csv.DictReader(handle))
    assert "Burning text and/or calipers into 100% of the scans" in out.getvalue()
    with pytest.raises(CommandError, match="share"):
        call_command("make_synthetic_scans", output=tmp_path / "bad", marker_fraction=2.0, stdout=out)


def test_ensure_demo_model_replaces_only_data_from_an_older_generator(tmp_path, db):
    from predictions.management.commands.ensure_demo_model import _is_outdated_synthetic_data

    current = tmp_path / "current"
    write_dataset(current, babies={"test": 1}, scans_per_baby=1, config=SMALL)
    assert not _is_outdated_synthetic_data(current)
    info = json.loads((current / "synthetic.json").read_text())
    del info["generator_version"]  # what the first generator wrote
    (current / "synthetic.json").write_text(json.dumps(info))
    assert _is_outdated_synthetic_data(current)
    assert not _is_outdated_synthetic_data(tmp_path / "missing")

    # A folder that is not synthetic is never deleted: the command refuses to train on it instead.
    exported = tmp_path / "exported"
    exported.mkdir()
    (exported / "a.jpg").write_bytes(
        generate_baby(seed=0, split="test", index=0, scans_per_baby=1, config=SMALL)[0].jpeg
    )
    (exported / "manifest.csv").write_text("path,label,baby_key\na.jpg,1,b1\n")
    with pytest.raises(CommandError, match="not a synthetic data set"):
        call_command("ensure_demo_model", data_dir=exported, stdout=io.StringIO())
    assert (exported / "manifest.csv").is_file() and (exported / "a.jpg").is_file()
