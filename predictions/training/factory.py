"""Model factory: a small CNN by default, keras.applications backbones for transfer learning.

Every network ends in one linear unit: the logit of **male** (label 1). Backbone weights come
only from a local file given on the command line; nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keras
from keras import layers

from ml.preprocessing import InputSpec


@dataclass(frozen=True)
class Architecture:
    name: str
    default_image_size: int
    color_mode: str
    normalization: str
    description: str


ARCHITECTURES = {
    a.name: a
    for a in [
        Architecture(
            "small_cnn", 96, "grayscale", "unit", "five conv blocks, BatchNorm, ~70k parameters; fast on CPU"
        ),
        Architecture("mobilenet_v2", 128, "rgb", "symmetric", "keras.applications.MobileNetV2"),
        Architecture("mobilenet_v3_small", 128, "rgb", "raw", "keras.applications.MobileNetV3Small"),
        Architecture("mobilenet_v3_large", 128, "rgb", "raw", "keras.applications.MobileNetV3Large"),
        Architecture("efficientnet_b0", 128, "rgb", "raw", "keras.applications.EfficientNetB0"),
        Architecture("xception", 128, "rgb", "symmetric", "keras.applications.Xception (min. 71 px)"),
        Architecture("vgg16", 128, "rgb", "caffe", "keras.applications.VGG16"),
    ]
}


def default_input_spec(architecture: str, image_size: int | None = None) -> InputSpec:
    arch = _architecture(architecture)
    return InputSpec(
        image_size=image_size or arch.default_image_size,
        color_mode=arch.color_mode,
        normalization=arch.normalization,
    )


def _architecture(name: str) -> Architecture:
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"Unknown architecture {name!r}; choose one of {', '.join(ARCHITECTURES)}."
        ) from None


def build_model(
    architecture: str,
    spec: InputSpec,
    *,
    weights_path: str | os.PathLike | None = None,
    freeze_backbone: bool = True,
    dropout: float = 0.2,
    sample_images=None,
) -> keras.Model:
    """Build an uncompiled model whose input matches ``spec`` and whose output is one logit.

    ``weights_path`` is a local ``.weights.h5``/``.h5`` file for the backbone (include_top=False
    weights, e.g. downloaded once elsewhere); without it a backbone starts from random weights.
    ``sample_images`` (training scans, preprocessed) set the small CNN's input standardisation.
    """
    arch = _architecture(architecture)
    if (spec.color_mode, spec.normalization) != (arch.color_mode, arch.normalization):
        raise ValueError(
            f"{architecture} expects {arch.color_mode} input normalised as {arch.normalization!r}."
        )
    if weights_path is not None and not os.path.isfile(weights_path):
        raise ValueError(f"The weights file {weights_path} does not exist (weights are never downloaded).")
    inputs = keras.Input(shape=spec.shape, name="scan")
    if architecture == "small_cnn":
        if weights_path is not None:
            raise ValueError("The small CNN is trained from scratch; it takes no weights file.")
        normalizer = None
        if sample_images is not None and len(sample_images):
            normalizer = layers.Normalization(axis=None, name="standardise")
            normalizer.adapt(sample_images)
        outputs = _small_cnn(inputs, dropout=dropout, normalizer=normalizer)
        return keras.Model(inputs, outputs, name="small_cnn")
    backbone = _backbone(architecture, spec)
    if weights_path is not None:
        backbone.load_weights(os.fspath(weights_path))
    backbone.trainable = not (freeze_backbone and weights_path is not None)
    # training=False keeps BatchNorm statistics of pretrained weights fixed while fine-tuning.
    features = backbone(inputs, training=False if weights_path is not None else None)
    features = layers.GlobalAveragePooling2D()(features)
    features = layers.Dropout(dropout)(features)
    outputs = layers.Dense(1, name="male_logit")(features)
    return keras.Model(inputs, outputs, name=architecture)


def _backbone(architecture: str, spec: InputSpec) -> keras.Model:
    common = {"include_top": False, "weights": None, "input_shape": spec.shape}
    applications = keras.applications
    if architecture == "mobilenet_v2":
        return applications.MobileNetV2(**common)
    if architecture == "mobilenet_v3_small":
        return applications.MobileNetV3Small(**common, include_preprocessing=True)
    if architecture == "mobilenet_v3_large":
        return applications.MobileNetV3Large(**common, include_preprocessing=True)
    if architecture == "efficientnet_b0":
        return applications.EfficientNetB0(**common)
    if architecture == "xception":
        return applications.Xception(**common)
    if architecture == "vgg16":
        return applications.VGG16(**common)
    raise ValueError(f"No backbone for {architecture!r}.")


def _small_cnn(inputs, *, dropout: float, normalizer: layers.Layer | None = None):
    """Standardised input, a strided 5x5 stem, conv blocks halving the resolution, global max pool.

    ``normalizer`` (a ``keras.layers.Normalization`` adapted to the training scans, see
    :func:`build_model`) centres and scales the mostly black input; BatchNorm after every
    convolution keeps the activations in range. Without both, the network sits on the loss's
    initial plateau (every scan called one sex) for longer than a CPU budget allows. BatchNorm's
    moving statistics use momentum 0.9, so they follow the weights within a few dozen steps and
    inference-mode outputs match training ones even after a short run. Max pooling over space
    keeps the strongest response of an oriented-bar detector wherever the tubercle is, which is
    what the angle needs; averaging would dilute a small structure.
    """
    x = normalizer(inputs) if normalizer is not None else inputs

    def conv(x, filters, size, **kwargs):
        x = layers.Conv2D(filters, size, padding="same", use_bias=False, **kwargs)(x)
        x = layers.BatchNormalization(momentum=0.9)(x)
        return layers.ReLU()(x)

    x = conv(x, 16, 5, strides=2)
    for filters in (24, 32, 48):
        x = conv(x, filters, 3)
        x = layers.MaxPooling2D()(x)
    x = conv(x, 64, 3)
    x = layers.GlobalMaxPooling2D()(x)
    x = layers.Dropout(dropout)(x)
    x = layers.Dense(32, activation="relu")(x)
    return layers.Dense(1, name="male_logit")(x)
