"""The quality gate: no model version is switched on unless it has earned it.

The rule, on the version's evaluation babies (``metrics["evaluation"]``, see
``ml.evaluation``; for synthetic versions the fixed evaluation set of
``predictions.evaluation_set``, babies no version ever trained on):

1. **Better than chance.** The lower end of the 95 % Wilson interval of its per-baby accuracy
   must be above :data:`MIN_ACCURACY_LOWER_BOUND` (60 %). A coin flip on 3,000 babies has a lower
   bound near 48 %; a version that always says "girl" scores the share of girls.
2. **Not worse than the live version.** When another version is active, both must have been
   evaluated on the same babies (the same ``babies_digest``), and McNemar's exact test on the
   babies exactly one of them got right must not show the candidate worse: refused when the
   one-sided p-value is below :data:`MCNEMAR_ALPHA` (5 %). Versions that cannot be paired are
   refused too: "not comparable" is not "not worse".
3. **Its probabilities not clearly less honest than the live version's.** Parents are shown a
   probability, and the product promises it means what it says. On the same babies, the
   per-baby expected calibration error (ECE, the count-weighted gap between the probability
   shown and how often it came true, as ``ml.evaluation`` reports it) of the candidate minus
   the live version's is bootstrapped over babies (paired: both resampled alike); refused when
   even the one-sided 95 % lower bound of that increase is above
   :data:`MAX_ECE_INCREASE` (2 points). The tolerance keeps differences a parent would not
   notice, and ordinary retraining noise, from blocking a version; the bound keeps a chance
   draw of babies from blocking one.

   Why this rule: a model trained on many wrong labels (parents' wrong answers) keeps most of
   its accuracy, because random label noise barely moves the decision boundary, so rule 2 lets
   it through; but its probabilities are squashed toward 50 % (fitted to labels of which a
   share is wrong, its temperature and per-baby scale learn that share of doubt), so it tells
   parents less certainty than it has earned. That is measurable on the clean evaluation
   babies, and it is the harm the product promises to avoid. Measured on the learning-loop
   simulation (1,000 evaluation babies): when the review corrected few of them, a round fed
   40 % wrong answers raised the per-baby ECE from 0.071 to 0.121 at the same accuracy (90.0 %
   and 90.9 %; bound of the increase +0.036, refused); when the review caught most, from 0.026
   to 0.039 (bound -0.002, passed: rule 4 is what stops that round).

   The comparison needs each baby's label and probability (``baby_labels``,
   ``baby_probabilities``, stored with every evaluation by ``ml.evaluation.evaluate_babies``).
   An older evaluation without them is re-measured where possible
   (``predictions.services.model_version_gate``); where it cannot be, calibration is not
   compared and the verdict's details say so (no refusal: rules 1-2 still apply, and the
   evaluation that lacks them predates this rule).

4. **Not trained on a flood of wrong answers.** A frozen set's data card estimates the share of
   wrong answers among its parents' labels, from label scores of a model that never trained on
   them, with that model's measured accuracy (``curation.services.training_set_label_errors``,
   ``ml.label_noise``); in a running loop, the answers that arrived since the live version's
   set. Refused when even the one-sided
   95 % lower bound of that share is above :data:`MAX_LABEL_ERROR_RATE` (25 %). Parents are
   mistaken now and then (the loop is simulated with 10 %); a quarter or more wrong is a fault
   (a swapped button, a bad import, abuse) whose cause a person should find before a model
   learns from the batch, even where the review corrected part of it and the model measures
   no worse: the evaluation set measures the model, not where its labels came from, and a
   fault that flipped these labels may not be random. This rule judges the data, and its
   reason says so. A set without the estimate (too few babies scored by a model that never
   saw them, or frozen before it was recorded) is not judged by it.

An operator may override a refusal with a reason (``predictions.services.model_version_activate``);
the override is written to the audit log with the gate's verdict. Django-free; NumPy for the
bootstrap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ml.metrics import reliability_bin_index, wilson_interval

MIN_ACCURACY_LOWER_BOUND = 0.60
MCNEMAR_ALPHA = 0.05
# Rule 3: how much worse the per-baby ECE may be than the live version's (absolute, 0-1 scale),
# judged on the one-sided 95 % lower bound of a paired bootstrap over babies.
MAX_ECE_INCREASE = 0.02
ECE_BINS = 10
CALIBRATION_BOOTSTRAP_SAMPLES = 2000
CALIBRATION_BOOTSTRAP_SEED = 0
# Rule 4: the share of wrong answers among a training set's parents' labels that refuses it
# (judged on the one-sided 95 % lower bound of ``ml.label_noise``'s estimate).
MAX_LABEL_ERROR_RATE = 0.25


@dataclass(frozen=True)
class GateVerdict:
    passed: bool
    reasons: list[str] = field(default_factory=list)
    details: dict = field(default_factory=dict)

    @property
    def message(self) -> str:
        if self.passed:
            return "It passes the quality gate."
        return " ".join(self.reasons)


def wilson_lower_bound(successes: int, total: int) -> float:
    """The lower end of the 95 % Wilson interval (``ml.metrics.wilson_interval``); 0 with no babies."""
    return wilson_interval(successes, total)[0]


def mcnemar_worse_p_value(candidate_only: int, active_only: int) -> float:
    """One-sided exact McNemar: P(candidate_only <= observed) if both were equally good.

    ``candidate_only``: babies only the candidate got right; ``active_only``: only the live one.
    """
    discordant = candidate_only + active_only
    if discordant == 0:
        return 1.0
    # Exact integers, then one division: 2**n overflows a float beyond about 1,000 discordant babies.
    return float(Fraction(sum(math.comb(discordant, k) for k in range(candidate_only + 1)), 2**discordant))


def correct_vector(evaluation: dict | None) -> str | None:
    """The evaluation's right/wrong string per baby ("1"/"0"), or ``None`` if it has none."""
    value = (evaluation or {}).get("correct")
    return value if isinstance(value, str) and value and set(value) <= {"0", "1"} else None


def baby_probabilities(evaluation: dict | None, babies: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The evaluation's label (1 male) and probability of male per baby, in the order of
    ``correct``, or ``None`` unless it has both, valid, for exactly ``babies`` babies."""
    evaluation = evaluation or {}
    labels, values = evaluation.get("baby_labels"), evaluation.get("baby_probabilities")
    if not isinstance(labels, str) or not isinstance(values, list):
        return None
    if not len(labels) == len(values) == babies or set(labels) - {"0", "1"}:
        return None
    try:
        probabilities = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if probabilities.ndim != 1 or not np.isfinite(probabilities).all():
        return None
    if (probabilities < 0).any() or (probabilities > 1).any():
        return None
    return (np.frombuffer(labels.encode(), dtype=np.uint8) == ord("1")).astype(np.float64), probabilities


def _binned_ece(bin_of: np.ndarray, probabilities: np.ndarray, labels: np.ndarray, index) -> float:
    """``ml.metrics.expected_calibration_error`` of the babies at ``index`` (repeats allowed),
    from bins worked out once (``ml.metrics.reliability_bin_index``): the same figure (a bin's
    count-weighted gap is its summed probability minus its summed labels, over all babies), fast
    enough to bootstrap."""
    which = bin_of[index]
    predicted = np.bincount(which, weights=probabilities[index], minlength=ECE_BINS)
    observed = np.bincount(which, weights=labels[index], minlength=ECE_BINS)
    return float(np.abs(predicted - observed).sum() / len(index))


def calibration_comparison(
    labels: np.ndarray, candidate_probabilities: np.ndarray, live_probabilities: np.ndarray
) -> dict:
    """Per-baby ECE of both versions on the same babies, and the paired bootstrap of the increase.

    ``ece_increase_lower_bound`` is the 5th percentile of candidate ECE minus live ECE over
    :data:`CALIBRATION_BOOTSTRAP_SAMPLES` resamples of babies, both versions on the same
    resample (seeded: the same verdict every time), i.e. a one-sided 95 % lower bound.
    """
    everyone = np.arange(len(labels))
    candidate_bins = reliability_bin_index(candidate_probabilities, ECE_BINS)
    live_bins = reliability_bin_index(live_probabilities, ECE_BINS)

    def increase(index) -> float:
        return _binned_ece(candidate_bins, candidate_probabilities, labels, index) - _binned_ece(
            live_bins, live_probabilities, labels, index
        )

    rng = np.random.default_rng(CALIBRATION_BOOTSTRAP_SEED)
    increases = [
        increase(rng.integers(0, len(labels), len(labels))) for _ in range(CALIBRATION_BOOTSTRAP_SAMPLES)
    ]
    candidate_ece = _binned_ece(candidate_bins, candidate_probabilities, labels, everyone)
    live_ece = _binned_ece(live_bins, live_probabilities, labels, everyone)
    return {
        "candidate_ece": candidate_ece,
        "live_ece": live_ece,
        "ece_increase": candidate_ece - live_ece,
        "ece_increase_lower_bound": float(np.percentile(increases, 5)),
        "max_ece_increase": MAX_ECE_INCREASE,
    }


def check(
    candidate: dict | None, active: dict | None = None, *, training_labels: dict | None = None
) -> GateVerdict:
    """Judge a candidate's evaluation, against the live version's on the same babies if any.

    ``candidate`` and ``active`` are ``metrics["evaluation"]`` blocks (``None``: never evaluated;
    ``active=None`` with no live version means there is nothing to compare with).
    ``training_labels`` is the ``label_errors`` section of its training set's data card (rule 4;
    ``None``: not trained on a frozen set, or one without it).
    """
    correct = correct_vector(candidate)
    if correct is None:
        return GateVerdict(
            False,
            ["It has never been measured on held-out evaluation babies (run manage.py evaluate_model)."],
        )
    right, total = correct.count("1"), len(correct)
    lower = wilson_lower_bound(right, total)
    details = {
        "rule": (
            f"per-baby accuracy: the lower 95% bound must be above {MIN_ACCURACY_LOWER_BOUND:.0%}; "
            f"not worse than the live version by McNemar's exact test at {MCNEMAR_ALPHA:.0%}; "
            f"per-baby ECE not above the live version's by more than {MAX_ECE_INCREASE:.2f} "
            "(one-sided 95% lower bound, paired bootstrap over babies)"
        ),
        "babies": total,
        "accuracy": right / total,
        "accuracy_lower_bound": lower,
    }
    reasons = []
    if lower <= MIN_ACCURACY_LOWER_BOUND:
        reasons.append(
            f"Its per-baby accuracy is {right / total:.1%} on {total} evaluation babies (95% lower bound "
            f"{lower:.1%}), not clearly above chance: the bound must be above {MIN_ACCURACY_LOWER_BOUND:.0%}."
        )
    if active is not None:
        active_correct = correct_vector(active)
        same_babies = (
            active_correct is not None
            and candidate.get("babies_digest")
            and candidate.get("babies_digest") == active.get("babies_digest")
            and len(active_correct) == total
        )
        if not same_babies:
            reasons.append(
                "It cannot be compared with the live version on the same evaluation babies, so it is "
                "not shown to be at least as good."
            )
        else:
            pairs = list(zip(correct, active_correct, strict=True))
            candidate_only = pairs.count(("1", "0"))
            active_only = pairs.count(("0", "1"))
            p_value = mcnemar_worse_p_value(candidate_only, active_only)
            details["paired"] = {
                "candidate_only_right": candidate_only,
                "live_only_right": active_only,
                "live_accuracy": active_correct.count("1") / total,
                "p_value_worse": p_value,
            }
            if p_value < MCNEMAR_ALPHA:
                reasons.append(
                    f"It is worse than the live version on the same {total} babies: it alone is right for "
                    f"{candidate_only}, the live version alone for {active_only} (McNemar p = {p_value:.3g})."
                )
            reasons.extend(_calibration_reasons(candidate, active, total, details))
    reasons.extend(_training_label_reasons(training_labels, details))
    return GateVerdict(not reasons, reasons, details)


def _training_label_reasons(training_labels: dict | None, details: dict) -> list[str]:
    """Rule 4 on the training set's estimated share of wrong answers; fills ``details``."""
    if not isinstance(training_labels, dict) or not training_labels.get("estimated"):
        return []
    try:
        rate, lower, babies = (
            float(training_labels["rate"]),
            float(training_labels["lower_bound"]),
            int(training_labels["babies"]),
        )
    except (KeyError, TypeError, ValueError):
        return []
    details["training_labels"] = {
        "estimated_wrong_share": rate,
        "lower_bound": lower,
        "babies": babies,
        "max_wrong_share": MAX_LABEL_ERROR_RATE,
    }
    if lower <= MAX_LABEL_ERROR_RATE:
        return []
    return [
        f"Its training set took in parents' answers of which an estimated {rate:.0%} are wrong (on {babies} "
        f"babies new to the model that scored them; one-sided 95% lower bound {lower:.0%}, above the "
        f"{MAX_LABEL_ERROR_RATE:.0%} allowed): a flood of wrong answers, whose cause a person should find "
        "before a model learns from them. This judges its data, not its measured quality: override with a "
        "reason once the labels are understood, or freeze a set without them."
    ]


def _calibration_reasons(candidate: dict, active: dict, total: int, details: dict) -> list[str]:
    """Rule 3 on two evaluations already known to cover the same babies; fills ``details``."""
    candidate_babies = baby_probabilities(candidate, total)
    live_babies = baby_probabilities(active, total)
    if candidate_babies is None or live_babies is None:
        missing = "its" if candidate_babies is None else "the live version's"
        details["calibration"] = {
            "compared": False,
            "why": f"{missing} evaluation has no per-baby probabilities (measured before they were stored)",
        }
        return []
    (labels, candidate_probabilities), (live_labels, live_probabilities) = candidate_babies, live_babies
    if not np.array_equal(labels, live_labels):
        details["calibration"] = {"compared": False, "why": "the evaluations disagree on the babies' labels"}
        return ["Its evaluation and the live version's disagree on the babies' labels: not comparable."]
    comparison = calibration_comparison(labels, candidate_probabilities, live_probabilities)
    details["calibration"] = {"compared": True, **comparison}
    if comparison["ece_increase_lower_bound"] <= MAX_ECE_INCREASE:
        return []
    return [
        f"Its probabilities are less honest than the live version's on the same {total} babies: per-baby "
        f"ECE {comparison['candidate_ece']:.3f} against {comparison['live_ece']:.3f} "
        f"(+{comparison['ece_increase']:.3f}; one-sided 95% lower bound "
        f"+{comparison['ece_increase_lower_bound']:.3f}, more than the {MAX_ECE_INCREASE:.2f} allowed): "
        "the certainty it would tell parents does not match how often it is right, as happens to a "
        "model trained on many wrong labels."
    ]
