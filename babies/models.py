"""Babies and their ultrasound scans.

A parent's delete only flags a baby (``deleted_at``): staff review flagged babies before a
training set is frozen, and ``Baby.objects`` hides them from every parent-facing query.
Scan files live in private storages (``originals`` and ``scans``) under random names.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.files.storage import storages
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from instagender.dates import long_date
from ml.gestation import is_scan_usable


def original_storage():
    """The uploaded bytes as they came; never served to parents."""
    return storages["originals"]


def scan_storage():
    """The normalised JPEGs and thumbnails; served to their owner and staff only."""
    return storages["scans"]


NO_DATE_MESSAGE = "Please give a due date, or a birth date if your baby is already born."


class Sex(models.TextChoices):
    FEMALE = "female", "Girl"
    MALE = "male", "Boy"


class LabelSource(models.TextChoices):
    """Where a confirmed sex came from: the curation helper weighs them differently."""

    DASHBOARD = "dashboard", "Parent on the dashboard"
    EMAIL = "email", "Parent through the outcome e-mail"
    STAFF = "staff", "Staff"


class BabyQuerySet(models.QuerySet):
    def alive(self):
        return self.filter(deleted_at__isnull=True)

    def deleted(self):
        return self.filter(deleted_at__isnull=False)

    def for_owner(self, user):
        """The user's own babies; nobody else's, and nothing for an anonymous user."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(owner=user)


class AliveBabyManager(models.Manager.from_queryset(BabyQuerySet)):
    """Hides soft-deleted babies, so a parent-facing query cannot show one by accident."""

    def get_queryset(self):
        return super().get_queryset().filter(deleted_at__isnull=True)


class Baby(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="babies")
    name = models.CharField(max_length=100, blank=True, help_text="Leave empty if you have not chosen one.")
    due_date = models.DateField(null=True, blank=True, help_text="For a baby who is not born yet.")
    birth_date = models.DateField(null=True, blank=True, help_text="Once your baby is born.")
    confirmed_sex = models.CharField(max_length=6, choices=Sex.choices, blank=True)
    confirmed_sex_source = models.CharField(max_length=10, choices=LabelSource.choices, blank=True)
    confirmed_sex_at = models.DateTimeField(null=True, blank=True)
    # Made by the synthetic generator (demos, benchmarks, simulations), not a parent's baby: its
    # scans are generated images, and a model trained on them is recorded as synthetic.
    is_synthetic = models.BooleanField(default=False, editable=False)
    deleted_at = models.DateTimeField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AliveBabyManager()
    all_objects = BabyQuerySet.as_manager()

    class Meta:
        verbose_name_plural = "babies"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(due_date__isnull=False) | Q(birth_date__isnull=False),
                name="baby_has_due_or_birth_date",
                violation_error_message=NO_DATE_MESSAGE,
            ),
            # A confirmed sex always says where it came from and when.
            models.CheckConstraint(
                condition=(
                    Q(confirmed_sex="", confirmed_sex_source="", confirmed_sex_at__isnull=True)
                    | (~Q(confirmed_sex="") & ~Q(confirmed_sex_source="") & Q(confirmed_sex_at__isnull=False))
                ),
                name="baby_confirmed_sex_has_source_and_time",
                violation_error_message="A confirmed sex needs to say where it came from and when.",
            ),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def is_born(self) -> bool:
        return self.birth_date is not None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @property
    def display_name(self) -> str:
        """The name, or "Baby due 3 May 2027" / "Baby born 3 May 2025" until there is one."""
        if self.name:
            return self.name
        if self.birth_date:
            return f"Baby born {long_date(self.birth_date)}"
        if self.due_date:
            return f"Baby due {long_date(self.due_date)}"
        return "Your baby"

    @property
    def weeks_until_due(self) -> int | None:
        """Whole weeks from today to the due date (0 once it has passed); None when born."""
        if self.is_born or self.due_date is None:
            return None
        return max(0, (self.due_date - timezone.localdate()).days // 7)

    def clean(self):
        super().clean()
        self.name = self.name.strip()
        if self.birth_date and self.birth_date > timezone.localdate():
            raise ValidationError(
                {
                    "birth_date": "The birth date is in the future. "
                    "For a baby who is not born yet, give the due date."
                }
            )


def user_may_view_every_baby(user) -> bool:
    """Whether ``user`` may look at any parent's baby and scans (curation staff).

    ``is_staff`` only opens the admin: seeing parents' scans is the ``babies.view_baby``
    permission, granted per person (superusers have it; ``accounts.roles``). A deactivated account
    never may, even while a session or a backend still hands it to a view, and neither may one
    without two-factor sign-in set up (``accounts.mfa``): a password alone never shows a scan.
    """
    from accounts.mfa import user_has_second_factor

    return bool(
        getattr(user, "is_staff", False)
        and getattr(user, "is_active", False)
        and user.has_perm("babies.view_baby")
        and user_has_second_factor(user)
    )


class ScanQuerySet(models.QuerySet):
    def for_owner(self, user):
        """Scans of the user's own babies that are not deleted."""
        if not getattr(user, "is_authenticated", False):
            return self.none()
        return self.filter(baby__owner=user, baby__deleted_at__isnull=True)

    def visible_to(self, user):
        """Staff allowed to view babies see every scan (curation); a parent sees their own."""
        if user_may_view_every_baby(user):
            return self.all()
        return self.for_owner(user)


class Scan(models.Model):
    baby = models.ForeignKey(Baby, on_delete=models.CASCADE, related_name="scans")
    original = models.FileField(storage=original_storage, max_length=255)
    original_format = models.CharField(max_length=10, blank=True, help_text="Pillow's name, e.g. HEIF.")
    image = models.FileField(storage=scan_storage, max_length=255, help_text="The normalised JPEG.")
    thumbnail = models.FileField(storage=scan_storage, max_length=255, blank=True)
    # What the model reads (ml.preprocessing.model_input_image): a prediction never decodes the
    # full JPEG. Empty for scans stored before it existed until ``backfill_model_inputs`` runs;
    # inference then falls back to the JPEG.
    model_input = models.FileField(
        storage=scan_storage,
        max_length=255,
        blank=True,
        help_text="Greyscale PGM, longer side at most 224 px, written at upload.",
    )
    sha256 = models.CharField("SHA-256 of the original", max_length=64, db_index=True)
    perceptual_hash = models.CharField(max_length=64, blank=True, help_text="imagehash dHash, hex.")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    crop_box = models.JSONField(
        null=True, blank=True, help_text='{"x", "y", "width", "height"} in pixels of the oriented original.'
    )
    gestational_week = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(4), MaxValueValidator(42)],
        help_text="Week of pregnancy when the scan was taken, if known.",
    )
    # Burned-in text, caliper crosses or colour overlays (ml.markers), found at upload.
    # A flag for the parent's crop step and for curation; the scan is still used.
    has_markers = models.BooleanField(
        default=False, help_text="Text or measurement marks were found on the normalised scan."
    )
    marker_score = models.FloatField(
        null=True, blank=True, help_text="0-1; 0.5 or more means marks were found. Empty: not checked."
    )
    # A generated image (its baby is synthetic); training sets and model versions carry it on.
    is_synthetic = models.BooleanField(default=False, editable=False)
    uploaded_at = models.DateTimeField(default=timezone.now, db_index=True)

    objects = ScanQuerySet.as_manager()

    class Meta:
        ordering = ["uploaded_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["baby", "sha256"], name="scan_unique_original_per_baby"),
        ]

    def __str__(self) -> str:
        return f"Scan {self.pk} of {self.baby_id}"

    MARKER_NOTICE = "This scan seems to have text or measurement marks on it; cropping them out helps."

    @property
    def is_too_early(self) -> bool:
        """Recorded below ``PREDICTION_MIN_GESTATIONAL_WEEK``: kept, but not used to predict."""
        return not is_scan_usable(self.gestational_week, settings.PREDICTION_MIN_GESTATIONAL_WEEK)

    @property
    def too_early_notice(self) -> str:
        if not self.is_too_early:
            return ""
        minimum = settings.PREDICTION_MIN_GESTATIONAL_WEEK
        return (
            f"This scan was taken at week {self.gestational_week}; predictions need week {minimum} or later, "
            "so it is kept but not used for a prediction."
        )

    @property
    def notices(self) -> list[str]:
        """Sentences for the parent about this scan (upload answer, thumbnails)."""
        notices = [self.too_early_notice] if self.is_too_early else []
        return notices + ([self.MARKER_NOTICE] if self.has_markers else [])


class FileDeletion(models.Model):
    """The ledger of files to delete (``babies.files``): an entry stays until its file is gone.

    Written in the transaction that deletes the rows (or, for an upload, before its files are
    written), so a file can never outlive its row unnoticed; ``manage.py finish_file_deletions``
    retries every unfinished entry. Staff see the open ones in the admin.
    """

    class Reason(models.TextChoices):
        DELETED = "deleted", "Row deleted"
        UPLOAD = "upload", "Upload not committed"  # a reservation, until its row commits
        ORPHAN = "orphan", "No row (reconcile)"

    class Outcome(models.TextChoices):
        REMOVED = "removed", "Removed from storage"
        KEPT = "kept", "Kept: a row uses it"

    storage = models.CharField(max_length=40, help_text="The STORAGES alias, e.g. originals.")
    name = models.CharField(max_length=255)
    reason = models.CharField(max_length=10, choices=Reason.choices)
    due_at = models.DateTimeField(default=timezone.now, help_text="Not deleted before this time.")
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=10, choices=Outcome.choices, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    done_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["done_at", "due_at"], name="filedeletion_open_due")]

    def __str__(self) -> str:
        return f"{self.storage}/{self.name}"


class MissingFile(models.Model):
    """A row whose file is not in storage, as ``manage.py reconcile_media`` found it (for staff).

    Closed (``resolved_at``) by the next run that finds the file back or the row gone.
    """

    storage = models.CharField(max_length=40)
    name = models.CharField(max_length=255)
    model = models.CharField(max_length=100, help_text="app_label.model of the row.")
    object_id = models.CharField(max_length=40)
    field = models.CharField(max_length=100)
    found_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-found_at", "id"]

    def __str__(self) -> str:
        return f"{self.model} {self.object_id}: {self.storage}/{self.name}"
