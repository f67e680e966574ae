"""Template helpers for the prediction part of a baby's card and the outcome pages."""

from django import template
from django.conf import settings

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
CANNOT_TELL_EXPLANATIONS = {
    "scans_disagree": (
        "{name}'s scans point different ways: one looks like a girl and another like a boy, which "
        "usually means one picture does not show the right view. A clear side (profile) view of the "
        "baby, or a scan from a later week, may give an answer."
    ),
    "uncertain": (
        "The scans do not show clearly enough whether {name} is a girl or a boy: the model's answer was "
        "too close to 50/50 to be worth giving. A clear side (profile) view of the baby, or a scan from "
        "a later week, may give an answer."
    ),
}


@register.simple_tag
def cannot_tell_explanation(prediction, baby) -> str:
    """Why a prediction is "cannot tell yet", with the suggestion (autoescaped by the template)."""
    text = CANNOT_TELL_EXPLANATIONS.get(prediction.abstain_reason, CANNOT_TELL_EXPLANATIONS["uncertain"])
    return text.format(name=baby.display_name)


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
