"""Template helpers for the prediction part of a baby's card and the outcome pages."""

from dataclasses import dataclass

from django import template
from django.conf import settings

from instagender.templating import TemplateFields
from ml import gate
from predictions.selectors import baby_prediction_status as _baby_prediction_status
from predictions.version_metrics import VersionMetrics

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
def honesty_tables(metrics) -> dict:
    """The per-week-band and the abstention tables (``VersionMetrics.honesty_tables``)."""
    return VersionMetrics(metrics).honesty_tables()


@register.simple_tag
def model_version_honesty(version) -> dict:
    """``{% model_version_honesty version as honesty %}``: see :func:`honesty_tables`."""
    return honesty_tables(version.metrics)


# --- Whether a parent may be shown the model's percentages (the prediction card) ----------------
@dataclass(frozen=True)
class ModelTrust(TemplateFields):
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


def model_version_trust(version) -> ModelTrust:
    """How far the card may trust ``version``'s figures: see :class:`ModelTrust`."""
    # A dashboard's versions come with the metrics the card needs only (``card_metrics``).
    measured = VersionMetrics(version.card_metrics if hasattr(version, "card_metrics") else version.metrics)
    per_baby = measured.per_baby()
    if per_baby.lower_bound is None:
        return ModelTrust(ModelTrust.UNMEASURED)
    if per_baby.lower_bound <= gate.MIN_ACCURACY_LOWER_BOUND:
        return ModelTrust(
            ModelTrust.LOW,
            accuracy=per_baby.accuracy,
            babies=per_baby.babies,
            lower_bound=per_baby.lower_bound,
        )
    coverage = measured.coverage(
        margin=settings.PREDICTION_ABSTAIN_MARGIN,
        disagreement_threshold=settings.PREDICTION_DISAGREEMENT_THRESHOLD,
        min_gestational_week=settings.PREDICTION_MIN_GESTATIONAL_WEEK,
    )
    return ModelTrust(
        ModelTrust.MEASURED,
        accuracy=per_baby.accuracy,
        babies=per_baby.babies,
        lower_bound=per_baby.lower_bound,
        coverage=coverage.coverage if coverage else None,
        accuracy_answered=coverage.accuracy_answered if coverage else None,
        coverage_babies=coverage.babies if coverage else None,
    )


@register.simple_tag(name="model_version_trust")
def model_version_trust_tag(version) -> ModelTrust:
    """``{% model_version_trust version as trust %}``: see :func:`model_version_trust`.

    Worked out once per version object: the dashboard's cards share one instance per version
    (``prediction_latest_prefetch``), so twenty babies read the metrics once, not twenty times.
    """
    trust = getattr(version, "_card_trust", None)
    if trust is None:
        trust = model_version_trust(version)
        version._card_trust = trust
    return trust


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
