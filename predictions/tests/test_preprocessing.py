"""The one preprocessing function: same tensor whatever the source, per the model's spec."""

import io

import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import storages
from PIL import Image

from ml.preprocessing import (
    MODEL_INPUT_SIDE,
    InputSpec,
    PreprocessingError,
    model_input_image,
    model_input_shrink,
    preprocess_batch,
    preprocess_image,
)
from predictions.inference import _source_for_preprocessing


def _jpeg(size=(80, 60), colour=128) -> bytes:
    buffer = io.BytesIO()
    image = Image.new("L", size, colour)
    image.paste(255, (10, 10, 30, 20))
    image.save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def test_bytes_path_and_file_give_the_same_tensor(tmp_path):
    data = _jpeg()
    path = tmp_path / "scan.jpg"
    path.write_bytes(data)
    spec = InputSpec(image_size=48)
    from_bytes = preprocess_image(data, spec)
    assert np.array_equal(from_bytes, preprocess_image(path, spec))
    assert np.array_equal(from_bytes, preprocess_image(str(path), spec))
    with path.open("rb") as handle:
        assert np.array_equal(from_bytes, preprocess_image(handle, spec))


def test_django_field_file_source_reads_through_the_storage(settings, tmp_path):
    data = _jpeg()
    name = storages["scans"].save("scan.jpg", ContentFile(data))

    class FakeFieldFile:  # what Scan.image is: a name and a storage
        storage = storages["scans"]

    field_file = FakeFieldFile()
    field_file.name = name
    spec = InputSpec(image_size=48)
    assert np.array_equal(
        preprocess_image(_source_for_preprocessing(field_file), spec), preprocess_image(data, spec)
    )


@pytest.mark.parametrize(
    ("color_mode", "normalization", "channels", "low", "high"),
    [
        ("grayscale", "unit", 1, 0.0, 1.0),
        ("rgb", "symmetric", 3, -1.0, 1.0),
        ("rgb", "raw", 3, 0.0, 255.0),
        ("rgb", "caffe", 3, -124.0, 152.0),
    ],
)
def test_shape_dtype_and_range_follow_the_spec(color_mode, normalization, channels, low, high):
    spec = InputSpec(image_size=40, color_mode=color_mode, normalization=normalization)
    tensor = preprocess_image(_jpeg(), spec)
    assert tensor.shape == (40, 40, channels) == spec.shape
    assert tensor.dtype == np.float32
    assert low <= tensor.min() and tensor.max() <= high
    if channels == 3 and normalization != "caffe":
        assert np.array_equal(tensor[..., 0], tensor[..., 2])


def test_letterbox_keeps_the_aspect_ratio_on_black():
    # A 100x50 white image fills the middle half of a square; the bands are black.
    buffer = io.BytesIO()
    Image.new("L", (100, 50), 255).save(buffer, format="PNG")
    tensor = preprocess_image(buffer.getvalue(), InputSpec(image_size=40))[..., 0]
    assert tensor[:9].max() == 0.0 and tensor[-9:].max() == 0.0
    assert tensor[12:28].min() == pytest.approx(1.0)


def test_colour_input_becomes_luminance():
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (200, 100, 50)).save(buffer, format="PNG")
    grey = Image.new("RGB", (32, 32), (200, 100, 50)).convert("L").getpixel((0, 0))
    tensor = preprocess_image(buffer.getvalue(), InputSpec(image_size=32))
    assert tensor[16, 16, 0] == pytest.approx(grey / 255)


@pytest.mark.parametrize("data", [b"", b"not an image", _jpeg()[:200], b"GIF89a" + b"\0" * 50])
def test_corrupt_or_foreign_bytes_raise_preprocessing_error(data):
    with pytest.raises(PreprocessingError):
        preprocess_image(data, InputSpec(image_size=32))


def test_batch_stacks_and_an_empty_batch_has_the_right_shape():
    spec = InputSpec(image_size=32)
    assert preprocess_batch([_jpeg(), _jpeg(colour=10)], spec).shape == (2, 32, 32, 1)
    assert preprocess_batch([], spec).shape == (0, 32, 32, 1)


def test_spec_round_trips_and_rejects_nonsense():
    spec = InputSpec(image_size=96, color_mode="rgb", normalization="symmetric")
    assert InputSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["channels"] == 3
    with pytest.raises(ValueError):
        InputSpec(color_mode="cmyk")
    with pytest.raises(ValueError):
        InputSpec(normalization="zscore")
    with pytest.raises(ValueError, match="preprocessing version"):
        InputSpec(preprocessing_version=99)


@pytest.mark.parametrize("size", [(3225, 2419), (2419, 3225), (900, 500), (896, 300), (300, 200)])
def test_the_shrunk_copy_gives_the_derivative_of_the_whole_image(size):
    """The upload makes the derivative (and the thumbnail) from ``model_input_shrink``'s copy:
    the derivative must be exactly the one training makes from the whole image."""
    rng = np.random.default_rng(sum(size))
    image = Image.fromarray(rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8))

    shrunk = model_input_shrink(image)

    assert max(shrunk.size) < 4 * MODEL_INPUT_SIDE
    assert shrunk.size == image.size or max(shrunk.size) >= 2 * MODEL_INPUT_SIDE
    assert model_input_shrink(shrunk) is shrunk  # nothing more to average
    whole, from_shrunk = model_input_image(image), model_input_image(shrunk)
    assert whole.mode == "L" and max(whole.size) == min(MODEL_INPUT_SIDE, max(size))
    assert np.array_equal(np.asarray(whole), np.asarray(from_shrunk))
