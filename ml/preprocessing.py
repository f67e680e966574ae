"""The one function from a stored JPEG to the model's input tensor.

Training, evaluation and the web's inference all call :func:`preprocess_image`, with the
:class:`InputSpec` a model version records, so a model never sees pixels prepared differently
from the ones it was trained on.
"""

from __future__ import annotations

import io
import os
from dataclasses import asdict, dataclass
from typing import IO, Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# Bump when the function below changes what it produces: a model records the version it was
# trained with, and inference refuses a spec it does not know.
PREPROCESSING_VERSION = 1

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

# Scans are re-encoded JPEGs; PNG is accepted for tests and hand-made fixtures.
DECODABLE_FORMATS = ("JPEG", "PNG")
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
        if self.preprocessing_version != PREPROCESSING_VERSION:
            raise ValueError(
                f"This code implements preprocessing version {PREPROCESSING_VERSION}; the model "
                f"expects version {self.preprocessing_version}."
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
            preprocessing_version=int(data.get("preprocessing_version", PREPROCESSING_VERSION)),
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


def preprocess_image(source: ImageSource, spec: InputSpec) -> np.ndarray:
    """Decode a stored scan and return a float32 array of shape ``spec.shape``.

    ``source`` is the JPEG's bytes, a path, or an open binary file (a Django ``File`` works).
    Raises :class:`PreprocessingError` for anything that is not a decodable image.
    """
    image = open_scan(source)
    # Stored scans are already oriented; exif_transpose keeps hand-made files honest too.
    image = ImageOps.exif_transpose(image)
    # Ultrasound is grey: collapse to luminance first so RGB models see the same replicated grey.
    image = image.convert("L")
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
