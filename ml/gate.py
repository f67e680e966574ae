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

An operator may override a refusal with a reason (``predictions.services.model_version_activate``);
the override is written to the audit log with the gate's verdict. NumPy-free and Django-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

from ml.metrics import wilson_interval

MIN_ACCURACY_LOWER_BOUND = 0.60
MCNEMAR_ALPHA = 0.05


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


def check(candidate: dict | None, active: dict | None = None) -> GateVerdict:
    """Judge a candidate's evaluation, against the live version's on the same babies if any.

    ``candidate`` and ``active`` are ``metrics["evaluation"]`` blocks (``None``: never evaluated;
    ``active=None`` with no live version means there is nothing to compare with).
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
            f"not worse than the live version by McNemar's exact test at {MCNEMAR_ALPHA:.0%}"
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
    return GateVerdict(not reasons, reasons, details)
