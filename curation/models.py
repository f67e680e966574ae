"""Curation: staff decide which labelled scans may train the next model, and every decision is logged.

* :class:`ScanReview` is a staff member's verdict on one scan, with quality flags that mirror the
  stages the original Flask project (Instagender's first version) cleaned its data in by hand.
  It is created the first time a scan is reviewed; a scan without one is *pending*.
* :class:`TrainingSet` freezes the eligible scans at one moment as :class:`TrainingSetItem` rows.
  Each item keeps a copy of its label and a content-addressed copy of the JPEG, so a later purge,
  relabel or review never changes what a model was trained on.
* Every staff change is written to the audit log (the ``audit`` app, below every app).
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from babies.models import LabelSource, Scan, Sex


def training_storage():
    """Frozen copies of training JPEGs, named by their SHA-256 (private, like every storage)."""
    return storages["default"]


class ReviewState(models.TextChoices):
    PENDING = "pending", "Pending"
    ACCEPTED = "accepted", "Accepted"
    REJECTED = "rejected", "Rejected"


# The original Flask project's cleaning stages, in its order: each flag is a reason a scan must
# not train a model.
QUALITY_FLAGS: dict[str, str] = {
    "is_corrupt": "Corrupt",
    "is_not_ultrasound": "Not an ultrasound",
    "is_duplicate": "Duplicate",
    "is_3d_or_4d": "3D/4D scan",
    "is_unfocused": "Unfocused",
    "is_poor_quality": "Poor quality",
    "needs_crop": "Needs cropping to the anatomy",
}


class ScanReview(models.Model):
    """A staff verdict on one scan. Written only by ``curation.services.scan_review_update``."""

    scan = models.OneToOneField(Scan, on_delete=models.CASCADE, related_name="review")
    state = models.CharField(max_length=8, choices=ReviewState.choices, default=ReviewState.PENDING)
    is_corrupt = models.BooleanField("corrupt", default=False, help_text="The file is damaged or truncated.")
    is_not_ultrasound = models.BooleanField("not an ultrasound", default=False)
    is_duplicate = models.BooleanField(
        "duplicate", default=False, help_text="The same scan (or a re-encoded copy) is already in the data."
    )
    is_3d_or_4d = models.BooleanField("3D/4D scan", default=False)
    is_unfocused = models.BooleanField("unfocused", default=False)
    is_poor_quality = models.BooleanField("poor quality", default=False)
    needs_crop = models.BooleanField(
        "needs cropping", default=False, help_text="Too much besides the anatomy: crop before training."
    )
    note = models.TextField(blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("review_scan", "Can review scans")]
        constraints = [
            # A flag is a reason to keep a scan out of training; an accepted scan has none.
            models.CheckConstraint(
                condition=~Q(state=ReviewState.ACCEPTED)
                | Q(
                    is_corrupt=False,
                    is_not_ultrasound=False,
                    is_duplicate=False,
                    is_3d_or_4d=False,
                    is_unfocused=False,
                    is_poor_quality=False,
                    needs_crop=False,
                ),
                name="scanreview_accepted_has_no_flags",
            ),
        ]

    def __str__(self) -> str:
        return f"Review of scan {self.scan_id}: {self.get_state_display()}"

    @property
    def flags(self) -> list[str]:
        """The names of the flags that are set, in the original Flask project's order."""
        return [name for name in QUALITY_FLAGS if getattr(self, name)]

    def flag_labels(self) -> list[str]:
        return [QUALITY_FLAGS[name] for name in self.flags]

    def clean(self):
        super().clean()
        if self.state == ReviewState.ACCEPTED and self.flags:
            raise ValidationError(
                "A scan with quality flags cannot be accepted: clear the flags or reject it.", code="flagged"
            )


class ReviewQueueScan(Scan):
    """Scans as the review queue shows them (a proxy: the rows are ``babies.Scan``)."""

    class Meta:
        proxy = True
        verbose_name = "scan to review"
        verbose_name_plural = "review queue"


class TrainingSet(models.Model):
    """A frozen selection of labelled scans: never edited after it is created."""

    note = models.TextField(blank=True, help_text="Why this set was made, what changed since the last one.")
    label_sources = models.JSONField(
        default=list, help_text="The label sources that were allowed in (LabelSource values)."
    )
    split_seed = models.PositiveIntegerField(help_text="Seed of the by-baby train/val/test split.")
    item_count = models.PositiveIntegerField(default=0)
    baby_count = models.PositiveIntegerField(default=0)
    # {"female": 10, "male": 12}; {"train": {"female": 7, "male": 8}, "val": {...}, "test": {...}}
    class_counts = models.JSONField(default=dict)
    split_counts = models.JSONField(default=dict)
    content_digest = models.CharField(
        max_length=64,
        help_text="SHA-256 over every item's JPEG, label, baby and split "
        "(the same digest train_model records for the data it saw).",
    )
    # Computed once at freeze time (``curation.services.training_set_data_card``) and never again:
    # counts by sex, week, label source, the synthetic share, and what was left out and why.
    data_card = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Training set {self.pk}"


class TrainingSetItem(models.Model):
    """One frozen scan: a copy of its label and of its JPEG, independent of the live rows.

    ``scan`` and ``owner`` are kept as long as the live rows exist (so staff can follow them and a
    parent's account deletion can find its items); the copy does not depend on them.
    """

    training_set = models.ForeignKey(TrainingSet, on_delete=models.CASCADE, related_name="items")
    scan = models.ForeignKey(
        Scan, on_delete=models.SET_NULL, null=True, blank=True, related_name="training_set_items"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Plain values, not keys: they must survive a purge of the baby.
    baby_key = models.CharField(max_length=40, help_text="Which baby the scan belongs to, e.g. 'baby-12'.")
    scan_key = models.CharField(max_length=40, help_text="Which scan this was, e.g. 'scan-31'.")
    sex = models.CharField(max_length=6, choices=Sex.choices)
    label_source = models.CharField(max_length=10, choices=LabelSource.choices)
    labelled_at = models.DateTimeField()
    gestational_week = models.PositiveSmallIntegerField(null=True, blank=True)
    split = models.CharField(max_length=5, choices=[("train", "train"), ("val", "val"), ("test", "test")])
    image = models.FileField(storage=training_storage, max_length=255, blank=True)
    image_sha256 = models.CharField(max_length=64)
    perceptual_hash = models.CharField(max_length=64, blank=True)
    is_synthetic = models.BooleanField(
        default=False, help_text="A generated image (the synthetic demo data), not a parent's scan."
    )
    # Set when the parent deleted their account: the copy is gone, the row says it was there.
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["training_set", "split", "baby_key", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["training_set", "scan"],
                condition=Q(scan__isnull=False),
                name="trainingsetitem_scan_once_per_set",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.scan_key} of {self.baby_key} ({self.sex}, {self.split})"


class LabelQualityScore(models.Model):
    """How strongly the active model disagreed with a scan's confirmed label when last scored.

    Written by ``manage.py score_label_quality`` (or the review queue's action), never on a page
    view. ``disagreement`` is the model's calibrated probability of the *other* sex for this
    scan, i.e. one minus cleanlab's self-confidence: near 1, the model is sure the label is
    wrong. ``baby_disagreement`` is the same for the baby, from all its scans combined as its
    prediction combines them: the label is the baby's, so the queue ranks by that one. The
    label it was scored against is kept, so a score stops counting once staff relabel the baby.
    """

    scan = models.OneToOneField(Scan, on_delete=models.CASCADE, related_name="label_quality")
    sex = models.CharField("label scored", max_length=6, choices=Sex.choices)
    probability_male = models.FloatField()
    disagreement = models.FloatField(db_index=True, help_text="Probability of the other sex than the label.")
    # Null for scores written before babies were scored as a whole (until scored again).
    baby_disagreement = models.FloatField(
        null=True,
        blank=True,
        db_index=True,
        help_text="Probability of the other sex than the label for the baby, from all its scans.",
    )
    baby_scans = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="How many of the baby's scans its score combined."
    )
    model_version = models.ForeignKey(
        "predictions.ModelVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    scored_at = models.DateTimeField()
    # Staff looked and the baby's label is right: its scans leave the top of the queue until
    # it is relabelled (every scan of the baby is marked, ``baby_label_mark_checked``).
    label_checked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    label_checked_at = models.DateTimeField(null=True, blank=True)

    # The model's calibrated answer is the other sex: worth a person's look before training.
    LIKELY_ERROR_THRESHOLD = 0.5

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(disagreement__gte=0) & Q(disagreement__lte=1),
                name="labelqualityscore_disagreement_between_0_and_1",
            ),
            models.CheckConstraint(
                condition=Q(baby_disagreement__isnull=True)
                | (Q(baby_disagreement__gte=0) & Q(baby_disagreement__lte=1)),
                name="labelqualityscore_baby_disagreement_between_0_and_1",
            ),
        ]

    def __str__(self) -> str:
        return f"Scan {self.scan_id}: {self.disagreement:.0%} against {self.sex}"

    @property
    def label_score(self) -> float:
        """The disagreement the queue ranks this label by: the baby's, or the scan's own for a
        score written before babies were scored whole (``curation.selectors.label_score`` is the
        same in SQL)."""
        return self.disagreement if self.baby_disagreement is None else self.baby_disagreement
