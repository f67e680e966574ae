"""Curation: staff decide which labelled scans may train the next model, and every decision is logged.

* :class:`ScanReview` is a staff member's verdict on one scan, with quality flags that mirror the
  stages the original Flask project (Instagender's first version) cleaned its data in by hand.
  It is created the first time a scan is reviewed; a scan without one is *pending*.
* :class:`TrainingSet` freezes the eligible scans at one moment as :class:`TrainingSetItem` rows.
  Each item keeps a copy of its label and a content-addressed copy of the JPEG, so a later purge,
  relabel or review never changes what a model was trained on.
* :class:`AuditEntry` records who changed what and when (pretix's ``LogEntry`` is the model):
  append-only, and it keeps a text description of its object so it outlives a purge.
"""

from __future__ import annotations

import uuid

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
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
    view. ``disagreement`` is the model's calibrated probability of the *other* sex, i.e. one
    minus cleanlab's self-confidence: near 1, the model is sure the label is wrong. The label it
    was scored against is kept, so a score stops counting once staff relabel the baby.
    """

    scan = models.OneToOneField(Scan, on_delete=models.CASCADE, related_name="label_quality")
    sex = models.CharField("label scored", max_length=6, choices=Sex.choices)
    probability_male = models.FloatField()
    disagreement = models.FloatField(db_index=True, help_text="Probability of the other sex than the label.")
    model_version = models.ForeignKey(
        "predictions.ModelVersion", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    scored_at = models.DateTimeField()
    # Staff looked and the label is right: the scan leaves the top of the queue until relabelled.
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
        ]

    def __str__(self) -> str:
        return f"Scan {self.scan_id}: {self.disagreement:.0%} against {self.sex}"


class AuditEntry(models.Model):
    """Who changed what, when, with the values before and after. Append-only.

    ``object_repr`` is written at the time of the change and never contains a parent's name or
    e-mail address, so it can outlive the object (a purged baby, a deleted account).
    """

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_repr = models.CharField("actor", max_length=254, blank=True)
    action = models.CharField(max_length=64, db_index=True, help_text="A dotted name, e.g. scan.reviewed.")
    content_type = models.ForeignKey(ContentType, on_delete=models.SET_NULL, null=True, blank=True)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField("object", max_length=200, blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    # Entries written by one bulk action share a batch, so "who rejected these 40 scans" is one query.
    batch = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = "audit entry"
        verbose_name_plural = "audit log"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id"], name="auditentry_object")]

    def __str__(self) -> str:
        return f"{self.action} {self.object_repr}".strip()

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise ValueError("Audit entries cannot be changed once written.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("Audit entries cannot be deleted.")

    def changes(self) -> list[tuple[str, object, object]]:
        """``(field, before, after)`` for each value that changed, when ``data`` holds both."""
        data = self.data if isinstance(self.data, dict) else {}
        before, after = data.get("before"), data.get("after")
        if not isinstance(before, dict) or not isinstance(after, dict):
            return []
        keys = list(dict.fromkeys([*before, *after]))
        return [(key, before.get(key), after.get(key)) for key in keys if before.get(key) != after.get(key)]

    def details(self) -> dict:
        """What to show besides the changes: the values of a created (or removed) object, and
        anything else the entry recorded."""
        data = self.data if isinstance(self.data, dict) else {}
        before, after = data.get("before"), data.get("after")
        shown = {}
        if isinstance(after, dict) and not isinstance(before, dict):
            shown.update(after)
        elif isinstance(before, dict) and not isinstance(after, dict):
            shown.update(before)
        shown.update({key: value for key, value in data.items() if key not in ("before", "after")})
        return shown


def new_batch() -> uuid.UUID:
    return uuid.uuid4()
