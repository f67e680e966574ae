"""Evaluation on held-out babies, in NumPy: the numbers a ModelVersion records.

Probabilities are of **male** (label 1). A baby's answer comes from the mean of its scans'
logits: for the synthetic data the log-likelihood ratio is linear in the angle, so the sign of
the mean logit is the Bayes decision from the mean angle.

Besides accuracy and calibration for every baby (:func:`evaluate`), two reports describe what
parents actually get:

* :func:`abstention_report` (**per baby**): scans below the minimum gestational week are left
  out (``ml.gestation``), then ``ml.abstention.decide_for_baby`` answers
  or says "cannot tell"; coverage (the share of babies answered = 1 - abstention rate) and the
  accuracy on the answered babies, at the configured margin, a stricter one and a small table
  of margins. Abstention is about babies because that is what a parent is answered about.
* :func:`week_band_report` (**per scan**): accuracy, ECE, confidence and coverage per band of
  gestational weeks. Per scan because the week is a scan's, and a baby's scans can come from
  different weeks; "coverage" there is the share of the band's scans that would be answered on
  their own (|p - 0.5| >= margin), without the disagreement check that needs several scans.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ml.abstention import MALE, SCANS_DISAGREE, UNCERTAIN, decide_for_baby
from ml.gestation import is_scan_usable

# Bands of gestational weeks for the per-band metrics: (name, first week, last week), None open.
# "<12" is below the default minimum week (not used for predictions), "12" the last noisy
# week that is used, then the weeks where sonographers are nearly always right.
WEEK_BANDS = (("<12", None, 11), ("12", 12, 12), ("13-15", 13, 15), ("16+", 16, None))
UNKNOWN_WEEK_BAND = "unknown"
# The margins the abstention table shows (the configured and the stricter one are added).
ABSTENTION_MARGINS = (0.0, 0.05, 0.1, 0.15, 0.2, 0.25)


def sigmoid(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    return np.exp(-np.logaddexp(0.0, -logits))


def accuracy(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(np.mean((np.asarray(probabilities) >= 0.5) == (np.asarray(labels) == 1)))


def wilson_interval(successes: int, total: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95 % Wilson score interval for a proportion (honest near 0 and 1, unlike p ± 2 SE)."""
    if total == 0:
        return (0.0, 1.0)
    p = successes / total
    denominator = 1 + z**2 / total
    centre = (p + z**2 / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z**2 / (4 * total**2)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve by the rank-sum (Mann–Whitney) statistic, ties counted half."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    positives, negatives = int(np.sum(labels == 1)), int(np.sum(labels == 0))
    if positives == 0 or negatives == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    position = 0
    while position < len(scores):
        end = position
        while end + 1 < len(scores) and sorted_scores[end + 1] == sorted_scores[position]:
            end += 1
        ranks[order[position : end + 1]] = (position + end) / 2 + 1
        position = end + 1
    rank_sum = ranks[labels == 1].sum()
    return float((rank_sum - positives * (positives + 1) / 2) / (positives * negatives))


def roc_curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every threshold, for the ROC plot."""
    labels = np.asarray(labels)
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    sorted_labels = labels[order]
    true_positives = np.concatenate([[0], np.cumsum(sorted_labels == 1)])
    false_positives = np.concatenate([[0], np.cumsum(sorted_labels == 0)])
    return (
        false_positives / max(1, false_positives[-1]),
        true_positives / max(1, true_positives[-1]),
    )


def brier_score(labels: np.ndarray, probabilities: np.ndarray) -> float:
    return float(np.mean((np.asarray(probabilities, dtype=np.float64) - np.asarray(labels)) ** 2))


def reliability_bin_index(probabilities: np.ndarray, bins: int = 10) -> np.ndarray:
    """The equal-width bin (0 to ``bins`` - 1) of each predicted probability of male."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    return np.clip(
        np.digitize(np.asarray(probabilities, dtype=np.float64), edges[1:-1], right=False), 0, bins - 1
    )


def reliability_bins(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> list[dict]:
    """Equal-width bins of the predicted probability of male, with the observed male rate."""
    labels = np.asarray(labels, dtype=np.float64)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = reliability_bin_index(probabilities, bins)
    result = []
    for index in range(bins):
        mask = which == index
        count = int(mask.sum())
        result.append(
            {
                "lower": float(edges[index]),
                "upper": float(edges[index + 1]),
                "count": count,
                "mean_probability": float(probabilities[mask].mean()) if count else None,
                "observed_rate": float(labels[mask].mean()) if count else None,
            }
        )
    return result


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 10) -> float:
    """ECE of the probability of male: the count-weighted gap between predicted and observed rate.

    (Binning the probability of the positive class, not the top-label confidence: for a binary
    task the two differ only in how bins straddle 0.5; this one matches the reliability plot.)
    """
    total = len(labels)
    if total == 0:
        return 0.0
    return float(
        sum(
            b["count"] / total * abs(b["mean_probability"] - b["observed_rate"])
            for b in reliability_bins(labels, probabilities, bins)
            if b["count"]
        )
    )


def confusion_matrix(labels: np.ndarray, probabilities: np.ndarray) -> list[list[int]]:
    """``[[female→female, female→male], [male→female, male→male]]`` (rows: truth)."""
    labels = np.asarray(labels)
    predicted = (np.asarray(probabilities) >= 0.5).astype(int)
    return [[int(np.sum((labels == truth) & (predicted == guess))) for guess in (0, 1)] for truth in (0, 1)]


def binary_report(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    labels = np.asarray(labels)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    correct = int(np.sum((probabilities >= 0.5) == (labels == 1)))
    low, high = wilson_interval(correct, len(labels))
    return {
        "count": len(labels),
        "accuracy": correct / len(labels) if len(labels) else None,
        "accuracy_ci95": [low, high],
        "roc_auc": roc_auc(labels, probabilities),
        "brier": brier_score(labels, probabilities),
        "ece": expected_calibration_error(labels, probabilities),
        "confusion_matrix": confusion_matrix(labels, probabilities),
    }


def aggregate_by_baby(
    baby_keys: Sequence[str], labels: np.ndarray, logits: np.ndarray
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """One row per baby: its label (majority of its scans) and the mean of its scans' logits."""
    grouped: dict[str, list[int]] = defaultdict(list)
    for index, key in enumerate(baby_keys):
        grouped[key].append(index)
    keys = sorted(grouped)
    labels = np.asarray(labels)
    logits = np.asarray(logits, dtype=np.float64)
    baby_labels = np.array([round(float(labels[grouped[key]].mean())) for key in keys])
    baby_logits = np.array([float(logits[grouped[key]].mean()) for key in keys])
    return keys, baby_labels, baby_logits


def evaluate(
    *,
    labels: np.ndarray,
    logits: np.ndarray,
    baby_keys: Sequence[str],
    temperature: float = 1.0,
    gestational_weeks: Sequence[int | None] | None = None,
) -> dict:
    """Per-scan and per-baby metrics with the temperature applied, plus accuracy by week."""
    labels = np.asarray(labels)
    scaled = np.asarray(logits, dtype=np.float64) / temperature
    report = {"per_scan": binary_report(labels, sigmoid(scaled))}
    keys, baby_labels, baby_logits = aggregate_by_baby(baby_keys, labels, scaled)
    report["per_baby"] = binary_report(baby_labels, sigmoid(baby_logits))
    if gestational_weeks is not None and any(week is not None for week in gestational_weeks):
        by_week: dict[int, list[int]] = defaultdict(list)
        for index, week in enumerate(gestational_weeks):
            if week is not None:
                by_week[int(week)].append(index)
        report["per_scan_accuracy_by_week"] = {
            str(week): {
                "count": len(indices),
                "accuracy": accuracy(labels[indices], sigmoid(scaled[indices])),
            }
            for week, indices in sorted(by_week.items())
        }
    return report


def fit_temperature(labels: np.ndarray, logits: np.ndarray) -> float:
    """The temperature T minimising the validation log-loss of sigmoid(logit / T).

    The log-loss is convex in 1/T, so a golden-section search over log T in [0.05, 20] finds
    the optimum; T > 1 softens an over-confident network. Dividing by T never changes a
    prediction's side of 0.5, only how sure it claims to be.
    """
    labels = np.asarray(labels, dtype=np.float64)
    logits = np.asarray(logits, dtype=np.float64)
    if len(labels) == 0:
        return 1.0

    def loss(log_t: float) -> float:
        z = logits / math.exp(log_t)
        # log(1 + e^-z) for positives, log(1 + e^z) for negatives, computed stably.
        return float(np.mean(np.logaddexp(0.0, -z) * labels + np.logaddexp(0.0, z) * (1 - labels)))

    low, high = math.log(0.05), math.log(20.0)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a, loss_b = loss(a), loss(b)
    for _ in range(80):
        if loss_a < loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = loss(a)
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = loss(b)
    return float(math.exp((low + high) / 2))


def bayes_oracle(
    *,
    labels: np.ndarray,
    measured_angles: np.ndarray,
    baby_keys: Sequence[str],
    decision_angle: float,
    scan_weights: np.ndarray | None = None,
) -> dict:
    """Accuracy of the Bayes rule applied to the true angles of these very scans and babies.

    The ceiling formulas give the expectation; this is what the optimal rule scores on the same
    held-out sample as the model, so the comparison is free of the sample's own luck. Per baby
    the rule thresholds the mean angle, weighted by ``scan_weights`` when given (the precision
    of each scan's angle, when the noise depends on the gestational week).
    """
    labels = np.asarray(labels)
    angles = np.asarray(measured_angles, dtype=np.float64)
    weights = np.ones_like(angles) if scan_weights is None else np.asarray(scan_weights, dtype=np.float64)
    per_scan = float(np.mean((angles > decision_angle) == (labels == 1)))
    keys, baby_labels, weighted_sums = aggregate_by_baby(baby_keys, labels, angles * weights)
    _, _, weight_sums = aggregate_by_baby(baby_keys, labels, weights)
    baby_angles = weighted_sums / weight_sums
    per_baby = float(np.mean((baby_angles > decision_angle) == (baby_labels == 1)))
    return {"per_scan_accuracy": per_scan, "per_baby_accuracy": per_baby, "babies": len(keys)}


def week_band(week: int | None) -> str:
    """The name of the band in WEEK_BANDS that ``week`` falls in (``"unknown"`` for None)."""
    if week is None:
        return UNKNOWN_WEEK_BAND
    for name, first, last in WEEK_BANDS:
        if (first is None or week >= first) and (last is None or week <= last):
            return name
    raise AssertionError(f"WEEK_BANDS leaves week {week} out.")  # pragma: no cover - bands are open-ended


def week_band_report(
    *,
    labels: np.ndarray,
    calibrated_logits: np.ndarray,
    weeks: Sequence[int | None],
    margin: float,
    min_gestational_week: int,
) -> dict:
    """Per scan, per band of gestational weeks: how good, how calibrated, how often answered.

    Each band has ``count`` (scans), ``accuracy`` (with its 95 % interval), ``ece``,
    ``mean_confidence`` (mean of max(p, 1 - p); above the accuracy means over-confident),
    ``coverage`` and ``accuracy_answered`` (scans with |p - 0.5| >= ``margin``, taken alone),
    and ``usable_share`` (the share of its scans at or above ``min_gestational_week``, i.e.
    used for predictions). Bands with no scans are left out; scans with no week form "unknown".
    """
    labels = np.asarray(labels)
    probabilities = sigmoid(np.asarray(calibrated_logits, dtype=np.float64))
    if len(weeks) != len(labels):
        raise ValueError("One week per scan, please.")
    names = [week_band(week) for week in weeks]
    report = {}
    for name in [band[0] for band in WEEK_BANDS] + [UNKNOWN_WEEK_BAND]:
        indices = [index for index, band in enumerate(names) if band == name]
        if not indices:
            continue
        band_labels, band_probabilities = labels[indices], probabilities[indices]
        correct = (band_probabilities >= 0.5) == (band_labels == 1)
        answered = np.abs(band_probabilities - 0.5) >= margin
        low, high = wilson_interval(int(correct.sum()), len(indices))
        report[name] = {
            "count": len(indices),
            "accuracy": float(correct.mean()),
            "accuracy_ci95": [low, high],
            "ece": expected_calibration_error(band_labels, band_probabilities),
            "mean_confidence": float(np.maximum(band_probabilities, 1 - band_probabilities).mean()),
            "coverage": float(answered.mean()),
            "accuracy_answered": float(correct[answered].mean()) if answered.any() else None,
            "usable_share": float(np.mean([is_scan_usable(weeks[i], min_gestational_week) for i in indices])),
        }
    return report


@dataclass(frozen=True)
class Baby:
    key: str
    label: int
    logits: np.ndarray  # calibrated logits of its usable scans


def usable_babies(
    *,
    labels: Sequence[int],
    calibrated_logits: Sequence[float],
    baby_keys: Sequence[str],
    weeks: Sequence[int | None] | None,
    min_gestational_week: int,
) -> tuple[list[Baby], int]:
    """Babies in key order with their usable scans' calibrated logits, and how many had none."""
    labels = np.asarray(labels)
    logits = np.asarray(calibrated_logits, dtype=np.float64)
    weeks = list(weeks) if weeks is not None else [None] * len(labels)
    grouped: dict[str, list[int]] = {}
    for index, key in enumerate(baby_keys):
        grouped.setdefault(key, []).append(index)
    babies, gated_out = [], 0
    for key in sorted(grouped):
        indices = grouped[key]
        usable = [i for i in indices if is_scan_usable(weeks[i], min_gestational_week)]
        if not usable:
            gated_out += 1
            continue
        babies.append(Baby(key=key, label=round(float(labels[indices].mean())), logits=logits[usable]))
    return babies, gated_out


def abstention_report(
    *,
    labels: np.ndarray,
    calibrated_logits: np.ndarray,
    baby_keys: Sequence[str],
    weeks: Sequence[int | None] | None,
    min_gestational_week: int,
    margin: float,
    stricter_margin: float,
    disagreement_threshold: float | None,
    margins: Sequence[float] = ABSTENTION_MARGINS,
    scale_for_scans: Callable[[int], float] | None = None,
) -> dict:
    """Per baby, the rule parents get: gate early scans, then answer or say "cannot tell".

    Keys: ``babies`` (all), ``babies_without_usable_scans`` (every scan below the minimum week:
    they get "too early", not an answer, and are left out of the rest), ``babies_considered``,
    ``accuracy_if_always_answered`` (the leaning side on every considered baby), the settings
    (``min_gestational_week``, ``margin``, ``stricter_margin``, ``disagreement_threshold``), and
    one row each for ``at_margin``, ``at_stricter_margin`` and every margin in ``by_margin``
    (the disagreement check applies to all of them, so margin 0 shows it alone). A row has
    ``answered``, ``coverage`` (answered / considered = 1 - ``abstention_rate``),
    ``accuracy_answered`` and its 95 % interval, the number of ``cannot_tell_uncertain`` and
    ``cannot_tell_scans_disagree`` babies, and ``accuracy_if_forced_on_cannot_tell`` (how often the
    leaning side would have been right on the babies it declined: low is what abstention is for).
    ``scale_for_scans`` maps a baby's number of usable scans to its per-baby scale (see
    ``decide_for_baby``); without it the plain mean is used.
    """
    usable, gated_out = usable_babies(
        labels=labels,
        calibrated_logits=calibrated_logits,
        baby_keys=baby_keys,
        weeks=weeks,
        min_gestational_week=min_gestational_week,
    )
    babies = [(baby.label, baby.logits) for baby in usable]

    def scale(values) -> float:
        return 1.0 if scale_for_scans is None else scale_for_scans(len(values))

    def row(row_margin: float) -> dict:
        decisions = [
            (
                label,
                decide_for_baby(
                    values,
                    margin=row_margin,
                    disagreement_threshold=disagreement_threshold,
                    scale=scale(values),
                ),
            )
            for label, values in babies
        ]
        right = [(decision.leaning == MALE) == (label == 1) for label, decision in decisions]
        answered = [ok for ok, (_, decision) in zip(right, decisions, strict=True) if decision.answered]
        declined = [ok for ok, (_, decision) in zip(right, decisions, strict=True) if not decision.answered]
        low, high = wilson_interval(sum(answered), len(answered))
        considered = len(decisions)
        return {
            "margin": row_margin,
            "answered": len(answered),
            "coverage": len(answered) / considered if considered else None,
            "abstention_rate": 1 - len(answered) / considered if considered else None,
            "accuracy_answered": sum(answered) / len(answered) if answered else None,
            "accuracy_answered_ci95": [low, high],
            "cannot_tell_uncertain": sum(decision.reason == UNCERTAIN for _, decision in decisions),
            "cannot_tell_scans_disagree": sum(decision.reason == SCANS_DISAGREE for _, decision in decisions),
            "accuracy_if_forced_on_cannot_tell": sum(declined) / len(declined) if declined else None,
        }

    forced = [
        (decide_for_baby(values, margin=0.0, disagreement_threshold=None).leaning == MALE) == (label == 1)
        for label, values in babies
    ]
    return {
        "unit": "baby",
        "min_gestational_week": min_gestational_week,
        "margin": margin,
        "stricter_margin": stricter_margin,
        "disagreement_threshold": disagreement_threshold,
        "babies": len(babies) + gated_out,
        "babies_without_usable_scans": gated_out,
        "babies_considered": len(babies),
        "accuracy_if_always_answered": sum(forced) / len(forced) if forced else None,
        "at_margin": row(margin),
        "at_stricter_margin": row(stricter_margin),
        "by_margin": [row(value) for value in sorted({*margins, margin, stricter_margin})],
    }
