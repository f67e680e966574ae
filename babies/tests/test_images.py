"""The image module: orientation, crop, colour modes, metadata and the pixel guards."""

import io

import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from babies import images
from babies.tests.factories import image_bytes, noisy_jpeg

ORIENTATIONS = range(1, 9)


def decoded(jpeg: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(jpeg))
    image.load()
    return image


def with_orientation(data_format: str, orientation: int, size=(120, 80)) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return image_bytes(data_format, size, exif=exif.tobytes())


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_crop_before_transpose_equals_transpose_then_crop(orientation):
    """The box mapping lets us crop the stored pixels first; the result must be identical."""
    rng = np.random.default_rng(orientation)
    stored = Image.fromarray(rng.integers(0, 256, size=(30, 50, 3), dtype=np.uint8))
    exif = stored.getexif()
    exif[0x0112] = orientation
    stored.info["exif"] = exif.tobytes()
    oriented = ImageOps.exif_transpose(stored)
    box = images.CropBox(x=3, y=7, width=11, height=13)

    expected = oriented.crop((box.x, box.y, box.x + box.width, box.y + box.height))
    mapped = stored.crop(images.box_in_stored_pixels(box, stored.size, orientation))
    transpose = images._TRANSPOSE_FOR_ORIENTATION.get(orientation)
    actual = mapped.transpose(transpose) if transpose is not None else mapped

    assert np.array_equal(np.asarray(actual), np.asarray(expected))


@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("orientation", range(2, 9))
def test_a_large_crop_turned_in_two_threads_equals_turning_it_whole(orientation, mode, monkeypatch):
    """``_crop_and_transpose`` pastes turned strips where they belong, in every orientation."""
    monkeypatch.setattr(images, "_STRIP_ROWS", 16)  # many strips, odd last one, on a small image
    monkeypatch.setattr(images, "_TWO_THREADS_FROM_PIXELS", 0)
    rng = np.random.default_rng(orientation)
    shape = (150, 130, 3) if mode == "RGB" else (150, 130)
    stored = Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode)
    box = (5, 9, 5 + 117, 9 + 133)
    transpose = images._TRANSPOSE_FOR_ORIENTATION[orientation]

    turned = images._cut_out(stored, box, transpose)

    expected = stored.crop(box).transpose(transpose)
    assert turned.size == expected.size
    assert np.array_equal(np.asarray(turned), np.asarray(expected))


@pytest.mark.parametrize("orientation", ORIENTATIONS)
def test_exif_orientation_is_applied(orientation):
    source = with_orientation("JPEG", orientation)
    result = images.normalise(source)
    expected_size = (120, 80) if orientation <= 4 else (80, 120)
    assert (result.width, result.height) == expected_size
    reference = ImageOps.exif_transpose(decoded(source))
    difference = np.abs(np.asarray(decoded(result.jpeg), dtype=int) - np.asarray(reference, dtype=int))
    assert difference.mean() < 3


def test_crop_box_is_in_oriented_pixels():
    # Stored 120x80 and shown upright as 80x120: a box 80 wide only fits the oriented image.
    result = images.normalise(
        with_orientation("JPEG", 6), crop_box={"x": 0, "y": 20, "width": 80, "height": 90}
    )
    assert (result.width, result.height) == (80, 90)
    with pytest.raises(images.InvalidCropBox):
        images.normalise(with_orientation("JPEG", 6), crop_box={"x": 0, "y": 0, "width": 120, "height": 80})


def test_metadata_is_stripped():
    exif = Image.Exif()
    exif[0x0112] = 1
    exif[0x010F] = "PhoneMaker"
    exif[0x8825] = {1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)}  # GPS
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    source = image_bytes("JPEG", exif=exif.tobytes(), icc_profile=srgb, comment=b"Our baby!")
    assert Image.open(io.BytesIO(source)).getexif().get_ifd(0x8825)

    result = decoded(images.normalise(source).jpeg)

    assert not result.getexif()
    assert "exif" not in result.info
    assert "icc_profile" not in result.info
    assert "comment" not in result.info
    assert "xmp" not in result.info


def test_thumbnail_is_small_and_clean():
    result = images.normalise(noisy_jpeg((1000, 500)))
    thumbnail = decoded(result.thumbnail)
    assert thumbnail.size == (320, 160)
    assert thumbnail.format == "JPEG" and "exif" not in thumbnail.info


def _one_pixel_mode(mode: str, value) -> bytes:
    image = Image.new(mode, (40, 30), value)
    buffer = io.BytesIO()
    image.save(buffer, "TIFF" if mode in ("CMYK", "I;16", "I", "F", "LA") else "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("mode", "value", "expected_rgb"),
    [
        ("L", 200, (200, 200, 200)),
        ("1", 1, (255, 255, 255)),
        ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
        ("I;16", 65535, (255, 255, 255)),
        ("I;16", 32896, (128, 128, 128)),
        ("I", 1234, (0, 0, 0)),
        ("F", 0.5, (0, 0, 0)),
        ("RGBA", (0, 0, 255, 255), (0, 0, 255)),
        ("RGBA", (0, 0, 255, 0), (0, 0, 0)),
        ("LA", (255, 255), (255, 255, 255)),
    ],
)
def test_every_mode_becomes_rgb(mode, value, expected_rgb):
    result = decoded(images.normalise(_one_pixel_mode(mode, value)).jpeg)
    assert result.mode == "RGB"
    assert all(abs(a - b) <= 3 for a, b in zip(result.getpixel((20, 15)), expected_rgb, strict=True))


def test_palette_with_transparency_becomes_rgb_on_black():
    image = Image.new("P", (40, 30), 1)
    image.putpalette([255, 255, 255, 0, 200, 0] + [0, 0, 0] * 254)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", transparency=1)
    result = decoded(images.normalise(buffer.getvalue()).jpeg)
    assert result.mode == "RGB"
    assert max(result.getpixel((20, 15))) <= 3


def test_16_bit_png_is_scaled_not_clipped():
    array = np.full((30, 40), 40000, dtype=np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    result = decoded(images.normalise(buffer.getvalue()).jpeg)
    assert abs(result.getpixel((20, 15))[0] - round(40000 / 257)) <= 3


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP", "BMP", "TIFF", "HEIF"])
def test_default_formats_are_accepted(image_format):
    result = images.normalise(image_bytes(image_format, (64, 48)))
    assert result.original_format == image_format
    assert decoded(result.jpeg).format == "JPEG"


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pillows_own_limit_is_honoured_too(monkeypatch, settings):
    """Pillow only warns between its limit and twice that; the app refuses from the limit on."""
    settings.SCAN_MAX_PIXELS = 10_000_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    with pytest.raises(images.TooManyPixels):
        images.normalise(image_bytes("PNG", (40, 40)))


def test_pillow_guard_is_set_from_the_setting(settings):
    assert Image.MAX_IMAGE_PIXELS == settings.SCAN_MAX_PIXELS


def test_errors_are_validation_errors_with_a_status():
    error = images.FileTooLarge("Too big.")
    assert error.messages == ["Too big."]
    assert error.status_code == 413
    assert images.DamagedImage().status_code == 400


def hamming(first: str, second: str) -> int:
    return bin(int(first, 16) ^ int(second, 16)).count("1")


def test_perceptual_hash_of_thumbnail_matches_full_image():
    """dHash from the thumbnail is what curation would get from the stored JPEG (near enough)."""
    result = images.normalise(noisy_jpeg((800, 600)))
    from_jpeg = images.perceptual_hash(decoded(result.jpeg))
    assert hamming(result.perceptual_hash, from_jpeg) <= 6


@pytest.mark.parametrize("seed", range(6))
def test_perceptual_hash_gives_imagehashs_dhash_bits(seed):
    """Hashes stored before the web image dropped ImageHash stay comparable with new ones."""
    import imagehash  # a development requirement only: the web image does without it

    rng = np.random.default_rng(seed)
    size = (160 + 37 * seed, 120 + 11 * seed)
    blobs = rng.integers(0, 256, size=(6, 8), dtype=np.uint8)  # large shapes, as in a scan
    picture = Image.fromarray(blobs, "L").resize(size, Image.Resampling.BICUBIC)
    assert images.perceptual_hash(picture) == str(imagehash.dhash(picture))


def test_perceptual_hash_tells_a_picture_from_its_mirror_image():
    picture = decoded(noisy_jpeg((300, 200)))
    mirrored = picture.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert hamming(images.perceptual_hash(picture), images.perceptual_hash(mirrored)) > 20


def test_accept_attribute_and_sentence_follow_the_setting(settings):
    settings.SCAN_ALLOWED_FORMATS = ["JPEG", "HEIF"]
    assert images.allowed_formats_sentence() == "JPEG or HEIC"
    assert images.accept_attribute() == "image/*,.jpg,.jpeg,.heic,.heif"
