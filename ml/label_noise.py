"""What share of a batch of labels is wrong, estimated with a model that never saw them.

Nobody knows which labels are wrong, but a model of known accuracy knows how often to disagree.
Each label is taken to be the baby's true sex except, with probability ``rate`` (the same for
girls and boys, and not depending on the picture: a parent's slip or a swapped button does not
look at the scan), the other one. For each baby, ``q`` is the probability that its true sex is
the other one than its label, given what a model that never trained on it says. Then the label
is seen with probability ``(1 - rate) (1 - q) + rate q`` (up to a factor that does not depend
on the rate), and the rate that makes the batch most likely is the estimate: the two-class form
of confident learning's noise-rate estimate, without thresholds. The log-likelihood is concave
in the rate, so bisection on its slope finds it; a bootstrap over babies gives the interval.

Which ``q``: the model's own probability of the other sex is only as good as its calibration,
and label noise is what spoils calibration (a model trained on noisy labels is under-confident,
and then a batch looks cleaner than it is: on the learning-loop simulation a batch with 10 %
wrong answers, scored by such a model, read as 0 %). So the data card
(``curation.services.training_sets``) uses the scoring model's *measured* per-baby accuracy on
the fixed evaluation set instead: ``q`` is one minus that accuracy when the model agrees with
the label, the accuracy when it does not. Unbiased whatever the model's calibration, as long as
the babies are like the evaluation babies; less sharp than calibrated probabilities would be.

It says how wrong a batch is, not which labels are; the review queue says which.

NumPy only; the data card records the estimate and the gate (``ml.gate``, rule 4) reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# The rate is looked for in [0, 0.5]: beyond a half the labels would be mostly wrong and the
# model's sides would swap, which no calibrated model can tell from a mostly right batch.
MAX_RATE = 0.5
BOOTSTRAP_SAMPLES = 1000
_BISECTION_STEPS = 40


@dataclass(frozen=True)
class LabelErrorEstimate:
    babies: int
    rate: float
    lower_bound: float  # one-sided 95 %: the 5th percentile of the bootstrap
    upper_bound: float  # the 95th percentile

    def to_dict(self) -> dict:
        return {
            "babies": self.babies,
            "rate": round(self.rate, 4),
            "lower_bound": round(self.lower_bound, 4),
            "upper_bound": round(self.upper_bound, 4),
        }


def _most_likely_rates(disagreements: np.ndarray) -> np.ndarray:
    """The maximum-likelihood rate for each row of ``disagreements`` (babies along axis 1)."""
    slope_term = 2.0 * disagreements - 1.0  # d/d(rate) of the probability of the seen label
    base = 1.0 - disagreements
    low = np.zeros(disagreements.shape[0])
    high = np.full(disagreements.shape[0], MAX_RATE)
    for _ in range(_BISECTION_STEPS):
        middle = (low + high) / 2
        slope = np.sum(slope_term / (base + middle[:, None] * slope_term), axis=1)
        rising = slope > 0
        low = np.where(rising, middle, low)
        high = np.where(rising, high, middle)
    return (low + high) / 2


def estimate_label_error_rate(
    disagreements: Sequence[float], *, bootstrap_samples: int = BOOTSTRAP_SAMPLES, seed: int = 0
) -> LabelErrorEstimate:
    """The estimated share of wrong labels among babies with these label disagreements.

    ``disagreements``: for each baby, the probability that its true sex is the other one than
    its label, given a model that did not train on it (``q`` in the module's docstring).
    Clipped away from 0 and 1 (no model is ever certain). The bootstrap is seeded: the same
    batch gives the same figures.
    """
    values = np.clip(np.asarray(disagreements, dtype=np.float64), 1e-6, 1 - 1e-6)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("An estimate needs at least one baby's disagreement.")
    rate = float(_most_likely_rates(values[None, :])[0])
    rng = np.random.default_rng(seed)
    resampled = values[rng.integers(0, values.size, (bootstrap_samples, values.size))]
    rates = _most_likely_rates(resampled)
    low, high = np.percentile(rates, [5, 95])
    return LabelErrorEstimate(
        babies=int(values.size), rate=rate, lower_bound=float(low), upper_bound=float(high)
    )
