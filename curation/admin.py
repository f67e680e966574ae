"""The curation admin: where staff review scans, restore or purge babies and freeze training sets.

Every change made here goes through ``curation.services``, which writes an audit entry per
object (bulk actions included); Django's own ``LogEntry`` is left to do what it does as well.
Babies are created and edited by parents only, so their admin is read-only apart from the
actions and a staff label correction.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count, Q
from django.http import HttpResponseRedirect
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import capfirst

from babies.models import Baby, LabelSource, Scan, Sex
from curation import selectors, services
from curation.forms import BabyStaffForm, DuplicateSearchForm, ScanReviewForm, TrainingSetCreateForm
from curation.models import (
    QUALITY_FLAGS,
    AuditEntry,
    ReviewQueueScan,
    ReviewState,
    TrainingSet,
    TrainingSetItem,
)
from curation.templatetags.curation_admin import audit_value
from predictions.admin import ModelVersionAdmin
from predictions.models import ModelVersion
from predictions.services import ModelGateError, model_version_gate

ADMIN_CSS = {"all": ["curation/admin.css"]}
# On the model comparison page: shown as percentages, and drawn on the plot (all on 0..1).
PERCENT_METRICS = {"per_baby_accuracy", "per_scan_accuracy", "coverage", "accuracy_answered"}
PLOTTED_METRICS = ["per_baby_accuracy", "per_scan_auc", "ece", "brier", "coverage"]
SHORT_LABEL_SOURCES = {
    LabelSource.DASHBOARD: "dashboard",
    LabelSource.EMAIL: "e-mail",
    LabelSource.STAFF: "staff",
}


def _thumbnail(scan: Scan, *, css_class: str = "curation-thumb"):
    return format_html(
        '<img src="{}" alt="Scan {}" class="{}" loading="lazy">',
        reverse("babies:scan_thumbnail", args=[scan.pk]),
        scan.pk,
        css_class,
    )


def _review_url(scan_id: int) -> str:
    return reverse("admin:curation_reviewqueuescan_change", args=[scan_id])


def _report_bulk(model_admin: admin.ModelAdmin, request, result: services.BulkResult, verb: str) -> None:
    noun = "scan" if result.changed == 1 else "scans"
    model_admin.message_user(request, f"{result.changed} {noun} {verb}.", messages.SUCCESS)
    if result.unchanged:
        model_admin.message_user(request, f"{result.unchanged} already were; nothing changed for them.")
    for pk, reason in (result.refused or {}).items():
        model_admin.message_user(request, f"Scan {pk} was not changed: {reason}", messages.WARNING)


class AuditTrailMixin:
    """Shows the object's audit entries on its admin page (read-only field ``audit_trail``)."""

    @admin.display(description="Newest first")
    def audit_trail(self, obj):
        if obj is None or obj.pk is None:
            return "—"
        entries = selectors.audit_entries_for(obj)[:100]
        return render_to_string("admin/curation/_audit_trail.html", {"entries": entries})


# --- Babies --------------------------------------------------------------------------------
class YesNoFilter(admin.SimpleListFilter):
    """Two choices that map onto one boolean lookup: ``lookup`` equals ``yes_means`` for "yes"."""

    lookup = ""
    yes_means = True
    yes_label = "Yes"
    no_label = "No"

    def lookups(self, request, model_admin):
        return [("yes", self.yes_label), ("no", self.no_label)]

    def queryset(self, request, queryset):
        if self.value() in ("yes", "no"):
            return queryset.filter(**{self.lookup: (self.value() == "yes") == self.yes_means})
        return queryset


class DeletedFilter(YesNoFilter):
    title = "deleted by the parent"
    parameter_name = "deleted"
    lookup = "deleted_at__isnull"
    yes_means = False
    yes_label, no_label = "Deleted", "Not deleted"


class ConfirmedSexFilter(admin.SimpleListFilter):
    title = "confirmed sex"
    parameter_name = "sex"
    # The lookup path to the baby's confirmed sex from the admin's model.
    sex_field = "confirmed_sex"

    def lookups(self, request, model_admin):
        return [*Sex.choices, ("none", "Not confirmed")]

    def queryset(self, request, queryset):
        if self.value() == "none":
            return queryset.filter(**{self.sex_field: ""})
        if self.value() in Sex.values:
            return queryset.filter(**{self.sex_field: self.value()})
        return queryset


class LabelSourceFilter(admin.SimpleListFilter):
    title = "label source"
    parameter_name = "label_source"

    def lookups(self, request, model_admin):
        return LabelSource.choices

    def queryset(self, request, queryset):
        if self.value() in LabelSource.values:
            return queryset.filter(confirmed_sex_source=self.value())
        return queryset


class OutcomeEmailFilter(admin.SimpleListFilter):
    """Whether ``send_outcome_emails`` has sent this baby's "was the prediction right?" e-mail."""

    title = "outcome e-mail"
    parameter_name = "outcome_email"

    def lookups(self, request, model_admin):
        return [("sent", "Sent"), ("answered", "Answered"), ("not_sent", "Not sent")]

    def queryset(self, request, queryset):
        if self.value() == "sent":
            return queryset.filter(outcome_request__sent_at__isnull=False)
        if self.value() == "answered":
            return queryset.filter(outcome_answers__isnull=False).distinct()
        if self.value() == "not_sent":
            return queryset.exclude(outcome_request__sent_at__isnull=False)
        return queryset


class DueMonthFilter(admin.SimpleListFilter):
    title = "due month"
    parameter_name = "due_month"

    def lookups(self, request, model_admin):
        months = Baby.all_objects.dates("due_date", "month", order="DESC")
        return [(month.strftime("%Y-%m"), month.strftime("%B %Y")) for month in months]

    def queryset(self, request, queryset):
        try:
            year, month = (int(part) for part in (self.value() or "").split("-"))
        except ValueError:
            return queryset
        return queryset.filter(due_date__year=year, due_date__month=month)


class ScanInline(admin.TabularInline):
    model = Scan
    classes = ["curation-scans"]
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = False
    fields = ["preview", "review_link", "review_state", "gestational_week", "size", "uploaded_at"]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("review")

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Scan")
    def preview(self, scan):
        return _thumbnail(scan)

    @admin.display(description="Review")
    def review_link(self, scan):
        return format_html('<a href="{}">Review scan {}</a>', _review_url(scan.pk), scan.pk)

    @admin.display(description="State")
    def review_state(self, scan):
        review = getattr(scan, "review", None)
        if review is None:
            return "Pending"
        flags = ", ".join(review.flag_labels())
        return f"{review.get_state_display()}{f' ({flags})' if flags else ''}"

    @admin.display(description="Pixels")
    def size(self, scan):
        return f"{scan.width} × {scan.height}"


@admin.register(Baby)
class BabyAdmin(AuditTrailMixin, admin.ModelAdmin):
    form = BabyStaffForm
    list_display = ["baby_name", "owner_email", "dates", "label", "scan_count", "consent", "deleted"]
    list_filter = [DeletedFilter, ConfirmedSexFilter, LabelSourceFilter, OutcomeEmailFilter, DueMonthFilter]
    search_fields = ["owner__email", "name", "=id"]
    list_select_related = ["owner"]
    actions = ["restore_babies", "purge_babies"]
    inlines = [ScanInline]
    readonly_fields = [
        "baby_name",
        "owner_email",
        "training_consent",
        "due_date",
        "birth_date",
        "confirmed_sex",
        "confirmed_sex_source",
        "confirmed_sex_at",
        "deleted_at",
        "created_at",
        "updated_at",
        "audit_trail",
    ]
    fieldsets = [
        (None, {"fields": ["baby_name", "owner_email", "training_consent", "due_date", "birth_date"]}),
        ("Label", {"fields": ["confirmed_sex", "confirmed_sex_source", "confirmed_sex_at", "relabel_as"]}),
        ("Record", {"fields": ["deleted_at", "created_at", "updated_at"]}),
        ("Audit trail", {"fields": ["audit_trail"]}),
    ]

    class Media:
        css = ADMIN_CSS

    def changelist_view(self, request, extra_context=None):
        extra_context = {"title": "Babies, including those their parents deleted", **(extra_context or {})}
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request):
        # Soft-deleted babies too: reviewing them is what the admin is for.
        return Baby.all_objects.select_related("owner").annotate(scans_total=Count("scans"))

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        # Deleting through the admin would leave the files behind: "purge" does it properly.
        return False

    def has_purge_permission(self, request):
        return request.user.has_perm("babies.delete_baby")

    @admin.display(description="baby", ordering="id")
    def baby_name(self, baby):
        return f"Baby {baby.pk} · {baby.name}" if baby.name else f"Baby {baby.pk}"

    @admin.display(description="due or born", ordering="due_date")
    def dates(self, baby):
        if baby.birth_date:
            return f"born {baby.birth_date:%d %b %Y}"
        return f"due {baby.due_date:%d %b %Y}" if baby.due_date else "—"

    @admin.display(description="label", ordering="confirmed_sex")
    def label(self, baby):
        if not baby.confirmed_sex:
            return "—"
        return f"{baby.get_confirmed_sex_display()} · {SHORT_LABEL_SOURCES[baby.confirmed_sex_source]}"

    @admin.display(description="owner", ordering="owner__email")
    def owner_email(self, baby):
        return baby.owner.email

    @admin.display(description="scans", ordering="scans_total")
    def scan_count(self, baby):
        return baby.scans_total

    @admin.display(description="training consent", boolean=True, ordering="owner__allows_training_use")
    def training_consent(self, baby):
        return baby.owner.allows_training_use

    @admin.display(description="consent", boolean=True, ordering="owner__allows_training_use")
    def consent(self, baby):
        return baby.owner.allows_training_use

    @admin.display(description="deleted", ordering="deleted_at")
    def deleted(self, baby):
        return f"{timezone.localtime(baby.deleted_at):%d %b %Y}" if baby.deleted_at else ""

    def save_model(self, request, obj, form, change):
        sex = form.cleaned_data.get("relabel_as")
        if sex:
            services.baby_relabel_as_staff(baby=obj, actor=request.user, sex=sex)

    @admin.action(description="Restore selected babies (undo the parent's delete)", permissions=["change"])
    def restore_babies(self, request, queryset):
        batch = services.new_batch()
        restored = sum(
            services.baby_restore_as_staff(baby=baby, actor=request.user, batch=batch) for baby in queryset
        )
        self.message_user(request, f"{restored} restored; {queryset.count() - restored} were not deleted.")

    @admin.action(
        description="Purge selected babies (delete scans and files for good)", permissions=["purge"]
    )
    def purge_babies(self, request, queryset):
        if request.POST.get("post") == "yes":
            batch = services.new_batch()
            count = 0
            for baby in queryset:
                services.baby_purge_as_staff(baby=baby, actor=request.user, batch=batch)
                count += 1
            self.message_user(request, f"{count} purged, with their scans and files.", messages.SUCCESS)
            return None
        babies = list(queryset.annotate(kept=Count("scans__training_set_items")))
        context = {
            **self.admin_site.each_context(request),
            "title": "Purge babies for good?",
            "opts": self.model._meta,
            "babies": babies,
            "scan_total": sum(baby.scans_total for baby in babies),
            "kept_total": sum(baby.kept for baby in babies),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/curation/baby_purge_confirmation.html", context)


# --- Review queue --------------------------------------------------------------------------
class ReviewStateFilter(admin.SimpleListFilter):
    title = "review"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return ReviewState.choices

    def queryset(self, request, queryset):
        if self.value() == ReviewState.PENDING:
            return queryset.filter(Q(review__isnull=True) | Q(review__state=ReviewState.PENDING))
        if self.value() in ReviewState.values:
            return queryset.filter(review__state=self.value())
        return queryset


class LabelledFilter(ConfirmedSexFilter):
    title = "baby's sex"
    parameter_name = "labelled"
    sex_field = "baby__confirmed_sex"


class QualityFlagFilter(admin.SimpleListFilter):
    title = "quality flag"
    parameter_name = "flag"

    def lookups(self, request, model_admin):
        return [*QUALITY_FLAGS.items(), ("any", "Any flag")]

    def queryset(self, request, queryset):
        if self.value() in QUALITY_FLAGS:
            return queryset.filter(**{f"review__{self.value()}": True})
        if self.value() == "any":
            condition = Q()
            for name in QUALITY_FLAGS:
                condition |= Q(**{f"review__{name}": True})
            return queryset.filter(condition)
        return queryset


class BabyDeletedFilter(DeletedFilter):
    title = "baby deleted"
    parameter_name = "baby_deleted"
    lookup = "baby__deleted_at__isnull"


class ConsentFilter(YesNoFilter):
    title = "parent's training consent"
    parameter_name = "consent"
    lookup = "baby__owner__allows_training_use"
    yes_label, no_label = "Given", "Not given"


class LikelyLabelErrorFilter(admin.SimpleListFilter):
    title = "label check"
    parameter_name = "label_check"

    def lookups(self, request, model_admin):
        return [
            ("likely_error", "Likely label error"),
            ("checked", "Label checked by staff"),
            ("not_scored", "Not scored"),
        ]

    def queryset(self, request, queryset):
        if self.value() == "likely_error":
            return queryset.filter(selectors.likely_label_error_condition())
        if self.value() == "checked":
            return queryset.filter(label_quality__label_checked_at__isnull=False)
        if self.value() == "not_scored":
            return queryset.filter(label_quality__isnull=True)
        return queryset


def _bulk_review_action(state: str, flag: str | None = None):
    """An admin action that reviews every selected scan (one audit entry per scan)."""
    verb = {"accepted": "accepted", "rejected": "rejected", "pending": "set back to pending"}[state]
    if flag:
        description = f"Reject selected scans: {QUALITY_FLAGS[flag].lower()}"
        name = f"reject_{flag}"
    else:
        description = {
            "accepted": "Accept selected scans",
            "rejected": "Reject selected scans",
            "pending": "Set selected scans back to pending",
        }[state]
        name = f"mark_{state}"

    def action(model_admin, request, queryset):
        result = services.scans_review_bulk(
            scans=queryset, reviewer=request.user, state=state, flags={flag: True} if flag else None
        )
        _report_bulk(model_admin, request, result, verb)

    action.__name__ = name
    return admin.action(description=description, permissions=["review"])(action)


@admin.register(ReviewQueueScan)
class ReviewQueueScanAdmin(AuditTrailMixin, admin.ModelAdmin):
    form = ScanReviewForm
    list_display = ["preview", "scan_label", "baby_summary", "consent", "state"]
    list_display_links = ["preview", "scan_label"]
    list_filter = [
        LikelyLabelErrorFilter,
        ReviewStateFilter,
        LabelledFilter,
        QualityFlagFilter,
        ConsentFilter,
        BabyDeletedFilter,
        "has_markers",
    ]
    search_fields = ["=id", "=baby__id", "baby__owner__email", "perceptual_hash", "sha256"]
    list_per_page = 50
    show_full_result_count = False
    actions = [
        _bulk_review_action(ReviewState.ACCEPTED),
        _bulk_review_action(ReviewState.REJECTED),
        _bulk_review_action(ReviewState.PENDING),
        *(_bulk_review_action(ReviewState.REJECTED, flag) for flag in QUALITY_FLAGS),
        "score_label_quality",
        "mark_label_checked",
    ]
    readonly_fields = [
        "large_image",
        "baby_link",
        "label",
        "consent",
        "original_format",
        "size",
        "gestational_week",
        "uploaded_at",
        "sha256",
        "perceptual_hash",
        "near_duplicates",
        "label_check",
        "reviewed",
        "audit_trail",
    ]
    fieldsets = [
        (None, {"fields": ["large_image"]}),
        ("Review", {"fields": ["review_state", *QUALITY_FLAGS, "review_note", "reviewed"]}),
        (
            "Scan",
            {
                "fields": [
                    "baby_link",
                    "label",
                    "label_check",
                    "consent",
                    "original_format",
                    "size",
                    "gestational_week",
                    "uploaded_at",
                    "sha256",
                    "perceptual_hash",
                    "near_duplicates",
                ]
            },
        ),
        ("Audit trail", {"fields": ["audit_trail"]}),
    ]

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request):
        return selectors.review_queue()

    def get_ordering(self, request):
        return selectors.REVIEW_QUEUE_ORDERING

    def get_urls(self):
        urls = [
            path(
                "duplicates/",
                self.admin_site.admin_view(self.duplicates_view),
                name="curation_reviewqueuescan_duplicates",
            ),
        ]
        return urls + super().get_urls()

    # Scans come from parents' uploads and leave with a purge: never added or deleted here.
    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_review_permission(self, request):
        return request.user.has_perm("curation.review_scan")

    def has_change_permission(self, request, obj=None):
        return self.has_review_permission(request)

    def has_view_permission(self, request, obj=None):
        return self.has_review_permission(request) or super().has_view_permission(request, obj)

    # --- columns
    @admin.display(description="Image")
    def preview(self, scan):
        return _thumbnail(scan)

    @admin.display(description="Scan", ordering="id")
    def scan_label(self, scan):
        week = f"week {scan.gestational_week} · " if scan.gestational_week else ""
        return format_html(
            'Scan {}<br><span class="curation-muted curation-nowrap">{}{}</span>',
            scan.pk,
            week,
            f"{timezone.localtime(scan.uploaded_at):%d %b %Y}",
        )

    @admin.display(description="Baby, label and model check", ordering="baby_id")
    def baby_summary(self, scan):
        baby = scan.baby
        label = "no confirmed sex"
        if baby.confirmed_sex:
            label = f"{baby.get_confirmed_sex_display()} · {SHORT_LABEL_SOURCES[baby.confirmed_sex_source]}"
        return format_html(
            '{}<br><span class="curation-muted curation-nowrap">{}</span>{}',
            self.baby_link(scan),
            label,
            self.label_check(scan, brief=True),
        )

    @admin.display(description="Baby", ordering="baby_id")
    def baby_link(self, scan):
        baby = scan.baby
        deleted = " (deleted)" if baby.is_deleted else ""
        return format_html(
            '<a href="{}">Baby {}</a>{}',
            reverse("admin:babies_baby_change", args=[baby.pk]),
            baby.pk,
            deleted,
        )

    @admin.display(description="Confirmed sex")
    def label(self, scan):
        baby = scan.baby
        if not baby.confirmed_sex:
            return "—"
        return f"{baby.get_confirmed_sex_display()} ({baby.get_confirmed_sex_source_display().lower()})"

    @admin.display(description="Consent", boolean=True)
    def consent(self, scan):
        return scan.baby.owner.allows_training_use

    @admin.display(description="Model vs label", ordering="-error_order")
    def label_check(self, scan, *, brief: bool = False):
        """The stored disagreement (never computed here: ``manage.py score_label_quality``).

        ``brief`` (the queue's label column): nothing unless a current score exists, on a new line.
        """
        score = getattr(scan, "label_quality", None)
        if brief and (score is None or score.sex != scan.baby.confirmed_sex):
            return ""
        if score is None:
            return format_html('<span class="curation-muted">{}</span>', "not scored")
        if score.sex != scan.baby.confirmed_sex:
            return format_html('<span class="curation-muted">{}</span>', "label changed since scoring")
        other = Sex.MALE.label if score.sex == Sex.FEMALE else Sex.FEMALE.label
        version = f"model #{score.model_version_id}" if score.model_version_id else "a deleted model"
        scored = f"{version}, {timezone.localtime(score.scored_at):%d %b}"
        if score.label_checked_at is not None:
            verdict, css = "label checked", "curation-label-checked"
        elif score.disagreement >= score.LIKELY_ERROR_THRESHOLD:
            verdict, css = "likely label error", "curation-label-error"
        else:
            verdict, css = "agrees", "curation-label-ok"
        return format_html(
            '{}<span class="curation-label {}">{}</span><br>'
            '<span class="curation-muted curation-nowrap" title="Scored with {}">{} {} (model #{})</span>',
            mark_safe("<br>") if brief else "",  # noqa: S308 (a constant)
            css,
            verdict,
            scored,
            f"{score.disagreement:.0%}",
            other.lower(),
            score.model_version_id or "?",
        )

    @admin.display(description="Review", ordering="queue_rank")
    def state(self, scan):
        review = getattr(scan, "review", None)
        state = review.state if review else ReviewState.PENDING
        lines = []
        if review is not None and review.flags:
            lines.append(", ".join(review.flag_labels()))
        if review is not None and review.reviewed_at is not None:
            who = review.reviewed_by.email.split("@")[0] if review.reviewed_by else "a deleted user"
            lines.append(f"{who}, {timezone.localtime(review.reviewed_at):%d %b %H:%M}")
        return format_html(
            '<span class="curation-state curation-state-{}">{}</span>{}',
            state,
            ReviewState(state).label,
            format_html_join("", '<br><span class="curation-muted">{}</span>', ((line,) for line in lines)),
        )

    @admin.display(description="Reviewed")
    def reviewed(self, scan):
        review = getattr(scan, "review", None)
        if review is None or review.reviewed_at is None:
            return "Not yet"
        who = review.reviewed_by.email if review.reviewed_by else "a deleted user"
        return format_html(
            '<span class="curation-nowrap" title="{}">{}</span><br>'
            '<span class="curation-muted curation-nowrap">{}</span>',
            who,
            who.split("@")[0],
            f"{timezone.localtime(review.reviewed_at):%d %b %H:%M}",
        )

    @admin.display(description="Pixels")
    def size(self, scan):
        return f"{scan.width} × {scan.height}"

    @admin.display(description="JPEG")
    def large_image(self, scan):
        return format_html(
            '<a href="{0}"><img src="{0}" alt="Scan {1} of baby {2}" class="curation-large"></a>',
            reverse("babies:scan_image", args=[scan.pk]),
            scan.pk,
            scan.baby_id,
        )

    @admin.display(description="Near-duplicates")
    def near_duplicates(self, scan):
        if not scan.perceptual_hash:
            return "No perceptual hash."
        others = selectors.near_duplicates_of(scan=scan)
        if not others:
            return "None found."
        return format_html_join(
            " ",
            '<a href="{}" class="curation-dup-link">{}<span>scan {}, baby {}, {} bit{}</span></a>',
            (
                (
                    _review_url(other.pk),
                    _thumbnail(other, css_class="curation-thumb-small"),
                    other.pk,
                    other.baby_id,
                    distance,
                    "" if distance == 1 else "s",
                )
                for other, distance in others
            ),
        )

    # --- label checks
    @admin.action(
        description="Score label quality of selected scans with the active model", permissions=["review"]
    )
    def score_label_quality(self, request, queryset):
        from predictions.inference import ModelLoadError, NoActiveModelError

        try:
            result = services.label_quality_score(scans=queryset)
        except (NoActiveModelError, ModelLoadError) as error:
            self.message_user(request, f"Nothing scored: {error}", messages.ERROR)
            return
        self.message_user(
            request,
            f"{result.scored} labelled scans scored: {result.likely_errors} likely label errors"
            + (f", {result.failed} could not be read" if result.failed else "")
            + ". Unlabelled scans are skipped.",
            messages.SUCCESS,
        )

    @admin.action(description="The label is right: clear the likely-error mark", permissions=["review"])
    def mark_label_checked(self, request, queryset):
        batch = services.new_batch()
        checked = sum(
            services.scan_label_mark_checked(scan=scan, actor=request.user, batch=batch) for scan in queryset
        )
        self.message_user(request, f"{checked} labels marked as checked; the others had no open score.")

    # --- saving
    def save_model(self, request, obj, form, change):
        services.scan_review_update(
            scan=obj,
            reviewer=request.user,
            state=form.cleaned_data["review_state"],
            flags=form.review_flags,
            note=form.cleaned_data["review_note"],
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        scan = self.get_object(request, object_id)
        if scan is not None:
            extra_context = {
                "title": f"Review scan {scan.pk}",
                "subtitle": f"Baby {scan.baby_id}, uploaded {timezone.localtime(scan.uploaded_at):%d %b %Y}",
                **(extra_context or {}),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def response_change(self, request, obj):
        if "_review_next" in request.POST:
            following = selectors.review_queue_next(after=obj)
            self.message_user(request, f"Scan {obj.pk} reviewed.", messages.SUCCESS)
            if following is None:
                self.message_user(request, "No labelled scans are waiting for review.")
                return HttpResponseRedirect(reverse("admin:curation_reviewqueuescan_changelist"))
            return HttpResponseRedirect(_review_url(following.pk))
        return super().response_change(request, obj)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            "title": "Review queue",
            "subtitle": "Likely label errors first",
            **(extra_context or {}),
            "duplicates_url": reverse("admin:curation_reviewqueuescan_duplicates"),
        }
        return super().changelist_view(request, extra_context)

    # --- near-duplicates page
    def duplicates_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        form = DuplicateSearchForm(request.GET or None)
        max_distance, across = selectors.DEFAULT_DUPLICATE_DISTANCE, False
        if form.is_bound and form.is_valid():
            max_distance = form.cleaned_data["max_distance"]
            across = form.cleaned_data["across_babies_only"]
        if request.method == "POST":
            if not self.has_review_permission(request):
                raise PermissionDenied
            ids = [int(pk) for pk in request.POST.getlist("scan") if pk.isdigit()]
            if not ids:
                self.message_user(request, "Select the copies to reject first.", messages.WARNING)
            else:
                result = services.scans_review_bulk(
                    scans=Scan.objects.filter(pk__in=ids),
                    reviewer=request.user,
                    state=ReviewState.REJECTED,
                    flags={"is_duplicate": True},
                )
                _report_bulk(self, request, result, "rejected as duplicates")
            return HttpResponseRedirect(request.get_full_path())
        groups = selectors.near_duplicate_groups(max_distance=max_distance, across_babies_only=across)
        context = {
            **self.admin_site.each_context(request),
            "title": "Near-duplicate scans",
            "opts": self.model._meta,
            "form": form if form.is_bound else DuplicateSearchForm(),
            "groups": groups,
            "max_distance": max_distance,
            "can_review": self.has_review_permission(request),
            "changelist_url": reverse("admin:curation_reviewqueuescan_changelist"),
        }
        return TemplateResponse(request, "admin/curation/duplicates.html", context)


# --- Training sets -------------------------------------------------------------------------
@admin.register(TrainingSet)
class TrainingSetAdmin(AuditTrailMixin, admin.ModelAdmin):
    list_display = [
        "__str__",
        "created_at",
        "created_by",
        "item_count",
        "baby_count",
        "girls",
        "boys",
        "short_note",
    ]
    list_select_related = ["created_by"]
    readonly_fields = [
        "created_at",
        "created_by",
        "note",
        "label_source_list",
        "counts",
        "data_card_table",
        "items_link",
        "trained_models",
        "split_seed",
        "content_digest",
        "audit_trail",
    ]
    fieldsets = [
        (None, {"fields": ["created_at", "created_by", "note", "label_source_list"]}),
        ("Counts", {"fields": ["counts", "items_link", "trained_models"]}),
        ("Data card", {"fields": ["data_card_table"]}),
        ("Reproducibility", {"fields": ["split_seed", "content_digest"]}),
        ("Audit trail", {"fields": ["audit_trail"]}),
    ]

    class Media:
        css = ADMIN_CSS

    def get_urls(self):
        urls = [
            path(
                "create/",
                self.admin_site.admin_view(self.create_view),
                name="curation_trainingset_create",
            ),
        ]
        return urls + super().get_urls()

    # A frozen set is never edited or deleted; it is created by the "create" page only.
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_create_permission(self, request) -> bool:
        return request.user.has_perm("curation.add_trainingset")

    @admin.display(description="Girls")
    def girls(self, training_set):
        return training_set.class_counts.get(Sex.FEMALE, 0)

    @admin.display(description="Boys")
    def boys(self, training_set):
        return training_set.class_counts.get(Sex.MALE, 0)

    @admin.display(description="Note")
    def short_note(self, training_set):
        return training_set.note[:80]

    @admin.display(description="Label sources")
    def label_source_list(self, training_set):
        return ", ".join(LabelSource(source).label for source in training_set.label_sources)

    @admin.display(description="Scans per split and class")
    def counts(self, training_set):
        return render_to_string("admin/curation/_training_set_counts.html", {"training_set": training_set})

    @admin.display(description="What it holds and what it left out")
    def data_card_table(self, training_set):
        card = training_set.data_card or {}
        if not card:
            return render_to_string("admin/curation/_data_card.html", {"card": None})
        excluded = card.get("excluded", {})
        share = card.get("synthetic", {}).get("share", 0.0)
        context = {
            "card": card,
            "sex_rows": [(Sex(sex).label + "s", count) for sex, count in card.get("by_sex", {}).items()],
            "source_rows": [
                (LabelSource(source).label, count)
                for source, count in card.get("by_label_source", {}).items()
            ],
            "synthetic_percent": f"{share:.0%}" if share in (0, 1) or share >= 0.01 else f"{share:.1%}",
            "reason_rows": [
                (services.EXCLUSION_REASONS.get(reason, "Other"), count)
                for reason, count in excluded.get("by_reason", {}).items()
            ],
            "flag_rows": [
                (QUALITY_FLAGS.get(flag, flag), count)
                for flag, count in excluded.get("rejected_by_flag", {}).items()
                if count
            ],
        }
        return render_to_string("admin/curation/_data_card.html", context)

    @admin.display(description="Items")
    def items_link(self, training_set):
        erased = training_set.items.filter(erased_at__isnull=False).count()
        url = (
            reverse("admin:curation_trainingsetitem_changelist")
            + f"?training_set__id__exact={training_set.pk}"
        )
        note = f" ({erased} erased at their parent's request)" if erased else ""
        return format_html('<a href="{}">{} items</a>{}', url, training_set.item_count, note)

    @admin.display(description="Models trained on it")
    def trained_models(self, training_set):
        versions = training_set.model_versions.order_by("-created_at")
        if not versions:
            return "None yet: manage.py train_model --training-set " + str(training_set.pk)
        return format_html_join(
            mark_safe("<br>"),  # noqa: S308 (a constant)
            '<a href="{}">{}</a>{}',
            (
                (
                    reverse("admin:predictions_modelversion_change", args=[version.pk]),
                    version,
                    " (active)" if version.is_active else "",
                )
                for version in versions
            ),
        )

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_create_training_set": self.has_create_permission(request),
            "create_url": reverse("admin:curation_trainingset_create"),
        }
        return super().changelist_view(request, extra_context)

    def create_view(self, request):
        if not self.has_create_permission(request):
            raise PermissionDenied
        form = TrainingSetCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            groups = self._duplicate_groups(form.cleaned_data["label_sources"])
            try:
                training_set = services.training_set_create(
                    created_by=request.user,
                    note=form.cleaned_data["note"],
                    label_sources=form.cleaned_data["label_sources"],
                    excluded_duplicates=self._duplicate_choices(request.POST, groups),
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                counts = training_set.class_counts
                self.message_user(
                    request,
                    f"{training_set} created: {training_set.item_count} scans of {training_set.baby_count} "
                    f"babies ({counts.get('female', 0)} girls' scans, {counts.get('male', 0)} boys').",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:curation_trainingset_change", args=[training_set.pk])
                )
        sources = form.cleaned_data["label_sources"] if form.is_bound and form.is_valid() else None
        if form.is_bound and not form.is_valid() and form.data.getlist("label_sources"):
            sources = [s for s in form.data.getlist("label_sources") if s in LabelSource.values] or None
        context = {
            **self.admin_site.each_context(request),
            "title": "Create a training set",
            "opts": self.model._meta,
            "form": form,
            "summary": selectors.training_eligibility_summary(label_sources=sources),
            "duplicate_groups": [
                (group, request.POST.get(f"keep-{group.scans[0].pk}", "all"))
                for group in self._duplicate_groups(sources)
            ],
            "changelist_url": reverse("admin:curation_trainingset_changelist"),
        }
        return TemplateResponse(request, "admin/curation/training_set_create.html", context)

    @staticmethod
    def _duplicate_groups(sources) -> list[selectors.DuplicateGroup]:
        """Near-duplicates among the eligible scans of *different* babies: the copies that would
        put one picture in the set twice (and perhaps under two labels)."""
        eligible = selectors.scans_eligible_for_training(label_sources=sources)
        return selectors.near_duplicate_groups(scans=eligible, across_babies_only=True)

    @staticmethod
    def _duplicate_choices(data, groups: list[selectors.DuplicateGroup]) -> dict[int, int]:
        """``{left-out scan: kept scan}`` from the radio buttons ``keep-<first scan of group>``.

        "all" (the default) keeps every copy; an id outside its group is ignored.
        """
        excluded: dict[int, int] = {}
        for group in groups:
            choice = data.get(f"keep-{group.scans[0].pk}", "all")
            ids = [scan.pk for scan in group.scans]
            if choice.isdigit() and int(choice) in ids:
                excluded.update({pk: int(choice) for pk in ids if pk != int(choice)})
        return excluded


@admin.register(TrainingSetItem)
class TrainingSetItemAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "training_set",
        "sex",
        "label_source",
        "split",
        "gestational_week",
        "erased_at",
    ]
    list_filter = ["training_set", "split", "sex", "label_source", ("erased_at", admin.EmptyFieldListFilter)]
    search_fields = ["baby_key", "scan_key", "image_sha256"]
    readonly_fields = [
        "training_set",
        "scan_link",
        "baby_key",
        "scan_key",
        "sex",
        "label_source",
        "labelled_at",
        "gestational_week",
        "split",
        "image_sha256",
        "perceptual_hash",
        "erased_at",
    ]
    fields = readonly_fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="Live scan")
    def scan_link(self, item):
        if item.scan_id is None:
            return "Gone (purged); the frozen copy remains." if item.image else "Erased."
        return format_html('<a href="{}">Scan {}</a>', _review_url(item.scan_id), item.scan_id)


# --- Audit log -----------------------------------------------------------------------------
@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["when", "actor_repr", "action", "object_repr", "change_summary"]
    list_display_links = ["when"]
    list_filter = ["action", ("content_type", admin.RelatedOnlyFieldListFilter)]
    search_fields = ["object_repr", "actor_repr", "action", "=object_id", "=batch"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "created_at",
        "actor_repr",
        "action",
        "content_type",
        "object_id",
        "object_repr",
        "batch",
        "change_table",
        "data",
    ]
    fields = readonly_fields

    class Media:
        css = ADMIN_CSS

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="When", ordering="created_at")
    def when(self, entry):
        return format_html(
            '<span class="curation-nowrap">{}</span>',
            f"{timezone.localtime(entry.created_at):%d %b %Y %H:%M}",
        )

    @admin.display(description="Changes")
    def change_summary(self, entry):
        changes = entry.changes()
        if len(changes) == 1:
            key, before, after = changes[0]
            return f"{capfirst(key)}: {audit_value(before)} → {audit_value(after)}"[:120]
        return ", ".join(key for key, _, _ in changes)[:120] or ", ".join(entry.details())[:120]

    @admin.display(description="Before and after")
    def change_table(self, entry):
        return render_to_string("admin/curation/_audit_trail.html", {"entries": [entry], "hide_object": True})


# --- Model versions ------------------------------------------------------------------------
# predictions.admin registers the read-only version pages (metrics, plots); curation adds the
# training set, the audit trail and an activation that asks first and is logged.
admin.site.unregister(ModelVersion)


@admin.register(ModelVersion)
class CuratedModelVersionAdmin(AuditTrailMixin, ModelVersionAdmin):
    list_display = [*ModelVersionAdmin.list_display, "training_set_link"]
    list_select_related = ["training_set"]
    fieldsets = [
        *ModelVersionAdmin.fieldsets[:-1],
        ("Training set", {"fields": ["training_set_link"]}),
        ("Model history", {"fields": ["activation_history"]}),
        ModelVersionAdmin.fieldsets[-1],
        ("Audit trail", {"fields": ["audit_trail"]}),
    ]
    readonly_fields = [
        *ModelVersionAdmin.readonly_fields,
        "training_set_link",
        "activation_history",
        "audit_trail",
    ]
    actions = [*ModelVersionAdmin.actions, "compare"]
    # Versions shown on the compare page when none are selected.
    COMPARE_DEFAULT_COUNT = 8

    class Media:
        css = ADMIN_CSS

    def get_urls(self):
        compare = path(
            "compare/",
            self.admin_site.admin_view(self.compare_view),
            name="predictions_modelversion_compare",
        )
        return [compare, *super().get_urls()]

    @admin.display(description="Activations (who, when, why)")
    def activation_history(self, version):
        from predictions.selectors import model_activation_history

        return render_to_string(
            "admin/curation/_model_history.html",
            {
                "rows": model_activation_history(model_version=version),
                "compare_url": reverse("admin:predictions_modelversion_compare"),
            },
        )

    @admin.action(description="Compare the selected versions")
    def compare(self, request, queryset):
        ids = "&".join(f"id={pk}" for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:predictions_modelversion_compare')}?{ids}")

    def compare_view(self, request):
        """Versions side by side, with an inline-SVG plot; ``?id=`` picks them (default: newest)."""
        from curation.charts import Series, line_chart_svg
        from predictions.selectors import model_version_comparison

        if not self.has_view_permission(request):
            raise PermissionDenied
        ids = [int(pk) for pk in request.GET.getlist("id") if pk.isdigit()]
        versions = ModelVersion.objects.select_related("training_set")
        versions = (
            list(versions.filter(pk__in=ids))
            if ids
            else list(versions.order_by("-created_at", "-id")[: self.COMPARE_DEFAULT_COUNT])
        )
        comparison = model_version_comparison(versions=versions)
        metric_rows = []
        for key, label, values, higher_is_better in comparison.metric_rows:
            known = [v for v in values if v is not None]
            best = (max(known) if higher_is_better else min(known)) if len(known) > 1 else None
            cells = [
                (
                    "—" if v is None else (f"{v:.1%}" if key in PERCENT_METRICS else f"{v:.3f}"),
                    v is not None and v == best,
                )
                for v in values
            ]
            metric_rows.append((key, label, cells))

        def accuracy_cells(cells):
            return ["—" if c is None else f"{c[0]:.0%}" + (f" (n={c[1]})" if c[1] else "") for c in cells]

        week_rows = [
            (f"Week {week}" if week.isdigit() else week, accuracy_cells(cells))
            for week, cells in comparison.week_rows
        ]
        band_rows = [
            (f"Weeks {band}" if band != "unknown" else "Week unknown", accuracy_cells(cells))
            for band, cells in comparison.band_rows
        ]
        plotted = [
            (label, values) for key, label, values, _ in comparison.metric_rows if key in PLOTTED_METRICS
        ]
        chart = line_chart_svg(
            title="Held-out metrics across model versions, oldest first (0 to 1)",
            x_labels=[f"#{version.pk}" for version in comparison.versions],
            series=[
                Series(label=label, values=values)
                for label, values in plotted
                if any(v is not None for v in values)
            ],
        )
        context = {
            **self.admin_site.each_context(request),
            "title": "Compare model versions",
            "opts": self.model._meta,
            "comparison": comparison,
            "metric_rows": metric_rows,
            "week_rows": week_rows,
            "band_rows": band_rows,
            "training_columns": list(zip(comparison.versions, comparison.training_scans, strict=True)),
            "chart": chart,
            "showing_newest": not ids,
        }
        return TemplateResponse(request, "admin/curation/model_version_compare.html", context)

    def has_activate_permission(self, request) -> bool:
        return request.user.has_perm("predictions.change_modelversion")

    # A version is a record of what was trained on what: viewed and activated, never edited or
    # deleted here (its predictions protect it, and deleting a row would orphan its files).
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description="training set")
    def training_set_link(self, version):
        if version.training_set_id is None:
            return "—" if not version.is_synthetic else "— (synthetic folder)"
        return format_html(
            '<a href="{}">{}</a>',
            reverse("admin:curation_trainingset_change", args=[version.training_set_id]),
            version.training_set,
        )

    @admin.action(description="Activate the selected model version", permissions=["activate"])
    def activate(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one model version to activate.", messages.ERROR)
            return None
        version = queryset.get()
        if request.POST.get("post") == "yes":
            override = request.POST.get("override_reason", "").strip()
            try:
                activated = services.model_version_activate_as_staff(
                    model_version=version,
                    actor=request.user,
                    reason=f"admin action, gate overridden: {override}" if override else "admin action",
                    override_gate=bool(override),
                )
            except ModelGateError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return None
            if activated:
                self.message_user(request, f"{version} is now active: predictions use it.", messages.SUCCESS)
            else:
                self.message_user(request, f"{version} was already active.")
            return None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Activate {version}?",
            "opts": self.model._meta,
            "version": version,
            "active": ModelVersion.objects.filter(is_active=True).exclude(pk=version.pk).first(),
            "summary": self.metrics_summary(version),
            "gate": model_version_gate(version),
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/curation/model_version_activate_confirmation.html", context)
