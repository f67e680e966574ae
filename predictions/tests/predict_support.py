"""A tiny, exact LiteRT model and grey scans, so prediction tests know every number in advance.

The model is written as a TFLite flatbuffer with LiteRT's own schema (no TensorFlow, a few
hundred bytes, built in a millisecond): ``logit = weight * mean(pixels) + bias``, pixels in
[0, 1]. A uniformly grey scan of value ``v`` therefore has the logit ``weight * v / 255 + bias``
(JPEG keeps a flat grey exactly), and a test can predict the baby's answer by hand.
"""

from __future__ import annotations

import io
import tempfile
from pathlib import Path

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema
from django.core.files.storage import storages
from PIL import Image

from babies.tests.factories import create_scan
from ml.preprocessing import InputSpec
from predictions.models import ModelVersion
from predictions.services import model_version_activate, model_version_create
from predictions.tests.factories import PASSING_EVALUATION

IMAGE_SIZE = 32
WEIGHT = 10.0
BIAS = -5.0
METRICS = {
    "calibrated": {"per_baby": {"accuracy": 0.862, "count": 300}},
    "evaluation": PASSING_EVALUATION,
}


def mean_pixel_tflite(
    *, size: int = IMAGE_SIZE, channels: int = 1, weight: float = WEIGHT, bias: float = BIAS
):
    """A ``.tflite`` flatbuffer computing ``weight * mean(image) + bias`` for a batch of images."""
    float32, int32 = schema.TensorType.FLOAT32, schema.TensorType.INT32

    def buffer(values=None):
        result = schema.BufferT()
        if values is not None:
            result.data = list(np.asarray(values).tobytes())
        return result

    def tensor(name, shape, kind, buffer_index, signature=None):
        result = schema.TensorT()
        result.name, result.shape, result.type, result.buffer = name, shape, kind, buffer_index
        if signature:
            result.shapeSignature = signature  # -1: the batch size may change at run time
        return result

    def opcode(code):
        result = schema.OperatorCodeT()
        result.builtinCode = result.deprecatedBuiltinCode = code
        result.version = 1
        return result

    def operator(index, inputs, outputs, options_type, options):
        result = schema.OperatorT()
        result.opcodeIndex, result.inputs, result.outputs = index, inputs, outputs
        result.builtinOptionsType, result.builtinOptions = options_type, options
        return result

    reducer = schema.ReducerOptionsT()
    reducer.keepDims = False
    graph = schema.SubGraphT()
    graph.name = "main"
    graph.tensors = [
        tensor("image", [1, size, size, channels], float32, 1, [-1, size, size, channels]),
        tensor("axes", [3], int32, 2),
        tensor("mean", [1], float32, 0, [-1]),
        tensor("weight", [1], float32, 3),
        tensor("scaled", [1], float32, 0, [-1]),
        tensor("bias", [1], float32, 4),
        tensor("logit", [1], float32, 0, [-1]),
    ]
    graph.inputs, graph.outputs = [0], [6]
    graph.operators = [
        operator(0, [0, 1], [2], schema.BuiltinOptions.ReducerOptions, reducer),
        operator(1, [2, 3], [4], schema.BuiltinOptions.MulOptions, schema.MulOptionsT()),
        operator(2, [4, 5], [6], schema.BuiltinOptions.AddOptions, schema.AddOptionsT()),
    ]
    model = schema.ModelT()
    model.version = 3
    model.description = "test model: weight * mean(pixels) + bias"
    model.operatorCodes = [
        opcode(schema.BuiltinOperator.MEAN),
        opcode(schema.BuiltinOperator.MUL),
        opcode(schema.BuiltinOperator.ADD),
    ]
    model.subgraphs = [graph]
    model.buffers = [
        buffer(),
        buffer(),
        buffer(np.array([1, 2, 3], dtype=np.int32)),
        buffer(np.array([weight], dtype=np.float32)),
        buffer(np.array([bias], dtype=np.float32)),
    ]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def tiny_model_version(
    *,
    name: str = "Tiny test model",
    temperature: float = 1.0,
    is_synthetic: bool = True,
    metrics: dict | None = None,
    weight: float = WEIGHT,
    bias: float = BIAS,
    activate: bool = True,
    tflite_content: bytes | None = None,
) -> ModelVersion:
    """A ModelVersion made by the pipeline's own service, with the mean-pixel model as its file."""
    with tempfile.TemporaryDirectory() as folder:
        tflite_path = Path(folder) / "model.tflite"
        tflite_path.write_bytes(tflite_content or mean_pixel_tflite(weight=weight, bias=bias))
        keras_path = Path(folder) / "model.keras"
        keras_path.write_bytes(b"not used: the web runs the .tflite file only")
        version = model_version_create(
            name=name,
            architecture="mean_pixel",
            input_spec=InputSpec(image_size=IMAGE_SIZE, color_mode="grayscale", normalization="unit"),
            temperature=temperature,
            keras_path=keras_path,
            tflite_path=tflite_path,
            metrics=METRICS if metrics is None else metrics,
            is_synthetic=is_synthetic,
        )
    if not activate:
        return version
    if "evaluation" not in version.metrics:
        # Metrics made up for a test of something else than the gate: switch it on directly.
        ModelVersion.objects.filter(pk=version.pk).update(is_active=True)
        version.refresh_from_db()
        return version
    return model_version_activate(model_version=version)


def grey_png(value: int, size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (value, value, value)).save(buffer, "PNG")
    return buffer.getvalue()


def grey_scan(baby, value: int, **kwargs):
    """A scan of ``baby`` whose every pixel is ``value`` (uploaded through ``scan_create``)."""
    return create_scan(baby, data=grey_png(value), **kwargs)


def expected_logit(value: int, *, weight: float = WEIGHT, bias: float = BIAS) -> float:
    return weight * value / 255 + bias


def corrupt_stored_file(scan) -> None:
    """Overwrite the scan's stored JPEG and model-ready derivative with bytes no decoder accepts."""
    for field in (scan.image, scan.model_input):
        if field:
            Path(storages["scans"].path(field.name)).write_bytes(b"this is not an image any more")
