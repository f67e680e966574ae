"""Training and export: the only package that imports TensorFlow and Keras.

Only management commands (``train_model``, ``ensure_demo_model``) and the benchmark import
it; the web path never does (``predictions.tests.test_inference`` checks it).
"""

import os

# TensorFlow's C++ start-up chatter (CPU feature notes, oneDNN) is not for a command's output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import logging  # noqa: E402

# "Assets written to …" and similar INFO lines from TensorFlow's Python side, likewise.
logging.getLogger("tensorflow").setLevel(logging.WARNING)
logging.getLogger("absl").setLevel(logging.WARNING)
