"""Model code that the web may import: NumPy and Pillow only, never TensorFlow.

Preprocessing, the synthetic data generator, splits and metrics live here so that training
(``predictions.training``), evaluation and inference (``predictions.inference``) share one
implementation of each; so do the rules for answering a parent: the gestational-week gate
(``gestation``), the "cannot tell" rule (``abstention``), and the burned-in text and caliper
detector (``markers``).
"""
