"""Reads of model versions shared by inference, commands and (later) views."""

import datetime
from collections.abc import Iterable
from dataclasses import dataclass, field

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db import connections, router
from django.db.models import Exists, Func, IntegerField, JSONField, OuterRef, Prefetch, Q, QuerySet, Subquery
from django.db.models.expressions import RawSQL
from django.utils import timezone

from babies.models import Baby
from instagender.templating import TemplateFields
from predictions.models import ModelActivation, ModelVersion, OutcomeAnswer, OutcomeRequest, Prediction
from predictions.version_metrics import VersionMetrics


def model_version_get_active() -> ModelVersion | None:
    return ModelVersion.objects.active().first()


def model_version_active_fingerprint() -> tuple[int, str] | None:
    """The active version's id and file name: one narrow query per inference call.

    Inference compares it with what it has loaded and reloads only when it changed.
    """
    row = ModelVersion.objects.active().values_list("pk", "tflite_file").first()
    return (row[0], row[1]) if row else None


def model_version_list():
    return ModelVersion.objects.select_related("activated_by")


# --- Predictions and outcomes ------------------------------------------------------------------
LATEST_PREDICTIONS_ATTR = "latest_predictions"


def prediction_latest_prefetch() -> Prefetch:
    """Each baby's newest prediction with its model version, in one query for a list of babies.

    A sliced Prefetch (Django runs it as a window function), so the dashboard's query count
    stays the same however many babies and predictions there are. The versions come in one more
    query, one object per version shared by its predictions: a joined version would decode its
    ``metrics`` JSON (the whole evaluation, tens of kilobytes) once per baby on every dashboard.
    """
    latest = Prediction.objects.prefetch_related("model_version").order_by("-created_at", "-id")[:1]
    return Prefetch("predictions", queryset=latest, to_attr=LATEST_PREDICTIONS_ATTR)


def prediction_latest_id() -> RawSQL:
    """For ``Baby.objects.annotate(latest_prediction_id=...)``: the id of each baby's newest
    prediction (None without one), read from the ``prediction_baby_latest`` index.

    The ORM's ``Subquery(...values("pk")[:1])`` says the same, but building it (an inner query
    resolved against the outer one) cost more than running the babies query itself, on every
    dashboard; this is its SQL, with the names taken from the models.
    """
    quote = connections[router.db_for_read(Prediction)].ops.quote_name
    prediction = Prediction._meta
    column = {field: quote(prediction.get_field(field).column) for field in ("id", "baby", "created_at")}
    # Only quoted table and column names go into the SQL; no value does.
    sql = (
        f"SELECT {column['id']} FROM {quote(prediction.db_table)} "  # noqa: S608
        f"WHERE {column['baby']} = {quote(Baby._meta.db_table)}.{quote(Baby._meta.pk.column)} "
        f"ORDER BY {column['created_at']} DESC, {column['id']} DESC LIMIT 1"
    )
    return RawSQL(sql, (), output_field=IntegerField())  # noqa: S611


# What a page that lists babies needs of a model version (the prediction panel,
# ``templates/jinja2/predictions/prediction_panel.jinja``, and
# ``prediction_tags.model_version_trust``, which reads ``card_metrics``); the rest (files,
# training parameters) stays unread.
CARD_VERSION_FIELDS = ("id", "name", "is_synthetic")


class CardMetrics(Func):
    """A version's ``metrics`` without its evaluation's per-baby lists (``baby_probabilities`` and
    ``baby_labels``, which only the gate reads: half the JSON at 3,000 evaluation babies), cut
    by the database so that they are neither sent nor decoded for every dashboard."""

    template = "%(expressions)s"
    output_field = JSONField()

    def as_postgresql(self, compiler, connection, **extra_context):
        template = "(%(expressions)s #- '{evaluation,baby_probabilities}' #- '{evaluation,baby_labels}')"
        return self.as_sql(compiler, connection, template=template, **extra_context)

    def as_sqlite(self, compiler, connection, **extra_context):
        template = (
            "json_remove(%(expressions)s, '$.evaluation.baby_probabilities', '$.evaluation.baby_labels')"
        )
        return self.as_sql(compiler, connection, template=template, **extra_context)


def predictions_with_versions(prediction_ids: Iterable[int | None]) -> dict[int, Prediction]:
    """The predictions of ``prediction_ids`` (None ones skipped) by id, each with its model
    version: two queries, one object per version, so a page of twenty babies reads a version's
    ``card_metrics`` (:class:`CardMetrics`) once (the cards' :func:`prediction_tags.model_version_trust_tag`).
    ``metrics`` itself stays unread (deferred)."""
    wanted = [prediction_id for prediction_id in prediction_ids if prediction_id is not None]
    if not wanted:
        return {}
    # No ORDER BY (the models' default ordering): the rows are matched by id.
    predictions = {
        prediction.pk: prediction for prediction in Prediction.objects.filter(pk__in=wanted).order_by()
    }
    version_ids = {prediction.model_version_id for prediction in predictions.values()}
    versions = (
        ModelVersion.objects.filter(pk__in=version_ids)
        .only(*CARD_VERSION_FIELDS)
        .annotate(card_metrics=CardMetrics("metrics"))
        .order_by()
    )
    by_id = {version.pk: version for version in versions}
    for prediction in predictions.values():
        prediction.model_version = by_id[prediction.model_version_id]
    return predictions


def prediction_latest_for_baby(*, baby: Baby) -> Prediction | None:
    """The newest prediction; from :func:`prediction_latest_prefetch` when it ran, else one query."""
    prefetched = getattr(baby, LATEST_PREDICTIONS_ATTR, None)
    if prefetched is not None:
        return prefetched[0] if prefetched else None
    return (
        Prediction.objects.filter(baby=baby)
        .select_related("model_version")
        .order_by("-created_at", "-id")
        .first()
    )


@dataclass(frozen=True)
class BabyPredictionStatus(TemplateFields):
    """What the dashboard shows about a baby's prediction."""

    prediction: Prediction | None
    scan_count: int
    # Scans were added (or removed) since the prediction: the answer is out of date.
    is_stale: bool
    # The prediction's scans that were left out: {"scan": Scan or None if since deleted,
    # "number": its place among the baby's scans (1 = oldest) or None, "reason": "too_early" or
    # "unreadable", "week" and "minimum_week" for a too-early one, "error": why}.
    left_out: list[dict]
    # Advice about the current scans, before any prediction: {"scan", "number", "notices"}.
    scan_notices: list[dict] = field(default_factory=list)
    # How many current scans are old enough to predict from (gestational week gate).
    usable_scan_count: int = 0

    @property
    def can_predict(self) -> bool:
        return self.scan_count > 0

    @property
    def all_too_early(self) -> bool:
        """Every scan is below the minimum week: predicting would only explain why not."""
        return self.scan_count > 0 and self.usable_scan_count == 0


# For ``baby_prediction_status``: no latest prediction was given, so it is looked up.
LOOK_UP = object()


def baby_prediction_status(*, baby: Baby, scans=None, prediction=LOOK_UP) -> BabyPredictionStatus:
    """``scans``: the baby's current scans, oldest first; ``baby.scans.all()`` if None, so a
    prefetch of the scans costs no query either. ``prediction``: the latest (or None), when the
    caller has it already (the dashboard's ``predictions_with_versions``)."""
    scans = {scan.pk: scan for scan in (baby.scans.all() if scans is None else scans)}
    numbers = {scan_id: number for number, scan_id in enumerate(scans, start=1)}
    if prediction is LOOK_UP:
        prediction = prediction_latest_for_baby(baby=baby)
    left_out = [
        {
            "scan": scans.get(entry.get("scan_id")),
            "number": numbers.get(entry.get("scan_id")),
            "error": entry.get("error", ""),
            "reason": entry.get("reason", "unreadable"),
            "week": entry.get("week"),
            "minimum_week": entry.get("minimum_week"),
        }
        for entry in (prediction.scan_errors if prediction else [])
    ]
    usable_scan_count = sum(1 for scan in scans.values() if not scan.is_too_early)
    # A too-early scan is said once: in the prediction's "left out" list, or in the "all too
    # early" hint, else here (a scan added since the prediction, or no prediction yet).
    already_said = {
        entry["scan"].pk for entry in left_out if entry["scan"] and entry["reason"] == "too_early"
    }
    scan_notices = []
    for scan in scans.values():
        notices = []
        if scan.is_too_early and usable_scan_count and scan.pk not in already_said:
            notices.append(scan.too_early_notice)
        if scan.has_markers:
            notices.append(scan.MARKER_NOTICE)
        if notices:
            scan_notices.append({"scan": scan, "number": numbers[scan.pk], "notices": notices})
    return BabyPredictionStatus(
        prediction=prediction,
        scan_count=len(scans),
        is_stale=prediction is not None and prediction.is_stale_for(scans),
        left_out=left_out,
        scan_notices=scan_notices,
        usable_scan_count=usable_scan_count,
    )


def babies_due_outcome_email(*, today: datetime.date | None = None) -> QuerySet[Baby]:
    """Babies whose parent should now be asked whether the prediction was right.

    Only babies whose latest prediction gave an answer: after "cannot tell yet" the question
    "was it right?" has no meaning, and a parent who was told nothing should not be asked to
    grade it. (They can still tell us the sex on the dashboard once the baby is born.)

    Not deleted, no confirmed sex, at least one prediction, due at least
    ``OUTCOME_EMAIL_DELAY_DAYS`` ago, an active owner whose address is verified (allauth), and
    no outcome e-mail sent yet nor given up on. Babies claimed by a running send are still
    listed: the claim, not this query, decides who sends.
    """
    today = today or timezone.localdate()
    due_on_or_before = today - datetime.timedelta(days=settings.OUTCOME_EMAIL_DELAY_DAYS)
    verified_address = EmailAddress.objects.filter(
        user_id=OuterRef("owner_id"), email__iexact=OuterRef("owner__email"), verified=True
    )
    # Given up: the recipient's server refused the address MAX_ATTEMPTS times (our own SMTP
    # failures never count); staff reset it from the babies admin.
    finished = OutcomeRequest.objects.filter(baby_id=OuterRef("pk")).filter(
        Q(sent_at__isnull=False) | Q(attempts__gte=OutcomeRequest.MAX_ATTEMPTS)
    )
    return (
        Baby.objects.filter(
            confirmed_sex="",
            due_date__isnull=False,
            due_date__lte=due_on_or_before,
            owner__is_active=True,
        )
        .annotate(
            latest_answer=Subquery(
                Prediction.objects.filter(baby_id=OuterRef("pk"))
                .order_by("-created_at", "-id")
                .values("answer")[:1]
            )
        )
        .filter(latest_answer__in=[Prediction.Answer.FEMALE, Prediction.Answer.MALE])
        .filter(Exists(verified_address))
        .exclude(Exists(finished))
        .select_related("owner")
        .prefetch_related(prediction_latest_prefetch())
        .order_by("due_date", "pk")
    )


def outcome_answer_for_link(*, baby: Baby, prediction: Prediction) -> OutcomeAnswer | None:
    """The one answer the link for ``baby`` and ``prediction`` gave, if it was answered."""
    return OutcomeAnswer.objects.filter(
        link=OutcomeAnswer.link_key(baby_id=baby.pk, prediction_id=prediction.pk)
    ).first()


# --- Model history -------------------------------------------------------------------------------
def model_activation_history(*, model_version: ModelVersion | None = None) -> QuerySet[ModelActivation]:
    """Every switch of the live model (or of one version), newest first."""
    rows = ModelActivation.objects.select_related("model_version", "other_version", "changed_by")
    if model_version is not None:
        rows = rows.filter(model_version=model_version)
    return rows.order_by("-happened_at", "-id")


def model_version_live_at(when: datetime.datetime) -> ModelVersion | None:
    """The version predictions used at ``when``: the one whose switch was the last before it.

    A switch writes the old version's deactivation before the new one's activation at the same
    instant, so the last row at or before ``when`` names the live version; if that row is a
    deactivation, nothing was live. Before the first recorded switch the answer is ``None``.
    """
    last = (
        ModelActivation.objects.filter(happened_at__lte=when)
        .select_related("model_version")
        .order_by("-happened_at", "-id")
        .first()
    )
    if last is None or last.event != ModelActivation.Event.ACTIVATED:
        return None
    return last.model_version


# --- Comparing versions ---------------------------------------------------------------------------
# (key, label, where to look in ``metrics``: the first path holding a number wins, higher_is_better).
# Read defensively: older versions lack newer keys, and the training pipeline keeps adding some.
COMPARED_METRICS: list[tuple[str, str, list[tuple[str, ...]], bool]] = [
    ("per_baby_accuracy", "Per-baby accuracy", [("calibrated", "per_baby", "accuracy")], True),
    ("per_scan_accuracy", "Per-scan accuracy", [("calibrated", "per_scan", "accuracy")], True),
    ("per_baby_auc", "Per-baby AUC", [("calibrated", "per_baby", "roc_auc")], True),
    ("per_scan_auc", "Per-scan AUC", [("calibrated", "per_scan", "roc_auc")], True),
    (
        "ece",
        "ECE (per scan, calibrated)",
        [("ece_after_calibration",), ("calibrated", "per_scan", "ece")],
        False,
    ),
    ("brier", "Brier score (per scan)", [("calibrated", "per_scan", "brier")], False),
    (
        "coverage",
        "Coverage (babies answered)",
        [
            ("abstention", "at_margin", "coverage"),
            ("calibrated", "abstention", "at_margin", "coverage"),
            ("coverage",),
        ],
        True,
    ),
    (
        "accuracy_answered",
        "Accuracy on answered babies",
        [
            ("abstention", "at_margin", "accuracy_answered"),
            ("calibrated", "abstention", "at_margin", "accuracy_answered"),
        ],
        True,
    ),
]


# The order of the pipeline's week bands (``ml.metrics.WEEK_BANDS``); others follow.
WEEK_BAND_ORDER = ["<12", "12", "13-15", "16+", "unknown"]


@dataclass(frozen=True)
class ModelVersionComparison:
    """Versions side by side, oldest first: one value (or None) per version in every row."""

    versions: list[ModelVersion]
    metric_rows: list[tuple[str, str, list[float | None], bool]]  # key, label, values, higher is better
    week_rows: list[tuple[str, list[tuple[float, int | None] | None]]]
    band_rows: list[tuple[str, list[tuple[float, int | None] | None]]]
    training_scans: list[int | None]  # the frozen set's items, or the scans the run read
    train_split_scans: list[int | None]
    live_periods: list[list[tuple[datetime.datetime, datetime.datetime | None]]]


def model_version_comparison(*, versions) -> ModelVersionComparison:
    """Everything the compare page shows about ``versions``, in a fixed number of queries."""
    versions = sorted(versions, key=lambda version: (version.created_at, version.pk))
    measured = [VersionMetrics(v.metrics) for v in versions]
    metric_rows = [
        (key, label, [m.number(*paths) for m in measured], higher)
        for key, label, paths, higher in COMPARED_METRICS
    ]
    weeks_per_version = [m.accuracy_by_week() for m in measured]
    weeks = sorted({week for weeks in weeks_per_version for week in weeks}, key=_week_sort_key)
    week_rows = [(week, [weeks.get(week) for weeks in weeks_per_version]) for week in weeks]
    bands_per_version = [m.week_bands() for m in measured]
    bands = sorted(
        {band for bands in bands_per_version for band in bands},
        key=lambda band: (
            WEEK_BAND_ORDER.index(band) if band in WEEK_BAND_ORDER else len(WEEK_BAND_ORDER),
            band,
        ),
    )
    band_rows = [(band, [by_band.get(band) for by_band in bands_per_version]) for band in bands]

    training_scans, train_split_scans = [], []
    for version, metrics in zip(versions, measured, strict=True):
        total, train = metrics.scans_read()
        training_scans.append(version.training_set.item_count if version.training_set_id else total)
        train_split_scans.append(train)

    periods: dict[int, list] = {version.pk: [] for version in versions}
    open_since: dict[int, datetime.datetime] = {}
    for row in ModelActivation.objects.filter(model_version__in=versions).order_by("happened_at", "id"):
        if row.event == ModelActivation.Event.ACTIVATED:
            open_since.setdefault(row.model_version_id, row.happened_at)
        elif row.model_version_id in open_since:
            periods[row.model_version_id].append((open_since.pop(row.model_version_id), row.happened_at))
    for pk, since in open_since.items():
        periods[pk].append((since, None))
    return ModelVersionComparison(
        versions=versions,
        metric_rows=metric_rows,
        week_rows=week_rows,
        band_rows=band_rows,
        training_scans=training_scans,
        train_split_scans=train_split_scans,
        live_periods=[periods[version.pk] for version in versions],
    )


def _week_sort_key(week: str) -> tuple[int, int, str]:
    return (0, int(week), "") if week.isdigit() else (1, 0, week)
