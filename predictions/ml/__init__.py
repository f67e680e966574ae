"""Model code that the web may import: NumPy and Pillow only, never TensorFlow.

Preprocessing, the synthetic data generator, splits and metrics live here so that training
(``predictions.training``), evaluation and inference (``predictions.inference``) share one
implementation of each.
"""
