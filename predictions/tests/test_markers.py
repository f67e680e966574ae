"""The burned-in text / caliper heuristic on synthetic scans with and without overlays.

The scans come from the generator (``marker_fraction``), and for the hand-drawn cases from a
clean generated scan with Pillow's default bitmap font and '+' marks drawn on it, so each test
knows exactly what is there. ``bench/markers.py`` measures the accuracy on a larger sample.
"""

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from ml.markers import MarkerReport, detect_markers
from ml.preprocessing import PreprocessingError
from ml.synthetic import SyntheticConfig, generate_split

CLEAN = SyntheticConfig()
MARKED = SyntheticConfig(marker_fraction=1.0)


def _jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def clean_scans() -> list[bytes]:
    return [
        scan.jpeg for scan in generate_split(seed=31, split="test", babies=40, scans_per_baby=1, config=CLEAN)
    ]


@pytest.fixture(scope="module")
def marked_scans():
    return list(generate_split(seed=32, split="test", babies=40, scans_per_baby=1, config=MARKED))


def _clean_image(index: int = 0, size: int = 128) -> Image.Image:
    scans = generate_split(
        seed=33, split="test", babies=index + 1, scans_per_baby=1, config=SyntheticConfig(image_size=size)
    )
    return Image.open(io.BytesIO(list(scans)[index].jpeg)).convert("RGB")


def test_clean_scans_are_not_flagged(clean_scans):
    reports = [detect_markers(jpeg) for jpeg in clean_scans]
    assert not any(report.has_markers for report in reports)
    assert max(report.score for report in reports) < 0.5


def test_scans_with_burned_in_text_or_calipers_are_flagged(marked_scans):
    reports = [detect_markers(scan.jpeg) for scan in marked_scans]
    flagged = sum(report.has_markers for report in reports)
    assert flagged >= 0.9 * len(marked_scans)
    assert all(report.score >= 0.5 for report in reports if report.has_markers)
    with_calipers = [r for s, r in zip(marked_scans, reports, strict=True) if "calipers" in s.markers]
    assert sum(r.has_calipers for r in with_calipers) >= 0.75 * len(with_calipers)


def test_white_text_in_a_black_corner_is_text():
    image = _clean_image()
    ImageDraw.Draw(image).text(
        (2, 2), "GA 12w3d", fill=(255, 255, 255), font=ImageFont.load_default_imagefont()
    )
    report = detect_markers(_jpeg(image))
    assert report.has_text and report.flags == ["text"]
    assert report.evidence["bright_outside_fan"] >= 12


def test_grey_text_over_the_fan_is_text_by_its_strokes():
    image = _clean_image(1).convert("L")
    ImageDraw.Draw(image).text((30, 40), "TIs 0.4 MI 1.1", fill=210, font=ImageFont.load_default_imagefont())
    report = detect_markers(_jpeg(image))
    assert report.has_text and report.evidence["vertical_strokes"] >= 8


def test_a_pair_of_plus_calipers_with_a_dotted_line():
    image = _clean_image(2)
    draw = ImageDraw.Draw(image)
    for x, y in [(50, 70), (85, 80)]:
        draw.line([(x - 4, y), (x + 4, y)], fill=(255, 255, 255))
        draw.line([(x, y - 4), (x, y + 4)], fill=(255, 255, 255))
    for step in range(1, 8):
        draw.point((50 + 35 * step / 8, 70 + 10 * step / 8), fill=(255, 255, 255))
    report = detect_markers(_jpeg(image))
    assert report.has_calipers and not report.has_colour_overlay
    assert report.evidence["crosses"] >= 1
    # The crosses' arms do not count as text.
    assert not report.has_text


def test_coloured_overlays_are_flagged_and_a_tinted_display_is_not():
    image = _clean_image(3)
    ImageDraw.Draw(image).line([(40, 60), (90, 60)], fill=(255, 255, 0), width=2)
    assert detect_markers(_jpeg(image)).has_colour_overlay
    # A sepia colour map tints every pixel: colour then says nothing.
    grey = np.asarray(_clean_image(3).convert("L"), dtype=np.float32)
    sepia = np.stack([grey, grey * 0.8, grey * 0.55], axis=-1).astype(np.uint8)
    report = detect_markers(sepia)
    assert report.evidence["tinted"] and not report.has_colour_overlay and not report.has_markers


def test_the_same_answer_from_bytes_a_path_an_image_and_an_array(tmp_path, marked_scans):
    jpeg = marked_scans[0].jpeg
    path = tmp_path / "scan.jpg"
    path.write_bytes(jpeg)
    image = Image.open(io.BytesIO(jpeg))
    expected = detect_markers(jpeg)
    assert isinstance(expected, MarkerReport)
    for source in (path, str(path), image, np.asarray(image)):
        assert detect_markers(source) == expected
    assert expected.to_dict()["flags"] == expected.flags


def test_a_large_photo_is_reduced_first_and_still_read():
    # A 1280 px scan with text drawn at 4x (a phone photo of the screen): strokes 4 px wide.
    image = _clean_image(4).resize((1280, 1280), Image.Resampling.BICUBIC)
    small = Image.new("RGB", (90, 12))
    ImageDraw.Draw(small).text(
        (1, 0), "17/05/2026", fill=(255, 255, 255), font=ImageFont.load_default_imagefont()
    )
    image.paste(small.resize((360, 48), Image.Resampling.NEAREST), (20, 20))
    assert detect_markers(_jpeg(image)).has_text
    assert not detect_markers(
        _jpeg(_clean_image(4).resize((1280, 1280), Image.Resampling.BICUBIC))
    ).has_markers


def test_undecodable_bytes_raise_the_preprocessing_error():
    with pytest.raises(PreprocessingError):
        detect_markers(b"not an image")
