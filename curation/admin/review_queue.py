"""The review queue: staff accept or reject scans (one audit entry per scan, bulk actions included),
check labels the model disagrees with, and find near-duplicates (``views.duplicates``)."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Exists, OuterRef, Q
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from babies.models import LabelSource, Sex
from curation import selectors, services
from curation.admin import views
from curation.admin.common import (
    ADMIN_CSS,
    AuditTrailMixin,
    ChoicesFilter,
    ConfirmedSexFilter,
    DeletedFilter,
    NoAddOrDeleteMixin,
    ParentsDataMixin,
    ScanColumnsMixin,
    YesNoFilter,
    admin_page,
    confirmed_sex_text,
    count_in_one_batch,
    report_bulk,
    review_url,
    thumbnail,
)
from curation.forms import ScanReviewForm
from curation.models import QUALITY_FLAGS, ReviewQueueScan, ReviewState
from predictions.inference import ModelLoadError, NoActiveModelError
from predictions.models import OutcomeAnswer

# The scan's own fields, read-only on its review page.
SCAN_FIELDS = [
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


class ReviewStateFilter(ChoicesFilter):
    title = "review"
    parameter_name = "review"
    text_choices = ReviewState
    lookup = "review__state"

    def queryset(self, request, queryset):
        # A scan nobody has reviewed has no review row yet: it is pending too.
        if self.value() == ReviewState.PENDING:
            return queryset.filter(Q(review__isnull=True) | Q(review__state=ReviewState.PENDING))
        return super().queryset(request, queryset)


class LabelledFilter(ConfirmedSexFilter):
    title = "baby's sex"
    parameter_name = "labelled"
    lookup = "baby__confirmed_sex"


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


def _parent_answer_disagrees():
    """An outcome e-mail answer for the scan's baby that is not the baby's current label (staff
    labels are never overwritten by one, so this is where the parent's word shows)."""
    return Exists(
        OutcomeAnswer.objects.filter(baby_id=OuterRef("baby_id")).exclude(sex=OuterRef("baby__confirmed_sex"))
    )


class ParentAnswerFilter(YesNoFilter):
    title = "parent's e-mail answer"
    parameter_name = "parent_answer"
    lookup = "parent_answer_disagrees"
    yes_label, no_label = "Disagrees with the label", "Agrees or none"


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
        report_bulk(model_admin, request, result, verb)

    action.__name__ = name
    return admin.action(description=description, permissions=["review"])(action)


@admin.register(ReviewQueueScan)
class ReviewQueueScanAdmin(
    ParentsDataMixin, AuditTrailMixin, NoAddOrDeleteMixin, ScanColumnsMixin, admin.ModelAdmin
):
    """Scans come from parents' uploads and leave with a purge: reviewed here, never added or deleted.

    Reviewing needs ``curation.review_scan`` and ``babies.view_baby`` (the scans are parents'
    pictures); one without the other opens nothing here.
    """

    form = ScanReviewForm
    list_display = ["preview", "scan_label", "baby_summary", "consent", "state"]
    list_display_links = ["preview", "scan_label"]
    list_filter = [
        LikelyLabelErrorFilter,
        ParentAnswerFilter,
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
    readonly_fields = ["large_image", *SCAN_FIELDS, "reviewed", "audit_trail"]
    fieldsets = [
        (None, {"fields": ["large_image"]}),
        ("Review", {"fields": ["review_state", *QUALITY_FLAGS, "review_note", "reviewed"]}),
        ("Scan", {"fields": SCAN_FIELDS}),
        ("Audit trail", {"fields": ["audit_trail"]}),
    ]

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request):
        return selectors.review_queue().annotate(parent_answer_disagrees=_parent_answer_disagrees())

    def get_ordering(self, request):
        return selectors.REVIEW_QUEUE_ORDERING

    def get_urls(self):
        duplicates = admin_page(self, "duplicates/", views.duplicates, "curation_reviewqueuescan_duplicates")
        return [duplicates, *super().get_urls()]

    def has_review_permission(self, request):
        return self.may_see_parents_data(request) and request.user.has_perm("curation.review_scan")

    def has_change_permission(self, request, obj=None):
        return self.has_review_permission(request)

    def has_view_permission(self, request, obj=None):
        return self.has_review_permission(request) or super().has_view_permission(request, obj)

    def has_module_permission(self, request):
        return self.has_view_permission(request)

    # --- columns
    @admin.display(description="Image")
    def preview(self, scan):
        return thumbnail(scan)

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
        return format_html(
            '{}<br><span class="curation-muted curation-nowrap">{}</span>{}{}',
            self.baby_link(scan),
            confirmed_sex_text(scan.baby, if_none="no confirmed sex"),
            self.label_check(scan, brief=True),
            format_html(
                '<br><span class="curation-label curation-label-error">{}</span>', "parent's answer disagrees"
            )
            if getattr(scan, "parent_answer_disagrees", False)
            else "",
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
        return confirmed_sex_text(scan.baby, full_source=True)

    @admin.display(description="Consent", boolean=True)
    def consent(self, scan):
        return scan.baby.owner.allows_training_use

    @admin.display(description="Model vs label", ordering="-error_order")
    def label_check(self, scan, *, brief: bool = False):
        """The stored disagreement (never computed here: ``manage.py score_label_quality``).

        The verdict is the baby's (all its scans combined: the label is the baby's), with this
        scan's own figure beside it. ``brief`` (the queue's label column): nothing unless a
        current score exists, on a new line.
        """
        score = getattr(scan, "label_quality", None)
        if brief and (score is None or score.sex != scan.baby.confirmed_sex):
            return ""
        if score is None:
            return format_html('<span class="curation-muted">{}</span>', "not scored")
        if score.sex != scan.baby.confirmed_sex:
            return format_html('<span class="curation-muted">{}</span>', "label changed since scoring")
        other = (Sex.MALE.label if score.sex == Sex.FEMALE else Sex.FEMALE.label).lower()
        version = f"model #{score.model_version_id}" if score.model_version_id else "a deleted model"
        scored = f"{version}, {timezone.localtime(score.scored_at):%d %b}"
        baby_score = score.label_score
        if score.label_checked_at is not None:
            verdict, css = "label checked", "curation-label-checked"
        elif scan.baby.confirmed_sex_source == LabelSource.STAFF:
            verdict, css = "set by staff", "curation-label-checked"
        elif baby_score >= score.LIKELY_ERROR_THRESHOLD:
            verdict, css = "likely label error", "curation-label-error"
        else:
            verdict, css = "agrees", "curation-label-ok"
        if score.baby_disagreement is None:
            figures = f"{score.disagreement:.0%} {other} (this scan)"
        else:
            scans = f"{score.baby_scans} scan{'' if score.baby_scans == 1 else 's'}"
            figures = f"{baby_score:.0%} {other} (baby, {scans}; this scan {score.disagreement:.0%})"
        return format_html(
            '{}<span class="curation-label {}">{}</span><br>'
            '<span class="curation-muted curation-nowrap" title="Scored with {}">{} (model #{})</span>',
            mark_safe("<br>") if brief else "",  # noqa: S308 (a constant)
            css,
            verdict,
            scored,
            figures,
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
                    review_url(other.pk),
                    thumbnail(other, css_class="curation-thumb-small"),
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
        try:
            result = services.label_quality_score(scans=queryset)
        except (NoActiveModelError, ModelLoadError) as error:
            self.message_user(request, f"Nothing scored: {error}", messages.ERROR)
            return
        self.message_user(
            request,
            f"{result.scored} labelled scans of {result.babies} babies scored: "
            f"{result.likely_errors} likely label errors"
            + (f", {result.failed} could not be read" if result.failed else "")
            + ". Unlabelled scans are skipped.",
            messages.SUCCESS,
        )

    @admin.action(
        description="The baby's label is right: clear the likely-error mark (all its scans)",
        permissions=["review"],
    )
    def mark_label_checked(self, request, queryset):
        checked = count_in_one_batch(
            queryset, services.scan_label_mark_checked, keyword="scan", actor=request.user
        )
        self.message_user(
            request,
            f"{checked} babies' labels marked as checked (all their scans); the others had no open score.",
        )

    # --- saving and the pages around the change form
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
            return HttpResponseRedirect(review_url(following.pk))
        return super().response_change(request, obj)

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            "title": "Review queue",
            "subtitle": "Likely label errors first",
            **(extra_context or {}),
            "duplicates_url": reverse("admin:curation_reviewqueuescan_duplicates"),
        }
        return super().changelist_view(request, extra_context)
