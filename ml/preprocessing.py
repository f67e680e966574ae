"""The one function from a stored JPEG to the model's input tensor.

Training, evaluation and the web's inference all call :func:`preprocess_image`, with the
:class:`InputSpec` a model version records, so a model never sees pixels prepared differently
from the ones it was trained on.

Every scan also has a small model-ready derivative, stored at upload (``Scan.model_input``, made
by :func:`model_input_image`): inference reads that instead of decoding a 12 MP JPEG, and gets the
same tensor, because the function shrinks any image to that derivative before anything else.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Bump when the function below changes what it produces: a model records the version it was
# trained with, and inference refuses a spec it does not know. Version 2 shrinks every scan to
# the stored derivative first (model_input_image); version 1 letterboxed the full image directly,
# and models trained with it are still fed that way (from the full JPEG). Version 3 averages
# whole blocks of a large scan before turning it grey rather than after (model_input_shrink):
# the same derivative but for rounding (on the upload benchmark's photo a quarter of the pixels
# moved, by 0.3 grey levels on average and 5 at most), so a version-2 model is fed version 3's
# derivatives.
PREPROCESSING_VERSION = 3
SUPPORTED_PREPROCESSING_VERSIONS = (1, 2, 3)

COLOR_MODES = ("grayscale", "rgb")

# How pixel values in 0..255 are mapped to the network's input range. Each keras.applications
# backbone expects its own; the small CNN uses "unit".
NORMALIZATIONS = {
    "unit": "x / 255, in [0, 1]",
    "symmetric": "x / 127.5 - 1, in [-1, 1] (MobileNetV2, Xception)",
    "raw": "x unchanged, in [0, 255] (EfficientNet, MobileNetV3: they rescale inside the model)",
    "caffe": "x minus the ImageNet channel means, BGR order (VGG16)",
}
_CAFFE_MEANS_BGR = np.array([103.939, 116.779, 123.68], dtype=np.float32)

# The model-ready derivative stored with every scan (``Scan.model_input``): greyscale, its longer
# side at most this many pixels: twice the demo model's input (112 px) and the input of the usual
# ImageNet backbones, so any model up to this size is fed from it; a larger model reads the JPEG.
# Stored as binary PGM: lossless, and decoding it is a copy (about 0.05 ms at this size, against
# 1-2 ms for a PNG of noisy speckle and 100 ms for a 12 MP JPEG).
MODEL_INPUT_SIDE = 224

# Scans are re-encoded JPEGs and their PGM derivatives; PNG is accepted for tests and
# hand-made fixtures.
DECODABLE_FORMATS = ("JPEG", "PNG", "PPM")
# The web path caps pixels at upload; this guards training on a folder of unknown files.
MAX_DECODED_PIXELS = 50_000_000

ImageSource = bytes | bytearray | memoryview | str | os.PathLike | IO[bytes]


class PreprocessingError(ValueError):
    """A scan that cannot be turned into an input tensor (corrupt or not an image)."""


@dataclass(frozen=True)
class InputSpec:
    """What a model expects; stored as JSON on its ModelVersion."""

    image_size: int = 112
    color_mode: str = "grayscale"
    normalization: str = "unit"
    preprocessing_version: int = PREPROCESSING_VERSION

    def __post_init__(self):
        if self.color_mode not in COLOR_MODES:
            raise ValueError(f"color_mode must be one of {COLOR_MODES}, not {self.color_mode!r}.")
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {sorted(NORMALIZATIONS)}.")
        if not 16 <= int(self.image_size) <= 1024:
            raise ValueError("image_size must be between 16 and 1024 pixels.")
        if self.preprocessing_version not in SUPPORTED_PREPROCESSING_VERSIONS:
            raise ValueError(
                f"This code implements preprocessing versions {SUPPORTED_PREPROCESSING_VERSIONS}; the "
                f"model expects version {self.preprocessing_version}."
            )

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "grayscale" else 3

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, self.channels)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "channels": self.channels}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputSpec:
        return cls(
            image_size=int(data["image_size"]),
            color_mode=data["color_mode"],
            normalization=data["normalization"],
            # A spec stored before the version was recorded is version 1's.
            preprocessing_version=int(data.get("preprocessing_version", 1)),
        )


def open_scan(source: ImageSource) -> Image.Image:
    """Decode a stored scan (bytes, a path or a binary file) with the allowed decoders, loaded."""
    if isinstance(source, bytes | bytearray | memoryview):
        stream: IO[bytes] = io.BytesIO(bytes(source))
    elif isinstance(source, str | os.PathLike):
        stream = open(source, "rb")  # noqa: SIM115 - closed below, after decoding
    else:
        stream = source
        if hasattr(stream, "seek"):
            stream.seek(0)
    try:
        image = Image.open(stream, formats=DECODABLE_FORMATS)
        if image.width * image.height > MAX_DECODED_PIXELS:
            raise PreprocessingError("The image has too many pixels.")
        image.load()
        return image
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        if isinstance(exc, PreprocessingError):
            raise
        raise PreprocessingError("The scan could not be decoded as an image.") from exc
    finally:
        if isinstance(source, str | os.PathLike):
            stream.close()


def _letterbox_square(image: Image.Image, size: int) -> Image.Image:
    """Fit into a black square without distorting it.

    Stretching a non-square crop would change the angle between the spine and the genital
    tubercle, which is exactly what the model measures; black is the background of a scan.
    """
    image = ImageOps.contain(image, (size, size), method=Image.Resampling.BILINEAR)
    if image.size == (size, size):
        return image
    canvas = Image.new(image.mode, (size, size), 0)
    canvas.paste(image, ((size - image.width) // 2, (size - image.height) // 2))
    return canvas


def model_input_shrink(image: Image.Image) -> Image.Image:
    """The first step of :func:`model_input_image`: whole blocks of pixels averaged
    (``Image.reduce``) by the largest whole factor that leaves the longer side at least twice
    ``MODEL_INPUT_SIDE``; a smaller image comes back as it is, and so does a shrunk one.

    In colour, so the grey conversion after it touches a fraction of the pixels (for a 12 MP
    crop, 4 ms for this against 15 ms for converting every pixel to grey first), and an upload
    makes its thumbnail from the same shrunk copy (``babies.images.normalise``).
    """
    factor = max(image.size) // (2 * MODEL_INPUT_SIDE)
    if factor < 2:
        return image
    if image.mode not in ("L", "RGB"):
        image = image.convert("L")  # modes reduce() does not take (palette, 16-bit, CMYK)
    return image.reduce(factor)


def model_input_image(image: Image.Image) -> Image.Image:
    """The model-ready derivative of an oriented scan: greyscale, longer side <= MODEL_INPUT_SIDE.

    Idempotent: a derivative comes back unchanged, which is what lets inference read the small
    stored derivative and get exactly the tensor :func:`preprocess_image` makes from the full
    JPEG (training's input). A large scan is shrunk by whole blocks first
    (:func:`model_input_shrink`), then turned grey and scaled the rest of the way.
    """
    image = model_input_shrink(image)
    if image.mode != "L":
        # Ultrasound is grey: collapse to luminance so RGB models see the same replicated grey.
        image = image.convert("L")
    width, height = image.size
    if max(width, height) <= MODEL_INPUT_SIDE:
        return image
    scale = MODEL_INPUT_SIDE / max(width, height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return image.resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0)


def encode_model_input(image: Image.Image) -> bytes:
    """The derivative as stored: binary PGM (lossless, so storing it changes no pixel)."""
    buffer = io.BytesIO()
    image.save(buffer, "PPM")
    return buffer.getvalue()


def model_input_bytes(source: ImageSource) -> bytes:
    """The stored derivative made from a stored scan (the backfill of scans older than it)."""
    return encode_model_input(model_input_image(ImageOps.exif_transpose(open_scan(source))))


def reads_model_input(spec: InputSpec) -> bool:
    """Whether a model with ``spec`` is fed from the stored derivative (else from the full JPEG)."""
    return spec.preprocessing_version >= 2 and spec.image_size <= MODEL_INPUT_SIDE


def preprocess_image(source: ImageSource, spec: InputSpec) -> np.ndarray:
    """Decode a stored scan and return a float32 array of shape ``spec.shape``.

    ``source`` is the JPEG's bytes, a path, or an open binary file (a Django ``File`` works), or
    the scan's stored derivative (``Scan.model_input``): for a model of at most
    ``MODEL_INPUT_SIDE`` pixels both give the same tensor, because the full image goes through
    :func:`model_input_image` first. A larger model skips that step (and must be fed the JPEG).
    Raises :class:`PreprocessingError` for anything that is not a decodable image.
    """
    image = open_scan(source)
    # Stored scans are already oriented; exif_transpose keeps hand-made files honest too.
    image = ImageOps.exif_transpose(image)
    image = model_input_image(image) if reads_model_input(spec) else image.convert("L")
    image = _letterbox_square(image, spec.image_size)
    pixels = np.asarray(image, dtype=np.float32)[..., np.newaxis]
    if spec.channels == 3:
        pixels = np.repeat(pixels, 3, axis=-1)
    return normalize(pixels, spec.normalization)


def normalize(pixels: np.ndarray, normalization: str) -> np.ndarray:
    """Map 0..255 pixel values to the range ``normalization`` names (see NORMALIZATIONS)."""
    pixels = pixels.astype(np.float32, copy=False)
    if normalization == "unit":
        return pixels / np.float32(255.0)
    if normalization == "symmetric":
        return pixels / np.float32(127.5) - np.float32(1.0)
    if normalization == "raw":
        return pixels
    if normalization == "caffe":
        if pixels.shape[-1] != 3:
            raise ValueError("The caffe normalisation needs three channels.")
        return pixels[..., ::-1] - _CAFFE_MEANS_BGR
    raise ValueError(f"Unknown normalization {normalization!r}.")


def preprocess_batch(sources: list[ImageSource], spec: InputSpec) -> np.ndarray:
    """Stack several scans into one ``(n, size, size, channels)`` batch (errors propagate)."""
    if not sources:
        return np.zeros((0, *spec.shape), dtype=np.float32)
    return np.stack([preprocess_image(source, spec) for source in sources])
