"""Everything that decodes or normalises an uploaded scan lives here, and nowhere else.

An upload is hostile until proven otherwise: the byte size is checked before anything is
decoded, only the decoders of the allowed formats (``SCAN_ALLOWED_FORMATS``) ever see the bytes,
the pixel count is checked from the header before the pixels are decompressed (Pillow's
decompression-bomb guard is set to ``SCAN_MAX_PIXELS`` and its warning is an error), ``verify()``
runs before the real decode, and every failure becomes an :class:`ImageError` whose message a
parent understands.

The result is one RGB JPEG in sRGB with no metadata at all (no EXIF, so no GPS position, no ICC
profile, no comment), oriented as the phone showed it and cropped to the parent's box. The
original bytes are kept untouched by the caller, privately, for curation.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import math
import struct
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from PIL import Image, ImageCms, UnidentifiedImageError

from babies.image_errors import (  # noqa: F401 - part of this module's interface
    DamagedImage,
    EmptyFile,
    FileTooLarge,
    ImageError,
    ImageTooSmall,
    InvalidCropBox,
    NotAnImage,
    TooManyPixels,
    UnsupportedFormat,
)
from ml.preprocessing import encode_model_input, model_input_image, model_input_shrink

logger = logging.getLogger(__name__)

JPEG_QUALITY = 90
# Thumbnails fit in this square; the dashboard shows them at 96 CSS pixels (sharp at 3x).
THUMBNAIL_SIZE = (320, 320)
# A crop smaller than this is a slip of the finger, not a scan; an image smaller than this is
# an icon or a tracking pixel, not a scan.
MIN_CROP_SIDE = 16
MIN_SCAN_SIDE = MIN_CROP_SIDE
# Memory per upload is bounded by these two, whatever the file (a 200 KB PNG can hold 50 MP).
# At most this many bytes of decoded pixels (Pillow keeps RGB, RGBA and LA in 4 bytes a pixel):
# a 25 MP colour photo (a recent iPhone's default HEIC is 5712x4284, 24.5 MP) or a 50 MP greyscale
# image. JPEGs above it are decoded at 1/2, 1/4 or 1/8 scale by the decoder itself (``draft``);
# other formats are refused from their header.
MAX_DECODED_BYTES = 25_000_000 * 4
# The stored JPEG has at most this many pixels (a 12 MP phone photo is kept as it is); a larger
# crop is scaled down while it is cut out, strip by strip (_cut_out), so the full decoded image and
# a full-size copy are never in memory together. The original is kept untouched anyway.
MAX_STORED_PIXELS = 12_500_000
# cropper.js rounds its box; allow it to overshoot the edge by this much before refusing.
CROP_TOLERANCE = 1

# Pillow format name -> (file extension for the stored original, name a parent recognises).
FORMATS = {
    "JPEG": (".jpg", "JPEG"),
    "MPO": (".jpg", "JPEG"),
    "PNG": (".png", "PNG"),
    "WEBP": (".webp", "WebP"),
    "HEIF": (".heic", "HEIC"),
    "BMP": (".bmp", "BMP"),
    "TIFF": (".tif", "TIFF"),
}

# Only used to tell a parent *which* unaccepted format they sent; these bytes are never decoded.
_SIGNATURES = [
    (0, b"\xff\xd8\xff", "JPEG"),
    (0, b"\x89PNG\r\n\x1a\n", "PNG"),
    (0, b"GIF87a", "GIF"),
    (0, b"GIF89a", "GIF"),
    (0, b"BM", "BMP"),
    (0, b"II*\x00", "TIFF"),
    (0, b"MM\x00*", "TIFF"),
    (0, b"8BPS", "Photoshop (PSD)"),
    (0, b"\x00\x00\x01\x00", "Icon (ICO)"),
    (0, b"%PDF", "PDF"),
    (0, b"\x00\x00\x00\x0cjP  ", "JPEG 2000"),
    (0, b"\xff\x4f\xff\x51", "JPEG 2000"),
    (0, b"qoif", "QOI"),
    (4, b"ftypavif", "AVIF"),
    (4, b"ftypavis", "AVIF"),
    (4, b"ftypheic", "HEIF"),
    (4, b"ftypheix", "HEIF"),
    (4, b"ftypmif1", "HEIF"),
    (4, b"ftypmsf1", "HEIF"),
    (4, b"ftyphevc", "HEIF"),
]

_TRANSPOSE_FOR_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_EXIF_ORIENTATION = 0x0112
# What Pillow's decoders raise for broken or truncated files (UnidentifiedImageError is an OSError).
_EXPECTED_DECODER_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError)


# --- Configuration -------------------------------------------------------------------------
_heif_registered = False


def configure_pillow() -> None:
    """Set Pillow's process-wide guards once (called from ``BabiesConfig.ready``).

    Pillow only *warns* between ``MAX_IMAGE_PIXELS`` and twice that; the warning becomes an error
    here so that no code path decodes a bomb because a warning was ignored. ``normalise`` also
    checks ``SCAN_MAX_PIXELS`` itself, so a test or a deploy that changes the setting is honoured.
    """
    global _heif_registered
    Image.init()
    Image.MAX_IMAGE_PIXELS = settings.SCAN_MAX_PIXELS
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    if not _heif_registered:
        import pillow_heif

        pillow_heif.register_heif_opener()
        _heif_registered = True


def allowed_formats() -> list[str]:
    return [name.strip().upper() for name in settings.SCAN_ALLOWED_FORMATS if name.strip()]


def _decoders(formats: list[str]) -> list[str]:
    """Pillow decoder names for ``formats``: MPO (phones' multi-picture JPEG) is read by JPEG's."""
    Image.init()
    decoders = []
    for name in formats:
        decoder = "JPEG" if name == "MPO" else name
        if decoder in Image.OPEN and decoder not in decoders:
            decoders.append(decoder)
    return decoders


def allowed_formats_sentence() -> str:
    """'JPEG, PNG, WebP, HEIC, BMP or TIFF' from the settings, for messages and the upload form."""
    names: list[str] = []
    for name in allowed_formats():
        label = FORMATS.get(name, (None, name))[1]
        if label not in names:
            names.append(label)
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " or " + names[-1]


def accept_attribute() -> str:
    """The ``accept`` attribute of the file input, so phones offer the right files."""
    extensions = {
        "JPEG": ".jpg,.jpeg",
        "MPO": ".jpg,.jpeg",
        "PNG": ".png",
        "WEBP": ".webp",
        "HEIF": ".heic,.heif",
        "BMP": ".bmp",
        "TIFF": ".tif,.tiff",
    }
    parts = ["image/*"]
    for name in allowed_formats():
        for extension in extensions.get(name, "").split(","):
            if extension and extension not in parts:
                parts.append(extension)
    return ",".join(parts)


# --- Crop boxes ----------------------------------------------------------------------------
@dataclass(frozen=True)
class CropBox:
    """A crop in pixels of the *oriented* original (as the parent saw it on screen)."""

    x: int
    y: int
    width: int
    height: int

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


_UNREADABLE_CROP_BOX = "The selected area could not be read. Please select the area again."


def parse_crop_box(raw: Any) -> dict[str, float] | None:
    """Turn the browser's crop box (a JSON string or a dict) into a dict of finite numbers.

    Bounds against the image are checked later, once its size is known (``clamp_crop_box``).
    """
    if raw in (None, ""):
        return None
    if isinstance(raw, str | bytes):
        try:
            raw = json.loads(raw)
        except ValueError:
            raise InvalidCropBox(_UNREADABLE_CROP_BOX) from None
    if not isinstance(raw, dict):
        raise InvalidCropBox(_UNREADABLE_CROP_BOX)
    box: dict[str, float] = {}
    for key in ("x", "y", "width", "height"):
        value = raw.get(key)
        # bool is an int in Python; a box of True/False is nonsense.
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise InvalidCropBox("The selected area is not valid. Please select the area again.")
        box[key] = float(value)
    return box


def clamp_crop_box(box: dict[str, float] | None, size: tuple[int, int]) -> CropBox | None:
    """Check the box against the oriented image size and round it to whole pixels."""
    if box is None:
        return None
    width, height = size
    x, y = round(box["x"]), round(box["y"])
    box_width, box_height = round(box["width"]), round(box["height"])
    if x < 0 or y < 0 or box_width <= 0 or box_height <= 0:
        raise InvalidCropBox()
    if x + box_width > width + CROP_TOLERANCE or y + box_height > height + CROP_TOLERANCE:
        raise InvalidCropBox()
    box_width, box_height = min(box_width, width - x), min(box_height, height - y)
    if box_width < MIN_CROP_SIDE or box_height < MIN_CROP_SIDE:
        raise InvalidCropBox(
            "The selected area is too small to be a scan. Please select a larger part of the picture."
        )
    return CropBox(x, y, box_width, box_height)


def box_in_stored_pixels(box: CropBox, stored_size: tuple[int, int], orientation: int) -> tuple[int, ...]:
    """Map a box on the oriented image to the same pixels of the image as it is stored.

    Cropping before transposing moves far fewer pixels than transposing the whole photo first
    (a phone photo is usually stored sideways with orientation 6); the result is identical.
    """
    stored_width, stored_height = stored_size
    x0, y0, x1, y1 = box.x, box.y, box.x + box.width, box.y + box.height
    if orientation == 2:
        return (stored_width - x1, y0, stored_width - x0, y1)
    if orientation == 3:
        return (stored_width - x1, stored_height - y1, stored_width - x0, stored_height - y0)
    if orientation == 4:
        return (x0, stored_height - y1, x1, stored_height - y0)
    if orientation == 5:
        return (y0, x0, y1, x1)
    if orientation == 6:
        return (y0, stored_height - x1, y1, stored_height - x0)
    if orientation == 7:
        return (stored_width - y1, stored_height - x1, stored_width - y0, stored_height - x0)
    if orientation == 8:
        return (stored_width - y1, x0, stored_width - y0, x1)
    return (x0, y0, x1, y1)


# --- Decoding and normalising --------------------------------------------------------------
@dataclass
class NormalisedScan:
    """What ``normalise`` produces; the caller stores the bytes and the numbers."""

    original_format: str
    original_extension: str
    jpeg: bytes
    thumbnail: bytes
    model_input: bytes
    width: int
    height: int
    crop_box: CropBox | None
    perceptual_hash: str
    # What ``normalise``'s ``check_thumbnail`` said of the thumbnail (None without one).
    thumbnail_check: Any = None


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_size(size: int) -> None:
    """Refuse an empty or oversized upload before reading a single pixel."""
    if size <= 0:
        raise EmptyFile()
    limit = settings.SCAN_MAX_UPLOAD_BYTES
    if size > limit:
        raise FileTooLarge(
            f"This file is {filesizeformat(size)}, more than the {filesizeformat(limit)} we accept. "
            "Please upload a smaller image, for example a screenshot of the scan."
        )


def read_upload(uploaded_file) -> bytes:
    """Read an uploaded file once (size checked first), so hashing and decoding share the bytes."""
    check_size(uploaded_file.size)
    uploaded_file.seek(0)
    data = uploaded_file.read()
    check_size(len(data))
    return data


def _sniff_format(data: bytes) -> str | None:
    for offset, signature, name in _SIGNATURES:
        if data[offset : offset + len(signature)] == signature:
            return name
    return None


def _max_pixels() -> int:
    # Normally equal (configure_pillow); the smaller one wins if a test or deploy changed one.
    return min(settings.SCAN_MAX_PIXELS, Image.MAX_IMAGE_PIXELS or settings.SCAN_MAX_PIXELS)


def _too_many_pixels(pixels: int | None = None) -> TooManyPixels:
    limit = _max_pixels() / 1_000_000
    if pixels is None:
        return TooManyPixels(
            f"This image has far too many pixels. Please upload an image of at most {limit:g} megapixels."
        )
    return TooManyPixels(
        f"This image has {pixels / 1_000_000:.3g} megapixels, more than the {limit:g} we accept. "
        "Please upload a smaller image, for example a screenshot of the scan."
    )


def _open(data: bytes, formats: list[str]) -> Image.Image:
    """Read the header only, through the allowed decoders, and check the pixel count."""
    try:
        image = Image.open(io.BytesIO(data), formats=_decoders(formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels() from None
    except UnidentifiedImageError:
        sniffed = _sniff_format(data)
        accepted = allowed_formats_sentence()
        if sniffed is not None and sniffed not in allowed_formats():
            raise UnsupportedFormat(
                f"{sniffed} files are not accepted. Please upload a {accepted} image."
            ) from None
        if sniffed is not None:
            # The signature of an accepted format, but its decoder refused the header.
            raise DamagedImage() from None
        raise NotAnImage(
            f"This file is not a picture we can read. Please upload the scan as a {accepted} image."
        ) from None
    except _EXPECTED_DECODER_ERRORS as error:
        logger.info("Could not read the header of an uploaded image: %r", error)
        raise DamagedImage() from None
    except Exception:
        # Decoders meet hostile bytes here; whatever they raise is the file's fault, not ours.
        logger.warning("Unexpected error reading the header of an uploaded image", exc_info=True)
        raise DamagedImage() from None
    if image.width * image.height > _max_pixels():
        raise _too_many_pixels(image.width * image.height)
    return image


def _decoded_bytes(mode: str, size: tuple[int, int]) -> int:
    """What Pillow allocates for ``size`` pixels of ``mode`` (RGB is padded to 4 bytes a pixel)."""
    if mode in ("1", "L", "P"):
        per_pixel = 1
    elif mode.startswith("I;16"):
        per_pixel = 2
    else:
        per_pixel = 4
    return size[0] * size[1] * per_pixel


def _too_big_to_decode(image: Image.Image) -> TooManyPixels:
    label = FORMATS.get(image.format, (None, image.format))[1]
    limit = MAX_DECODED_BYTES // 4 / 1_000_000
    return TooManyPixels(
        f"This {label} image has {image.width * image.height / 1_000_000:.3g} megapixels, too many for us to "
        f"open: we take {label} images of up to {limit:g} megapixels in colour, and JPEG photos of up "
        f"to {_max_pixels() / 1_000_000:g}. Please upload a smaller image or a JPEG, for example a "
        "screenshot of the scan."
    )


def _draft_for_memory(image: Image.Image) -> None:
    """Let the JPEG decoder scale by 1/2, 1/4 or 1/8 so the decoded pixels fit the memory bound."""
    width, height = image.size
    for scale in (2, 4, 8):
        size = (math.ceil(width / scale), math.ceil(height / scale))
        if _decoded_bytes(image.mode, size) <= MAX_DECODED_BYTES:
            image.draft(image.mode, size)
            return


def decode(data: bytes) -> Image.Image:
    """``verify()`` the file, then reopen it and decode every pixel once, within the memory bound.

    A JPEG whose pixels would take more than ``MAX_DECODED_BYTES`` is decoded at a smaller scale
    (the returned image is then smaller than the file's header says); any other format that large
    is refused before a pixel is decompressed.
    """
    image = _open(data, allowed_formats())
    image_format = image.format
    if image.width < MIN_SCAN_SIDE or image.height < MIN_SCAN_SIDE:
        raise ImageTooSmall(
            f"This image is only {image.width}x{image.height} pixels, too small to be a scan. "
            "Please upload the photo or screenshot of the scan itself."
        )
    if _decoded_bytes(image.mode, image.size) > MAX_DECODED_BYTES and image_format not in ("JPEG", "MPO"):
        raise _too_big_to_decode(image)
    try:
        image.verify()
    except _EXPECTED_DECODER_ERRORS as error:
        logger.info("An uploaded image failed verify(): %r", error)
        raise DamagedImage() from None
    except Exception:
        logger.warning("Unexpected error verifying an uploaded image", exc_info=True)
        raise DamagedImage() from None
    # verify() leaves the image unusable; reopen with the one decoder that recognised it.
    image = _open(data, [image_format])
    try:
        if _decoded_bytes(image.mode, image.size) > MAX_DECODED_BYTES:
            _draft_for_memory(image)
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _too_many_pixels() from None
    except _EXPECTED_DECODER_ERRORS as error:
        logger.info("An uploaded image could not be decoded: %r", error)
        raise DamagedImage() from None
    except Exception:
        logger.warning("Unexpected error decoding an uploaded image", exc_info=True)
        raise DamagedImage() from None
    return image


def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _embedded_profile(image: Image.Image) -> ImageCms.ImageCmsProfile | None:
    """The image's ICC profile when it is one that needs converting (not sRGB already)."""
    icc = image.info.get("icc_profile")
    if not icc:
        return None
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        description = ImageCms.getProfileDescription(profile) or ""
    except (ImageCms.PyCMSError, OSError, TypeError, ValueError):
        return None  # a broken profile is ignored rather than trusted
    if "srgb" in description.lower():
        return None
    return profile


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any mode to 8-bit RGB in sRGB, the colour space the model is trained on.

    Transparent areas become black, like the background of an ultrasound; high-bit-depth
    greyscale is scaled down rather than clipped, so a 16-bit scan does not turn white.
    """
    profile = _embedded_profile(image)
    mode = image.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        image = image.convert("I").point(lambda value: value * (1 / 257), "L")
    elif mode in ("I", "F"):
        # No fixed range: stretch what is there to 0-255.
        array = np.asarray(image, dtype=np.float32)
        low, high = float(array.min()), float(array.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        image = Image.fromarray(((array - low) * scale).astype(np.uint8), "L")
    elif mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode == "PA":
        image = image.convert("RGBA")
    mode = image.mode
    if mode == "RGBA":
        # Pasted with itself as the mask: no converted copy and no separate alpha band in memory.
        background = Image.new("RGB", image.size, (0, 0, 0))
        background.paste(image, (0, 0), image)
        image = background
    elif mode in ("LA", "RGBa", "La"):
        background = Image.new("RGB", image.size, (0, 0, 0))
        background.paste(image.convert("RGBA"), mask=image.getchannel("A"))
        image = background
    if profile is not None and image.mode in ("RGB", "CMYK", "L"):
        try:
            return ImageCms.profileToProfile(image, profile, _srgb_profile(), outputMode="RGB")
        except (ImageCms.PyCMSError, OSError, ValueError):
            logger.info("Ignoring an ICC profile that could not be applied", exc_info=True)
    if image.mode != "RGB":
        try:
            image = image.convert("RGB")
        except ValueError:
            raise DamagedImage(
                "We cannot read the colours of this image. Please upload a JPEG or PNG copy."
            ) from None
    return image


def _encode_jpeg(image: Image.Image) -> bytes:
    # Nothing from the original rides along: no EXIF (GPS), no ICC, no XMP, no comment.
    image.info = {}
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


# dHash's grid: 8 rows of 9 pixels give 8x8 left-right comparisons, 64 bits.
DHASH_SIZE = 8


def perceptual_hash(image: Image.Image) -> str:
    """dHash as 16 hex digits; curation groups near-duplicate scans by it.

    The difference hash: shrink to 9x8 grey pixels, and set one bit per pair of neighbours in a
    row when the right one is brighter; the bits read row by row, the first the most
    significant. These are the bits ``imagehash.dhash`` gives (stored hashes stay comparable)
    without its SciPy and PyWavelets in the web image.

    Computed on the normalised pixels, downscaled first: dHash shrinks the image to 9x8 anyway,
    and doing that from a 320 px thumbnail instead of 12 megapixels gives the same bits
    (give or take one or two) in a fraction of the time.
    """
    width = DHASH_SIZE + 1
    grey = image.convert("L").resize((width, DHASH_SIZE), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.int16)
    bits = (pixels[:, 1:] > pixels[:, :-1]).flatten()
    value = int("".join("1" if bit else "0" for bit in bits), 2)
    return f"{value:0{DHASH_SIZE * DHASH_SIZE // 4}x}"


# Rows of the output made per step when a crop is scaled down or turned (see _cut_out).
_STRIP_ROWS = 256
# A crop this large is turned upright in two threads (_crop_and_transpose); a smaller one is not
# worth a thread.
_TWO_THREADS_FROM_PIXELS = 2_000_000
# Where the turned strip of rows ``top``..``bottom`` (of ``height``) lands in the turned crop.
_STRIP_PLACE = {
    Image.Transpose.FLIP_LEFT_RIGHT: lambda top, bottom, height: (0, top),
    Image.Transpose.ROTATE_180: lambda top, bottom, height: (0, height - bottom),
    Image.Transpose.FLIP_TOP_BOTTOM: lambda top, bottom, height: (0, height - bottom),
    Image.Transpose.TRANSPOSE: lambda top, bottom, height: (top, 0),
    Image.Transpose.ROTATE_90: lambda top, bottom, height: (top, 0),
    Image.Transpose.ROTATE_270: lambda top, bottom, height: (height - bottom, 0),
    Image.Transpose.TRANSVERSE: lambda top, bottom, height: (height - bottom, 0),
}
_SWAPS_SIDES = {
    Image.Transpose.TRANSPOSE,
    Image.Transpose.ROTATE_90,
    Image.Transpose.ROTATE_270,
    Image.Transpose.TRANSVERSE,
}


def _cut_out(
    image: Image.Image, box: tuple[int, int, int, int], transpose: Image.Transpose | None = None
) -> Image.Image:
    """The ``box`` of ``image`` (decoded pixels), scaled down to at most ``MAX_STORED_PIXELS``,
    then turned by ``transpose`` (the photo's EXIF orientation), if any.

    Scaling works strip by strip: ``reduce`` of an RGBA or LA image first converts *all* of it to
    premultiplied alpha (a second full-size copy, 96 MB for a 24 MP PNG), so each strip is cut
    out and reduced on its own; averaging whole blocks, the result is the same. Modes whose values
    are not intensities (palette, bilevel) or that ``reduce`` does not take (16-bit) are sampled
    by nearest neighbour, which allocates only the output.
    """
    width, height = box[2] - box[0], box[3] - box[1]
    factor = max(1, math.ceil(math.sqrt(width * height / MAX_STORED_PIXELS)))
    if factor == 1:
        if (
            transpose is not None
            and image.mode in ("RGB", "L")
            and width * height >= _TWO_THREADS_FROM_PIXELS
        ):
            return _crop_and_transpose(image, box, transpose)
        result = image if box == (0, 0, image.width, image.height) else image.crop(box)
        return result.transpose(transpose) if transpose is not None else result
    size = (math.ceil(width / factor), math.ceil(height / factor))
    if image.mode in ("1", "P", "PA") or image.mode.startswith("I;16"):
        result = image.resize(size, Image.Resampling.NEAREST, box=box)
    else:
        result = Image.new(image.mode, size)
        step = _STRIP_ROWS * factor
        for top in range(box[1], box[3], step):
            strip = image.crop((box[0], top, box[2], min(top + step, box[3])))
            result.paste(strip.reduce(factor), (0, (top - box[1]) // factor))
        result.info = dict(image.info)  # the ICC profile, for the conversion to sRGB
    return result.transpose(transpose) if transpose is not None else result


def _crop_and_transpose(
    image: Image.Image, box: tuple[int, int, int, int], transpose: Image.Transpose
) -> Image.Image:
    """``image.crop(box).transpose(transpose)``, made strip by strip in two threads.

    Turning a photo upright moves every pixel across memory (20 ms for a 12 MP crop, the
    largest step after decoding and encoding): here strips of rows are cut out and turned, this
    thread taking every other one while a second thread takes the rest (Pillow lets go of the
    GIL meanwhile), and each is pasted where it belongs. Only a strip at a time per thread is
    held besides the result, not a second full-size copy.
    """
    width, height = box[2] - box[0], box[3] - box[1]
    result = Image.new(image.mode, (height, width) if transpose in _SWAPS_SIDES else (width, height))
    place = _STRIP_PLACE[transpose]

    def turn(top: int) -> None:
        bottom = min(top + _STRIP_ROWS, height)
        strip = image.crop((box[0], box[1] + top, box[2], box[1] + bottom)).transpose(transpose)
        result.paste(strip, place(top, bottom, height))

    tops = range(0, height, _STRIP_ROWS)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan-turn") as helper:
        theirs = [helper.submit(turn, top) for top in tops[1::2]]
        for top in tops[::2]:
            turn(top)
        for done in theirs:
            done.result()
    result.info = dict(image.info)  # the ICC profile, for the conversion to sRGB
    return result


def normalise(
    data: bytes,
    *,
    crop_box: dict[str, float] | None = None,
    check_thumbnail: Callable[[bytes], Any] | None = None,
) -> NormalisedScan:
    """Decode ``data``, orient it, crop it to ``crop_box`` and re-encode it as a clean JPEG.

    Also the thumbnail and the model-ready derivative (``ml.preprocessing.model_input_image``,
    a small greyscale PGM), so neither the dashboard nor a prediction ever decodes the full JPEG.
    ``check_thumbnail`` (the marker check) is called with the thumbnail's JPEG while the full
    JPEG is still being encoded; what it returns is ``thumbnail_check``.
    Peak memory stays bounded whatever the file (``MAX_DECODED_BYTES``, ``MAX_STORED_PIXELS``):
    each step drops the previous step's pixels before the next one allocates more.
    """
    check_size(len(data))
    image = decode(data)
    image_format = image.format
    stored_size = _header_size(data, image)
    try:
        orientation = int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except Exception:
        # Unreadable EXIF is common from cheap software: show the pixels as stored.
        orientation = 1
    transpose = _TRANSPOSE_FOR_ORIENTATION.get(orientation)
    if transpose is None:
        orientation = 1
    oriented_size = stored_size if orientation <= 4 else (stored_size[1], stored_size[0])
    box = clamp_crop_box(crop_box, oriented_size)

    stored_box = (0, 0, *stored_size)
    if box is not None and (box.width, box.height) != oriented_size:
        stored_box = box_in_stored_pixels(box, stored_size, orientation)
    # A JPEG decoded at a smaller scale (decode): the same box in the decoded pixels.
    scale_x, scale_y = image.width / stored_size[0], image.height / stored_size[1]
    decoded_box = (
        math.floor(stored_box[0] * scale_x),
        math.floor(stored_box[1] * scale_y),
        min(image.width, math.ceil(stored_box[2] * scale_x)),
        min(image.height, math.ceil(stored_box[3] * scale_y)),
    )
    result = _cut_out(image, decoded_box, transpose)
    del image  # the decoded file's pixels are not needed any more
    result = to_rgb(result)

    result.info = {}  # before two threads read it (_encode_jpeg would clear it)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="scan-jpeg") as encoder:
        # The stored JPEG is encoded in a second thread while this one makes the small copies:
        # Pillow lets go of the GIL while it encodes and shrinks, and neither writes to
        # ``result``. The same work, done sooner when a core is free.
        stored_jpeg = encoder.submit(_encode_jpeg, result)
        # The derivative's first step, whole blocks averaged, is the thumbnail's too: both then
        # work on a few hundred thousand pixels rather than on every pixel of the crop.
        shrunk = model_input_shrink(result)
        thumbnail = shrunk.resize(_thumbnail_size(result.size), Image.Resampling.BILINEAR, reducing_gap=2.0)
        model_input = encode_model_input(model_input_image(shrunk))
        thumbnail_jpeg = _encode_jpeg(thumbnail)
        thumbnail_check = check_thumbnail(thumbnail_jpeg) if check_thumbnail else None
        jpeg = stored_jpeg.result()
    extension = FORMATS.get(image_format, (".img", image_format))[0]
    return NormalisedScan(
        original_format=image_format,
        original_extension=extension,
        jpeg=jpeg,
        thumbnail=thumbnail_jpeg,
        model_input=model_input,
        width=result.width,
        height=result.height,
        crop_box=box,
        perceptual_hash=perceptual_hash(thumbnail),
        thumbnail_check=thumbnail_check,
    )


def _header_size(data: bytes, image: Image.Image) -> tuple[int, int]:
    """The size the file's header gives (``image`` may have been decoded at a smaller scale)."""
    if image.format not in ("JPEG", "MPO"):
        return image.size
    with Image.open(io.BytesIO(data), formats=_decoders([image.format])) as header:
        return header.size


def _thumbnail_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = size
    scale = min(THUMBNAIL_SIZE[0] / width, THUMBNAIL_SIZE[1] / height, 1.0)
    return max(1, round(width * scale)), max(1, round(height * scale))
