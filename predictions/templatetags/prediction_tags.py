"""Template helpers for the prediction part of a baby's card and the outcome pages."""

import math
from dataclasses import dataclass

from django import template
from django.conf import settings

from ml import gate
from ml.evaluation import risk_coverage_row
from predictions.selectors import baby_prediction_status as _baby_prediction_status

register = template.Library()


@register.simple_tag
def baby_prediction_status(baby):
    """``{% baby_prediction_status baby as status %}``: see ``selectors.BabyPredictionStatus``."""
    return _baby_prediction_status(baby=baby)


@register.filter
def whole_percent(value) -> str:
    """0.862 → "86"; empty for a missing number (a model without metrics)."""
    if value is None or value == "":
        return ""
    try:
        return str(round(float(value) * 100))
    except (TypeError, ValueError):
        return ""


@register.filter
def other_sex_label(prediction) -> str:
    """ "boy" for a prediction of girl and the other way round (lower case, for sentences)."""
    return "boy" if prediction.predicted_sex == "female" else "girl"


@register.simple_tag
def minimum_gestational_week() -> int:
    """``settings.PREDICTION_MIN_GESTATIONAL_WEEK``, read at render time (tests override it)."""
    return settings.PREDICTION_MIN_GESTATIONAL_WEEK


# Why "cannot tell yet", and what would help. Plain sentences: the parent was told nothing else.
CANNOT_TELL_REASONS = {
    "scans_disagree": (
        "{name}'s scans point different ways: one looks like a girl and another like a boy, which "
        "usually means one picture does not show the right view."
    ),
    "uncertain": (
        "The scans do not show clearly enough whether {name} is a girl or a boy: the model's answer was "
        "too close to 50/50 to be worth giving."
    ),
}
# What would help depends on the model: a better scan only helps a model worth asking.
CANNOT_TELL_SUGGESTIONS = {
    "measured": "A clear side (profile) view of the baby, or a scan from a later week, may give an answer.",
    "low": "This model is not good enough to tell, so another scan would only give a guess.",
    "unmeasured": (
        "Nobody knows whether this model is good enough to tell, so another scan would only give a guess."
    ),
}


@register.simple_tag
def cannot_tell_explanation(prediction, baby, trust=None) -> str:
    """Why a prediction is "cannot tell yet", and what would help (autoescaped by the template).

    ``trust`` (:func:`model_version_trust`): without it, the model is taken as measured.
    """
    reason = CANNOT_TELL_REASONS.get(prediction.abstain_reason, CANNOT_TELL_REASONS["uncertain"])
    level = trust.level if trust is not None else "measured"
    suggestion = CANNOT_TELL_SUGGESTIONS.get(level, CANNOT_TELL_SUGGESTIONS["unmeasured"])
    return f"{reason.format(name=baby.display_name)} {suggestion}"


# --- What a model version's metrics say about honesty (staff admin, parents' card) ---------------
def _number(value) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def honesty_tables(metrics) -> dict:
    """The per-week-band and the abstention tables from ``ModelVersion.metrics``, read defensively.

    The training pipeline writes ``week_bands`` and ``abstention`` (``predictions.training.pipeline``);
    versions trained before it have neither, so every missing piece is ``None`` and the template
    says "not measured" rather than failing.
    """
    metrics = metrics if isinstance(metrics, dict) else {}
    week_bands = metrics.get("week_bands") if isinstance(metrics.get("week_bands"), dict) else {}
    bands = []
    for name, row in (week_bands.get("bands") or {}).items():
        if not isinstance(row, dict):
            continue
        bands.append(
            {
                "name": name,
                "count": row.get("count"),
                "accuracy": _number(row.get("accuracy")),
                "coverage": _number(row.get("coverage")),
                "accuracy_answered": _number(row.get("accuracy_answered")),
                "ece": _number(row.get("ece")),
            }
        )
    abstention = metrics.get("abstention") if isinstance(metrics.get("abstention"), dict) else {}
    margins = [row for row in abstention.get("by_margin") or [] if isinstance(row, dict)]
    at_margin = abstention.get("at_margin") if isinstance(abstention.get("at_margin"), dict) else {}
    return {
        "bands": bands,
        "band_margin": _number(week_bands.get("margin")),
        "min_gestational_week": week_bands.get(
            "min_gestational_week", abstention.get("min_gestational_week")
        ),
        "abstention": abstention,
        "at_margin": at_margin,
        "by_margin": margins,
        "coverage": _number(at_margin.get("coverage")),
        "accuracy_answered": _number(at_margin.get("accuracy_answered")),
    }


@register.simple_tag
def model_version_honesty(version) -> dict:
    """``{% model_version_honesty version as honesty %}``: see :func:`honesty_tables`."""
    return honesty_tables(version.metrics)


# --- Whether a parent may be shown the model's percentages (the prediction card) ----------------
@dataclass(frozen=True)
class ModelTrust:
    """What the card may say about a model version, read from its ``metrics`` at render time.

    ``level`` is "measured" when its per-baby accuracy on babies it had not seen is clearly above
    chance by the quality gate's own rule (``ml.gate``: the lower end of the 95 %
    Wilson interval above ``MIN_ACCURACY_LOWER_BOUND``), "low" when it was measured but is not,
    and "unmeasured" when nothing says how it does. Only a measured version's percentages are
    shown: a "77 % likely" beside a near-chance model would claim what nobody has shown.

    ``coverage`` and ``accuracy_answered`` are the risk–coverage row for the cannot-tell rule in
    force now (``settings.PREDICTION_ABSTAIN_MARGIN`` and ``PREDICTION_DISAGREEMENT_THRESHOLD``),
    ``None`` when that rule was not measured; ``coverage_babies`` is how many babies the row counts.
    """

    MEASURED = "measured"
    LOW = "low"
    UNMEASURED = "unmeasured"

    level: str
    accuracy: float | None = None
    babies: int | None = None
    lower_bound: float | None = None
    coverage: float | None = None
    accuracy_answered: float | None = None
    coverage_babies: int | None = None

    @property
    def is_measured(self) -> bool:
        return self.level == self.MEASURED

    @property
    def quotes_coverage(self) -> bool:
        return self.is_measured and self.coverage is not None and self.accuracy_answered is not None


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _proportion(value) -> float | None:
    number = _number(value)
    return number if number is not None and math.isfinite(number) and 0 <= number <= 1 else None


def _per_baby_measurement(metrics: dict) -> tuple[float | None, int | None, float | None]:
    """(accuracy, babies, Wilson lower bound) of the per-baby accuracy on unseen babies.

    The evaluation (``metrics["evaluation"]``) first, counted as the gate counts it (its
    ``correct`` string); versions trained before it have only ``metrics["calibrated"]``, judged by
    the same rule when it says how many babies. A figure without a count bounds nothing.
    """
    evaluation = metrics.get("evaluation") if isinstance(metrics.get("evaluation"), dict) else {}
    correct = evaluation.get("correct")
    if isinstance(correct, str) and correct and set(correct) <= {"0", "1"}:
        right, total = correct.count("1"), len(correct)
        return right / total, total, gate.wilson_lower_bound(right, total)
    calibrated = metrics.get("calibrated") if isinstance(metrics.get("calibrated"), dict) else {}
    for per_baby in (evaluation.get("per_baby"), calibrated.get("per_baby")):
        if not isinstance(per_baby, dict):
            continue
        accuracy, total = _proportion(per_baby.get("accuracy")), _count(per_baby.get("count"))
        if accuracy is not None and total:
            return accuracy, total, gate.wilson_lower_bound(round(accuracy * total), total)
        interval = per_baby.get("accuracy_wilson95")
        if accuracy is not None and isinstance(interval, list | tuple) and interval:
            lower = _proportion(interval[0])
            if lower is not None:
                return accuracy, total, lower
    return None, None, None


def _same_setting(measured, current) -> bool:
    if measured is None or current is None:
        return measured is None and current is None
    measured, current = _number(measured), _number(current)
    return measured is not None and current is not None and math.isclose(measured, current, abs_tol=1e-9)


def _coverage_now(metrics: dict) -> tuple[float | None, float | None, int | None]:
    """(coverage, accuracy when answered, babies) for the cannot-tell rule configured now.

    From the evaluation's risk–coverage curve (an older version's ``metrics["abstention"]`` has
    the same shape). Nothing when the margin in force was not measured, or when the curve was
    measured with another disagreement threshold or minimum week: its figures would describe a
    rule parents are not getting.
    """
    evaluation = metrics.get("evaluation") if isinstance(metrics.get("evaluation"), dict) else None
    report = evaluation if evaluation is not None else metrics
    abstention = report.get("abstention") if isinstance(report.get("abstention"), dict) else {}
    rule = report.get("rule") if isinstance(report.get("rule"), dict) else {}
    if not isinstance(abstention.get("by_margin"), list):
        return None, None, None
    settings_now = (
        ("disagreement_threshold", settings.PREDICTION_DISAGREEMENT_THRESHOLD),
        ("min_gestational_week", settings.PREDICTION_MIN_GESTATIONAL_WEEK),
    )
    for key, current in settings_now:
        source = abstention if key in abstention else rule
        if key not in source:
            if key == "disagreement_threshold":
                return None, None, None  # unknown: the curve may describe another rule
            continue
        if not _same_setting(source[key], current):
            return None, None, None
    try:
        row = risk_coverage_row({"abstention": abstention}, float(settings.PREDICTION_ABSTAIN_MARGIN))
    except (KeyError, TypeError):
        row = None
    if not isinstance(row, dict):
        return None, None, None
    coverage, accuracy = _proportion(row.get("coverage")), _proportion(row.get("accuracy_answered"))
    if coverage is None or accuracy is None:
        return None, None, None
    per_baby = report.get("per_baby") if isinstance(report.get("per_baby"), dict) else {}
    babies = _count(abstention.get("babies_considered")) or _count(per_baby.get("count"))
    if babies is None and _count(abstention.get("babies")):
        babies = abstention["babies"] - (_count(abstention.get("babies_without_usable_scans")) or 0)
    return coverage, accuracy, babies


def model_version_trust(version) -> ModelTrust:
    """How far the card may trust ``version``'s figures: see :class:`ModelTrust`."""
    metrics = version.metrics if isinstance(version.metrics, dict) else {}
    accuracy, babies, lower = _per_baby_measurement(metrics)
    if lower is None:
        return ModelTrust(ModelTrust.UNMEASURED)
    if lower <= gate.MIN_ACCURACY_LOWER_BOUND:
        return ModelTrust(ModelTrust.LOW, accuracy=accuracy, babies=babies, lower_bound=lower)
    coverage, accuracy_answered, coverage_babies = _coverage_now(metrics)
    return ModelTrust(
        ModelTrust.MEASURED,
        accuracy=accuracy,
        babies=babies,
        lower_bound=lower,
        coverage=coverage,
        accuracy_answered=accuracy_answered,
        coverage_babies=coverage_babies,
    )


@register.simple_tag(name="model_version_trust")
def model_version_trust_tag(version) -> ModelTrust:
    """``{% model_version_trust version as trust %}``: see :func:`model_version_trust`."""
    return model_version_trust(version)


# Said instead of a percentage when the model has not earned one.
TRUST_WARNINGS = {
    ModelTrust.LOW: "This model has not been shown to do better than a coin toss on babies it had not seen",
    ModelTrust.UNMEASURED: "This model's accuracy has never been measured on babies it had not seen",
}


@register.simple_tag
def model_trust_warning(trust: ModelTrust, prediction) -> str:
    """The plain sentence for a low or unmeasured model; empty for a measured one."""
    warning = TRUST_WARNINGS.get(trust.level)
    if warning is None:
        return ""
    return f"{warning}." if prediction.is_cannot_tell else f"{warning}, so treat this as a guess."


def prediction_headline(prediction) -> str:
    """The answer in one phrase, with a percentage only when the model has earned one.

    "Girl — 77 % likely" from a measured model; "leaning girl, a guess" from a model whose
    accuracy is near chance or was never measured (the flash message, the outcome page and the
    outcome e-mail use it; the card says more).
    """
    sex = prediction.get_predicted_sex_display()
    if model_version_trust(prediction.model_version).level == ModelTrust.MEASURED:
        return f"{sex} — {prediction.confidence_percent} % likely"
    return f"leaning {sex.lower()}, a guess (this model has not been shown to beat a coin toss)"


@register.simple_tag(name="prediction_headline")
def prediction_headline_tag(prediction) -> str:
    """``{% prediction_headline prediction %}``: see :func:`prediction_headline`."""
    return prediction_headline(prediction)
