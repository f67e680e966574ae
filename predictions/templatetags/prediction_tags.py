"""Template helpers for the prediction part of a baby's card and the outcome pages."""

from django import template

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
