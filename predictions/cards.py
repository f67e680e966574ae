"""What the prediction panel of a baby's card shows, worked out once per baby in Python.

The panel (``templates/jinja2/predictions/prediction_panel.jinja``) is on every dashboard card;
its sentences stay in the template, and this module gives it the values, the dates and the
model's figures ready to print (why: ``babies.cards``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from instagender.dates import long_date_and_time
from instagender.templating import TemplateFields
from predictions.models import ModelVersion, Prediction
from predictions.selectors import LOOK_UP, BabyPredictionStatus, baby_prediction_status
from predictions.templatetags.prediction_tags import (
    ModelTrust,
    cannot_tell_explanation,
    model_trust_warning,
    model_version_trust_tag,
    whole_percent,
)


@dataclass(frozen=True)
class PredictionPanel(TemplateFields):
    status: BabyPredictionStatus
    prediction: Prediction | None
    version: ModelVersion | None
    trust: ModelTrust | None
    # settings.PREDICTION_MIN_GESTATIONAL_WEEK, read at render time (tests override it).
    min_week: int
    created_at: str  # "3 May 2027, 14:05"
    answer: str  # "Girl", "Boy" or "Cannot tell yet"
    # The sentences the tags in ``prediction_tags`` make (empty where they do not apply).
    cannot_tell_explanation: str
    trust_warning: str
    # The model's figures as whole percents ("86"), for a model whose trust quotes them.
    coverage_percent: str
    accuracy_answered_percent: str
    accuracy_percent: str
    # ``status.left_out`` with each scan's upload time as text ("uploaded").
    left_out: list[dict]


def prediction_panel(*, baby, scans=None, prediction=LOOK_UP) -> PredictionPanel:
    """The panel for ``baby``; ``scans`` are its current scans (``baby.scans.all()`` if None),
    ``prediction`` its latest one (looked up if not given)."""
    status = baby_prediction_status(baby=baby, scans=scans, prediction=prediction)
    prediction = status.prediction
    version = prediction.model_version if prediction else None
    trust = model_version_trust_tag(version) if version else None
    explanation = warning = ""
    if prediction is not None:
        if prediction.is_cannot_tell:
            explanation = cannot_tell_explanation(prediction, baby, trust)
        if not trust.is_measured:
            warning = model_trust_warning(trust, prediction)
    left_out = [
        {**entry, "uploaded": long_date_and_time(entry["scan"].uploaded_at) if entry["scan"] else ""}
        for entry in status.left_out
    ]
    return PredictionPanel(
        status=status,
        prediction=prediction,
        version=version,
        trust=trust,
        min_week=settings.PREDICTION_MIN_GESTATIONAL_WEEK,
        created_at=long_date_and_time(prediction.created_at) if prediction else "",
        answer=prediction.get_answer_display() if prediction else "",
        cannot_tell_explanation=explanation,
        trust_warning=warning,
        coverage_percent=whole_percent(trust.coverage) if trust else "",
        accuracy_answered_percent=whole_percent(trust.accuracy_answered) if trust else "",
        accuracy_percent=whole_percent(trust.accuracy) if trust else "",
        left_out=left_out,
    )
