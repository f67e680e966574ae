"""The model-ready derivative stored with every scan, the memory bounds of decoding, tiny images."""

import io

import numpy as np
import pytest
from django.core.files.storage import storages
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image

from babies import images
from babies.models import Scan
from babies.services import scan_create, scan_model_input_create
from babies.tests.factories import BabyFactory, image_bytes, stored_files, upload
from ml.preprocessing import MODEL_INPUT_SIDE, InputSpec, model_input_bytes, preprocess_image

pytestmark = pytest.mark.django_db


def ultrasound_jpeg(size=(1600, 1200), orientation: int = 1) -> bytes:
    """Speckle in a bright blob: enough texture that resampling differences would show."""
    rng = np.random.default_rng(3)
    width, height = size
    y, x = np.mgrid[0:height, 0:width]
    blob = 120 * np.exp(-(((x - width / 2) / (width / 5)) ** 2 + ((y - height / 2) / (height / 4)) ** 2))
    grey = np.clip(rng.gamma(2.0, 25.0, size=(height, width)) * 0.6 + blob, 0, 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(np.stack([grey] * 3, axis=-1)).save(buffer, "JPEG", quality=92, exif=exif.tobytes())
    return buffer.getvalue()


def png(mode: str, size: tuple[int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, "PNG")
    return buffer.getvalue()


# --- The derivative ------------------------------------------------------------------------
def test_upload_stores_a_small_greyscale_derivative_of_the_oriented_crop():
    baby = BabyFactory()
    box = {"x": 100, "y": 200, "width": 1000, "height": 1300}
    scan, _ = scan_create(baby=baby, uploaded_file=upload(ultrasound_jpeg(orientation=6)), crop_box=box)

    with storages["scans"].open(scan.model_input.name) as handle:
        derivative = Image.open(handle)
        derivative.load()
    assert derivative.format == "PPM" and derivative.mode == "L"
    assert max(derivative.size) == MODEL_INPUT_SIDE
    # Same shape as the stored (oriented, cropped) JPEG: 1000 x 1300 -> 172 x 224.
    assert (scan.width, scan.height) == (1000, 1300)
    assert derivative.size == (round(1000 * MODEL_INPUT_SIDE / 1300), MODEL_INPUT_SIDE)


def test_the_derivative_gives_the_tensor_training_gets_from_the_jpeg():
    """Training reads JPEGs, inference the derivative: the model must see (nearly) the same input."""
    baby = BabyFactory()
    scan, _ = scan_create(baby=baby, uploaded_file=upload(ultrasound_jpeg()))
    spec = InputSpec(image_size=112)
    stored_jpeg = storages["scans"].open(scan.image.name).read()
    stored_derivative = storages["scans"].open(scan.model_input.name).read()

    from_jpeg = preprocess_image(stored_jpeg, spec)
    from_derivative = preprocess_image(stored_derivative, spec)
    # Made from the JPEG itself (the backfill), it is exact: the function shrinks to it first.
    assert np.array_equal(preprocess_image(model_input_bytes(stored_jpeg), spec), from_jpeg)
    # Made at upload from the pixels before JPEG compression: only that compression differs.
    assert np.abs(from_derivative - from_jpeg).mean() < 1.0 / 255
    assert np.abs(from_derivative - from_jpeg).max() < 6.0 / 255


def test_a_model_larger_than_the_derivative_or_of_version_one_skips_it():
    data = ultrasound_jpeg(size=(1200, 900))
    large = InputSpec(image_size=MODEL_INPUT_SIDE + 64)
    version_one = InputSpec(image_size=112, preprocessing_version=1)
    direct = np.asarray(
        Image.open(io.BytesIO(data)).convert("L").resize((112, 84), Image.Resampling.BILINEAR)
    )

    assert preprocess_image(data, large).shape == (MODEL_INPUT_SIDE + 64, MODEL_INPUT_SIDE + 64, 1)
    letterboxed = preprocess_image(data, version_one)[14:98, :, 0] * 255
    assert np.abs(letterboxed - direct).max() < 1.0  # one resize from the full image, as before


# --- Backfill ------------------------------------------------------------------------------
def forget_model_input(scan: Scan) -> None:
    storages["scans"].delete(scan.model_input.name)
    Scan.objects.filter(pk=scan.pk).update(model_input="")


def test_backfill_writes_missing_derivatives_once(capsys):
    baby = BabyFactory()
    old, _ = scan_create(baby=baby, uploaded_file=upload(image_bytes("PNG", (600, 500))))
    new, _ = scan_create(baby=baby, uploaded_file=upload(image_bytes("PNG", (300, 200))))
    forget_model_input(old)

    call_command("backfill_model_inputs", "--dry-run")
    assert "1 scan(s) have no model input" in capsys.readouterr().out
    assert Scan.objects.get(pk=old.pk).model_input.name == ""

    call_command("backfill_model_inputs")
    assert "1 model input(s) written, 0 already done, 0 failed." in capsys.readouterr().out
    old.refresh_from_db()
    assert storages["scans"].exists(old.model_input.name)
    assert old.model_input.name.endswith("_model.pgm")

    call_command("backfill_model_inputs")
    assert "0 model input(s) written" in capsys.readouterr().out
    assert not scan_model_input_create(scan=new)


def test_backfill_reports_a_missing_jpeg_and_exits_non_zero(settings):
    baby = BabyFactory()
    broken, _ = scan_create(baby=baby, uploaded_file=upload(image_bytes("PNG", (300, 200))))
    good, _ = scan_create(baby=baby, uploaded_file=upload(image_bytes("PNG", (300, 210))))
    forget_model_input(broken)
    forget_model_input(good)
    storages["scans"].delete(broken.image.name)

    with pytest.raises(CommandError, match="1 scan"):
        call_command("backfill_model_inputs")
    good.refresh_from_db()
    assert storages["scans"].exists(good.model_input.name)
    assert not any(
        name.endswith("_model.pgm") and broken.image.name[:-4] in name
        for name in stored_files(settings.MEDIA_ROOT)
    )


def test_backfill_of_a_scan_deleted_meanwhile_leaves_no_file(settings):
    baby = BabyFactory()
    scan, _ = scan_create(baby=baby, uploaded_file=upload(image_bytes("PNG", (300, 200))))
    forget_model_input(scan)
    before = set(stored_files(settings.MEDIA_ROOT))
    Scan.objects.filter(pk=scan.pk).update(model_input="claimed-by-another-run.png")

    assert scan_model_input_create(scan=scan) is False
    assert set(stored_files(settings.MEDIA_ROOT)) == before


# --- Memory bounds and tiny images --------------------------------------------------------
def test_a_huge_non_jpeg_is_refused_from_its_header_with_a_sentence(monkeypatch):
    # 200 x 150 RGBA takes 120,000 bytes decoded; the same pixels in greyscale take a quarter.
    monkeypatch.setattr(images, "MAX_DECODED_BYTES", 100_000)
    with pytest.raises(images.TooManyPixels, match="PNG images of up to .* megapixels in colour"):
        images.normalise(png("RGBA", (200, 150)))
    assert images.normalise(png("L", (200, 150))).width == 200


def test_a_huge_jpeg_is_decoded_at_a_smaller_scale_and_cropped_in_place(monkeypatch):
    data = image_bytes("JPEG", (800, 600), quality=95)
    monkeypatch.setattr(images, "MAX_DECODED_BYTES", 800 * 600 * 4 // 3)  # needs 1/2 scale

    result = images.normalise(data, crop_box={"x": 0, "y": 0, "width": 400, "height": 600})

    # The left half of the picture is white (image_bytes): the crop is the white half, at half scale.
    assert (result.width, result.height) == (200, 300)
    assert result.crop_box == images.CropBox(0, 0, 400, 600)  # still in the file's own pixels
    stored = np.asarray(Image.open(io.BytesIO(result.jpeg)).convert("L"))
    assert stored[60:, :190].mean() > 245


def test_a_large_crop_is_stored_scaled_down(monkeypatch):
    monkeypatch.setattr(images, "MAX_STORED_PIXELS", 300 * 200)
    result = images.normalise(image_bytes("PNG", (600, 400)))
    assert (result.width, result.height) == (300, 200)
    palette = images.normalise(image_bytes("PNG", (600, 400), mode="P"))
    assert (palette.width, palette.height) == (300, 200)


@pytest.mark.parametrize("size", [(1, 1), (15, 400), (400, 15)])
def test_images_too_small_to_be_a_scan_are_refused(parent_client, baby, size):
    response = parent_client.post(
        reverse("babies:scan_upload", args=[baby.pk]),
        {"file": upload(png("RGB", size))},
        headers={"Accept": "application/json"},
    )
    assert response.status_code == 400
    assert f"only {size[0]}x{size[1]} pixels, too small to be a scan" in response.json()["error"]
    assert not Scan.objects.exists()


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L", "LA", "CMYK"])
def test_scaling_down_strip_by_strip_equals_one_reduce(monkeypatch, mode):
    """The strips (no second full-size copy for RGBA) must not change a pixel."""
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (130, 170, 4), dtype=np.uint8), "RGBA").convert(mode)
    monkeypatch.setattr(images, "MAX_STORED_PIXELS", 40 * 30)
    monkeypatch.setattr(images, "_STRIP_ROWS", 3)  # many strips, the last one partial
    box = (5, 3, 166, 127)

    result = images._cut_out(image, box)

    expected = image.reduce(5, box)  # ceil(sqrt(161 * 124 / 1200)) = 5
    assert result.size == expected.size == (33, 25)
    assert np.array_equal(np.asarray(result), np.asarray(expected))


def test_a_recent_iphone_heic_size_is_within_the_decoding_bound():
    """24 MP is the default of recent iPhones (5712x4284); refusing it would refuse their photos."""
    assert images._decoded_bytes("RGB", (5712, 4284)) <= images.MAX_DECODED_BYTES
    assert images._decoded_bytes("RGBA", (8144, 6090)) > images.MAX_DECODED_BYTES  # the 49.6 MP bomb
