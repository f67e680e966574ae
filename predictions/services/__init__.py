"""Writes for predictions, one module per sub-domain; every name callers use is re-exported here.

- ``model_versions``: a version created from a training run's files, the quality gate, activation
  (with its history and audit entries).
- ``prediction``: one answer per baby from its usable scans (``prediction_create``).
- ``outcomes``: the outcome e-mail's claim, send, release and staff retry, and parents' answers.
- ``synthetic``: synthetic babies for demos and benchmarks, through the parents' upload path.
"""

from predictions.services.model_versions import (
    PLOT_FIELDS,
    ModelGateError,
    model_version_activate,
    model_version_create,
    model_version_gate,
)
from predictions.services.outcomes import (
    OutcomeAlreadyAnswered,
    outcome_answer_record,
    outcome_request_claim,
    outcome_request_mark_sent,
    outcome_request_release,
    outcome_request_retry,
)
from predictions.services.prediction import PredictionError, prediction_create
from predictions.services.synthetic import synthetic_babies_create

__all__ = [
    "PLOT_FIELDS",
    "ModelGateError",
    "OutcomeAlreadyAnswered",
    "PredictionError",
    "model_version_activate",
    "model_version_create",
    "model_version_gate",
    "outcome_answer_record",
    "outcome_request_claim",
    "outcome_request_mark_sent",
    "outcome_request_release",
    "outcome_request_retry",
    "prediction_create",
    "synthetic_babies_create",
]
