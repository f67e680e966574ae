"""The pure model code: NumPy, Pillow and LiteRT, never Django and never TensorFlow.

Any app may import it (``babies`` for the gestational week and the marker check, ``predictions``
for inference, ``curation`` for splits and records); it imports none of them, so there is no
cycle. Preprocessing, the synthetic data generator, splits, metrics, the per-baby evaluation and
the quality gate live here so that training (``predictions.training``), evaluation and
inference (``predictions.inference``) share one implementation of each; so do the rules for
answering a parent: the gestational-week gate (``gestation``), the "cannot tell" rule
(``abstention``), and the burned-in text and caliper detector (``markers``).
"""
