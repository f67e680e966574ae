"""Model versions, the predictions made with them, and the outcome e-mails that check them."""

import datetime

from django.conf import settings
from django.core.files.storage import storages
from django.db import models
from django.db.models import Q
from django.utils import timezone

from babies.models import Sex
from ml.evaluation import BabyCalibration
from ml.preprocessing import InputSpec
from predictions.version_metrics import VersionMetrics


def model_storage():
    """The private ``models`` storage; a callable keeps migrations free of settings."""
    return storages["models"]


def model_version_upload_to(instance: "ModelVersion", filename: str) -> str:
    return f"model-versions/{instance.created_at:%Y%m%d-%H%M%S}-{instance.slug}/{filename}"


class ModelVersionQuerySet(models.QuerySet):
    def active(self):
        return self.filter(is_active=True)


class ModelVersion(models.Model):
    """A trained network: its files, what it expects, how it scored, what it learnt from.

    At most one version is active (a partial unique constraint); predictions use that one.
    Rows are never edited after training except for activation, so a prediction's version
    always tells which network and which data produced it.
    """

    name = models.CharField(max_length=120)
    slug = models.SlugField(max_length=80, help_text="Used in file names; derived from the name.")
    architecture = models.CharField(max_length=40, help_text="The model factory's name, e.g. small_cnn.")
    keras_file = models.FileField(storage=model_storage, upload_to=model_version_upload_to, max_length=255)
    tflite_file = models.FileField(storage=model_storage, upload_to=model_version_upload_to, max_length=255)
    input_spec = models.JSONField(help_text="Image size, colour mode, normalisation, preprocessing version.")
    temperature = models.FloatField(
        default=1.0, help_text="Logits are divided by it before the sigmoid (fitted on validation)."
    )
    baby_calibration = models.JSONField(
        default=dict,
        blank=True,
        help_text="Per-baby scale of the mean calibrated logit, by number of scans (fitted on validation).",
    )
    metrics = models.JSONField(
        default=dict, blank=True, help_text="Held-out test metrics, per scan and baby."
    )
    training_parameters = models.JSONField(default=dict, blank=True)
    roc_plot = models.FileField(storage=model_storage, upload_to=model_version_upload_to, blank=True)
    reliability_plot = models.FileField(storage=model_storage, upload_to=model_version_upload_to, blank=True)
    confusion_matrix_plot = models.FileField(
        storage=model_storage, upload_to=model_version_upload_to, blank=True
    )
    # What it was trained on: a frozen curation TrainingSet (train_model --training-set), or a
    # folder (synthetic or exported) named by the digest of its scans, labels and splits.
    training_set = models.ForeignKey(
        "curation.TrainingSet",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="model_versions",
        help_text="The frozen training set it was trained on, if it came from curation.",
    )
    training_data_digest = models.CharField(max_length=64, blank=True)
    training_data_description = models.TextField(blank=True)
    is_synthetic = models.BooleanField(
        default=False, help_text="Trained on generated images: its answers say nothing about real babies."
    )
    is_active = models.BooleanField(default=False)
    activated_at = models.DateTimeField(null=True, blank=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    activation_reason = models.CharField(max_length=255, blank=True)
    # A default rather than auto_now_add: file names use it before the first save.
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_active"],
                condition=Q(is_active=True),
                name="predictions_modelversion_one_active",
                violation_error_message="Another model version is already active.",
            ),
            models.CheckConstraint(
                condition=Q(temperature__gt=0), name="predictions_modelversion_temperature_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.pk}{', synthetic' if self.is_synthetic else ''})"

    def get_input_spec(self) -> InputSpec:
        return InputSpec.from_dict(self.input_spec)

    def get_baby_calibration(self) -> BabyCalibration:
        return BabyCalibration.from_dict(self.baby_calibration)

    @property
    def measured(self) -> VersionMetrics:
        """Its ``metrics``, read through the one reader (``predictions.version_metrics``)."""
        return VersionMetrics(self.metrics)

    @property
    def per_baby_accuracy(self) -> float | None:
        """On the evaluation babies when measured there, else on the held-out test babies."""
        return self.measured.number(
            ("evaluation", "per_baby", "accuracy"), ("calibrated", "per_baby", "accuracy")
        )


# --- Predictions and outcomes ------------------------------------------------------------------
class Prediction(models.Model):
    """One answer for one baby from one model version; rows are never changed, so history stays.

    ``probability_male`` is calibrated (temperature applied) and combines every scan that could
    be read. The scan lists let the dashboard tell when the baby's scans have changed since
    (a stale prediction), and leave room for scans a later rule excludes (``scan_errors`` holds
    one ``{"scan_id", "error"}`` per scan left out, whatever the reason).
    """

    class Answer(models.TextChoices):
        FEMALE = "female", "Girl"
        MALE = "male", "Boy"
        CANNOT_TELL = "cannot_tell", "Cannot tell yet"

    class AbstainReason(models.TextChoices):
        UNCERTAIN = "uncertain", "Too close to 50/50"
        SCANS_DISAGREE = "scans_disagree", "The scans disagree"

    baby = models.ForeignKey("babies.Baby", on_delete=models.CASCADE, related_name="predictions")
    # PROTECT: a version that made predictions must stay, so each one can say what made it.
    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="predictions")
    # What the parent is told (ml.abstention): a sex, or "cannot tell yet". Named
    # "answer", not "outcome": an outcome here is the sex the parent reports after the birth.
    answer = models.CharField(max_length=11, choices=Answer.choices)
    abstain_reason = models.CharField(max_length=14, choices=AbstainReason.choices, blank=True)
    # The rule's settings when it answered, so an old row stays explainable after they change.
    abstain_margin = models.FloatField(null=True, blank=True)
    disagreement_threshold = models.FloatField(null=True, blank=True)
    # The side the combined probability leans to, also when the answer is "cannot tell yet".
    predicted_sex = models.CharField(max_length=10, choices=Sex.choices)
    probability_male = models.FloatField(help_text="Calibrated probability that the baby is a boy.")
    combined_logit = models.FloatField(
        help_text="Mean of the scans' logits, each divided by the temperature, times the per-baby scale."
    )
    temperature = models.FloatField(help_text="The model version's temperature when it predicted.")
    # "scaled_mean_calibrated_logit" since versions carry a per-baby scale; older rows say
    # "mean_calibrated_logit".
    aggregation = models.CharField(max_length=30, default="mean_calibrated_logit")
    scan_ids = models.JSONField(default=list, help_text="Every scan the baby had when it predicted.")
    scan_ids_used = models.JSONField(default=list, help_text="The scans that count in the answer.")
    scan_probabilities = models.JSONField(
        default=list, help_text='One {"scan_id", "logit", "probability_male"} per scan used.'
    )
    scan_errors = models.JSONField(
        default=list,
        blank=True,
        help_text='One {"scan_id", "reason", "error"} per scan left out; reason "too_early" or "unreadable".',
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["baby", "-created_at"], name="prediction_baby_latest")]
        constraints = [
            models.CheckConstraint(
                condition=Q(probability_male__gte=0) & Q(probability_male__lte=1),
                name="prediction_probability_between_0_and_1",
            ),
        ]

    def __str__(self) -> str:
        if self.is_cannot_tell:
            return f"Cannot tell yet ({self.abstain_reason}) for baby {self.baby_id}"
        return f"{self.get_predicted_sex_display()} {self.confidence:.0%} for baby {self.baby_id}"

    @property
    def is_cannot_tell(self) -> bool:
        return self.answer == self.Answer.CANNOT_TELL

    @property
    def confidence(self) -> float:
        """How likely the predicted sex is: max(p, 1 - p) of the calibrated probability."""
        return max(self.probability_male, 1.0 - self.probability_male)

    @property
    def confidence_percent(self) -> int:
        """Whole percent for people; never "100 %" (no model is certain) nor below 50."""
        return min(99, max(50, round(self.confidence * 100)))

    @property
    def scans_used_count(self) -> int:
        return len(self.scan_ids_used)

    def is_stale_for(self, current_scan_ids) -> bool:
        """True once predicting again could change the answer: a scan was added since, or a scan
        the answer used was removed. Removing a scan the prediction had left out (too early, say)
        changes nothing, so it asks for nothing."""
        current = set(current_scan_ids)
        return bool(current - set(self.scan_ids)) or bool(set(self.scan_ids_used) - current)


class OutcomeRequest(models.Model):
    """The one outcome e-mail a baby gets: claimed, then sent, by ``send_outcome_emails``.

    A run claims the row with a conditional UPDATE (``claimed_at`` empty or expired, ``sent_at``
    empty) and only the run whose UPDATE touched it sends, so two runs never send twice. A failed
    send releases the claim; a claim left by a crash expires and the next run retries.

    ``attempts`` counts only failures that belong to the recipient (their mail server refused
    the address). An unreachable, hanging or failing SMTP server of ours counts nothing: a day of
    outage must not use up a baby's tries. Staff reset a given-up baby with the babies admin's
    "retry outcome e-mail" action.
    """

    baby = models.OneToOneField("babies.Baby", on_delete=models.CASCADE, related_name="outcome_request")
    prediction = models.ForeignKey(
        Prediction, null=True, blank=True, on_delete=models.SET_NULL, related_name="outcome_requests"
    )
    email = models.EmailField(blank=True, help_text="Where the e-mail went (the owner's address then).")
    claimed_at = models.DateTimeField(null=True, blank=True)
    claim_id = models.UUIDField(null=True, blank=True, help_text="Which run holds the claim.")
    sent_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.PositiveSmallIntegerField(
        default=0,
        help_text="Sends the recipient's mail server refused; the baby is given up on at MAX_ATTEMPTS.",
    )
    last_error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    # A claim older than this is taken to be a run that died between claiming and sending. It is
    # far longer than one SMTP send (seconds, bounded by EMAIL_TIMEOUT), so a live run never
    # loses its claim to another.
    CLAIM_EXPIRY = datetime.timedelta(hours=1)
    # After this many refusals of the address (a mailbox that does not exist, say) the baby is no
    # longer tried, so one bad address does not make every cron run fail for ever.
    MAX_ATTEMPTS = 5

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        if self.sent_at:
            state = f"sent {self.sent_at:%Y-%m-%d}"
        elif self.is_given_up:
            state = f"given up after {self.attempts} refusals"
        else:
            state = f"{self.attempts} refusal(s)"
        return f"Outcome e-mail for baby {self.baby_id} ({state})"

    @property
    def is_given_up(self) -> bool:
        return self.sent_at is None and self.attempts >= self.MAX_ATTEMPTS


class OutcomeAnswer(models.Model):
    """A parent's answer through the signed e-mail link, kept for good.

    Each link answers once: ``link`` is the baby and prediction the link names, unique, so a
    second submission of the same link (a double click, a forwarded e-mail, a replay) is refused
    by the database itself, also when two arrive at once. Answers recorded before that rule have
    an empty ``link`` except the one that counted, and stay as history.

    ``label_applied`` says whether the answer set the baby's label: never over a label staff set
    (the review queue shows the disagreement instead).
    """

    baby = models.ForeignKey("babies.Baby", on_delete=models.CASCADE, related_name="outcome_answers")
    prediction = models.ForeignKey(Prediction, on_delete=models.CASCADE, related_name="outcome_answers")
    prediction_was_right = models.BooleanField()
    sex = models.CharField(
        max_length=10,
        choices=Sex.choices,
        help_text="The label the answer implies: the predicted sex if right, the other one if not.",
    )
    link = models.CharField(
        max_length=41,
        null=True,
        blank=True,
        unique=True,
        editable=False,
        help_text="<baby id>:<prediction id> of the link answered; one answer per link.",
    )
    label_applied = models.BooleanField(
        default=True,
        help_text="False when staff had set the label: the answer was kept, the label not changed.",
    )
    answered_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-answered_at", "-id"]
        get_latest_by = ["answered_at", "id"]

    def __str__(self) -> str:
        return f"Baby {self.baby_id}: prediction {'right' if self.prediction_was_right else 'wrong'}"

    @staticmethod
    def link_key(*, baby_id: int, prediction_id: int) -> str:
        return f"{baby_id}:{prediction_id}"


# --- Model history -------------------------------------------------------------------------------
class ModelActivation(models.Model):
    """One switch of the live model: a version became active, or stopped being active.

    Written only by ``predictions.services.model_version_activate``, in the transaction that
    makes the switch, and never changed afterwards. ``ModelVersion.activated_*`` say only who
    switched the *current* version on; these rows keep every switch, so the version that was
    live at any moment can be found (``predictions.selectors.model_version_live_at``).
    """

    class Event(models.TextChoices):
        ACTIVATED = "activated", "Activated"
        DEACTIVATED = "deactivated", "Deactivated"

    model_version = models.ForeignKey(ModelVersion, on_delete=models.PROTECT, related_name="activations")
    event = models.CharField(max_length=11, choices=Event.choices)
    # For an activation, the version it replaced; for a deactivation, the version replacing it.
    other_version = models.ForeignKey(
        ModelVersion, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    happened_at = models.DateTimeField(db_index=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The e-mail at the time: the account may be deleted later, the history must still say who.
    changed_by_repr = models.CharField("changed by", max_length=254, blank=True)
    reason = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-happened_at", "-id"]
        indexes = [models.Index(fields=["happened_at", "id"], name="modelactivation_timeline")]

    def __str__(self) -> str:
        return f"Model version {self.model_version_id} {self.event} at {self.happened_at:%Y-%m-%d %H:%M}"

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Model history is append-only.")
        super().save(*args, **kwargs)
