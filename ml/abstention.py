"""One rule for "female", "male" or "cannot tell yet", shared by the web and the evaluation.

A sonographer reading the tubercle makes a call in only about 60-93 % of scans; a product that
answers every baby is less honest than that. This module decides, from the calibrated logits
of one baby's scans, whether the model answers. The prediction service calls
:func:`decide_for_baby` with ``settings.PREDICTION_ABSTAIN_MARGIN`` and
``settings.PREDICTION_DISAGREEMENT_THRESHOLD``; the training pipeline measures the same function
on held-out babies (``ml.metrics.abstention_report``), so the coverage and the
accuracy a model version records describe exactly what parents get.

The rule, in order:

1. **Combine** the scans: the mean of the calibrated logits (each raw logit divided by the
   version's temperature), times the version's per-baby scale for that number of scans
   (``ml.evaluation.BabyCalibration``; 1 for one scan, and for versions fitted
   before it), then the sigmoid. A baby's scans share one anatomy, so the plain mean of
   calibrated scan logits is under-confident for the baby and a sum is over-confident; the
   scale is fitted on validation babies. The answer leans male when that probability is at
   least 0.5 (a positive scale never changes the side).
2. **Scans disagree** -> ``cannot_tell`` (reason ``"scans_disagree"``) when at least one scan
   says male with probability >= 0.5 + d *and* another says female with probability <= 0.5 - d
   (d = the disagreement threshold; default 0.3, i.e. one scan at 80 % male or more and another
   at 80 % female or more). Why this test and not the spread of the logits:

   * it says what a person would call disagreement: two scans that each look sure, of
     opposite things. Two doubtful scans (55 % and 45 %) do not disagree, they are both unsure,
     and the margin below handles them;
   * it is on the same probability scale as the margin and needs no number of scans to mean
     anything (a standard deviation of two values is mostly noise, and its size in logits
     depends on the temperature);
   * the mean can hide it: 95 % male and 95 % female average to 50 %, but 95 % and 20 % average
     to a confident-looking 82 % that one clear scan contradicts. Scans of one baby share its
     anatomy, so such a conflict means a bad view, the wrong structure or a mixed-up upload,
     and the remedy is another scan, not a guess.

   Disagreement is checked before the margin because it is the more useful thing to tell the
   parent ("your scans point different ways") when both hold.
3. **Uncertain** -> ``cannot_tell`` (reason ``"uncertain"``) when |p - 0.5| < margin (default
   0.2: between 30 % and 70 %; chosen from the risk–coverage curve on the fixed evaluation
   set). A probability exactly at the edge is answered.

Gating by gestational week (``ml.gestation``) happens before: pass only the scans
that may be used. No scans at all is not an abstention of the model but a different message
("too early", "unreadable"), so it raises ``ValueError`` and the caller says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

FEMALE = "female"
MALE = "male"
CANNOT_TELL = "cannot_tell"
UNCERTAIN = "uncertain"
SCANS_DISAGREE = "scans_disagree"

# The settings' defaults (instagender/settings.py); callers pass the configured values.
DEFAULT_MARGIN = 0.2
DEFAULT_DISAGREEMENT_THRESHOLD = 0.3


@dataclass(frozen=True)
class BabyDecision:
    """The answer for one baby; ``probability_male`` and ``leaning`` are kept when it abstains.

    ``decision`` is ``"female"``, ``"male"`` or ``"cannot_tell"``; ``reason`` is ``None`` when it
    answers, else ``"uncertain"`` or ``"scans_disagree"``. ``leaning`` is the side the combined
    probability is on, whatever the decision (what the model would have said if forced).
    """

    decision: str
    reason: str | None
    probability_male: float
    combined_logit: float
    scans: int

    @property
    def answered(self) -> bool:
        return self.decision != CANNOT_TELL

    @property
    def leaning(self) -> str:
        return MALE if self.probability_male >= 0.5 else FEMALE


def _sigmoid(value: float) -> float:
    return float(np.exp(-np.logaddexp(0.0, -value)))


def _check_settings(margin: float, disagreement_threshold: float | None) -> None:
    if not 0.0 <= margin < 0.5:
        raise ValueError("The margin must be at least 0 and below 0.5.")
    if disagreement_threshold is not None and not 0.0 < disagreement_threshold < 0.5:
        raise ValueError("The disagreement threshold must be above 0 and below 0.5 (or None for off).")


def decide_for_baby(
    calibrated_logits: Sequence[float],
    *,
    margin: float = DEFAULT_MARGIN,
    disagreement_threshold: float | None = DEFAULT_DISAGREEMENT_THRESHOLD,
    scale: float = 1.0,
) -> BabyDecision:
    """Decide for one baby from its usable scans' calibrated logits (logit / temperature).

    ``scale`` multiplies the mean logit (the per-baby calibration for this many scans).
    ``margin``: abstain when the combined probability is within it of 0.5. ``disagreement_threshold``:
    abstain when one scan's probability is >= 0.5 + it and another's <= 0.5 - it (``None``
    turns the check off). Raises ``ValueError`` for no scans or a value that is not finite.
    """
    _check_settings(margin, disagreement_threshold)
    logits = [float(value) for value in calibrated_logits]
    if not logits:
        raise ValueError("A decision needs at least one scan.")
    if not all(math.isfinite(value) for value in logits):
        raise ValueError("Every calibrated logit must be a finite number.")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError("The per-baby scale must be a positive number.")
    combined = scale * math.fsum(logits) / len(logits)
    probability = _sigmoid(combined)
    leaning = MALE if probability >= 0.5 else FEMALE
    reason = None
    if disagreement_threshold is not None and len(logits) > 1:
        per_scan = [_sigmoid(value) for value in logits]
        if max(per_scan) >= 0.5 + disagreement_threshold and min(per_scan) <= 0.5 - disagreement_threshold:
            reason = SCANS_DISAGREE
    if reason is None and abs(probability - 0.5) < margin:
        reason = UNCERTAIN
    return BabyDecision(
        decision=leaning if reason is None else CANNOT_TELL,
        reason=reason,
        probability_male=probability,
        combined_logit=combined,
        scans=len(logits),
    )


def decide_for_baby_from_probabilities(
    probabilities: Sequence[float],
    *,
    margin: float = DEFAULT_MARGIN,
    disagreement_threshold: float | None = DEFAULT_DISAGREEMENT_THRESHOLD,
    scale: float = 1.0,
) -> BabyDecision:
    """The same decision from calibrated per-scan probabilities of male (0 and 1 are clipped)."""
    clipped = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1 - 1e-12)
    return decide_for_baby(
        np.log(clipped) - np.log1p(-clipped),
        margin=margin,
        disagreement_threshold=disagreement_threshold,
        scale=scale,
    )
