"""Babies, including those their parents deleted: restore, purge, or correct the confirmed sex.

Babies are created and edited by parents only, so this admin is read-only apart from the actions
and a staff label correction.
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count
from django.utils import timezone
from django.utils.html import format_html

from babies import services as baby_services
from babies.models import Baby, LabelSource, Scan, user_may_view_every_baby
from curation import services
from curation.admin import views
from curation.admin.common import (
    ADMIN_CSS,
    AuditTrailMixin,
    ChoicesFilter,
    ConfirmedSexFilter,
    DeletedFilter,
    NoAddOrDeleteMixin,
    ParentsDataMixin,
    ReadOnlyMixin,
    ScanColumnsMixin,
    confirmed_sex_text,
    count_in_one_batch,
    review_url,
    thumbnail,
)
from curation.forms import BabyStaffForm


class LabelSourceFilter(ChoicesFilter):
    title = "label source"
    parameter_name = "label_source"
    text_choices = LabelSource
    lookup = "confirmed_sex_source"


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


class ScanInline(ReadOnlyMixin, ScanColumnsMixin, admin.TabularInline):
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

    # Whoever may see babies sees their scans (``babies.view_baby``); Scan's own model permissions
    # are not part of any role.
    def has_view_permission(self, request, obj=None):
        return user_may_view_every_baby(request.user)

    @admin.display(description="Scan")
    def preview(self, scan):
        return thumbnail(scan)

    @admin.display(description="Review")
    def review_link(self, scan):
        return format_html('<a href="{}">Review scan {}</a>', review_url(scan.pk), scan.pk)

    @admin.display(description="State")
    def review_state(self, scan):
        review = getattr(scan, "review", None)
        if review is None:
            return "Pending"
        flags = ", ".join(review.flag_labels())
        return f"{review.get_state_display()}{f' ({flags})' if flags else ''}"


@admin.register(Baby)
class BabyAdmin(ParentsDataMixin, AuditTrailMixin, NoAddOrDeleteMixin, admin.ModelAdmin):
    """Parents add babies; deleting one here would leave its files behind: "purge" does it properly.

    Seeing babies is ``babies.view_baby``; correcting a label ``babies.change_baby``; restoring and
    purging are data protection's own permissions (``accounts.restore_baby``, ``accounts.purge_baby``).
    """

    form = BabyStaffForm
    list_display = ["baby_name", "owner_email", "dates", "label", "scan_count", "consent", "deleted"]
    list_filter = [DeletedFilter, ConfirmedSexFilter, LabelSourceFilter, OutcomeEmailFilter, DueMonthFilter]
    search_fields = ["owner__email", "name", "=id"]
    list_select_related = ["owner"]
    actions = ["restore_babies", "purge_babies", "retry_outcome_emails"]
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

    def has_restore_permission(self, request):
        return self.may_see_parents_data(request) and request.user.has_perm("accounts.restore_baby")

    def has_purge_permission(self, request):
        return self.may_see_parents_data(request) and request.user.has_perm("accounts.purge_baby")

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
        return confirmed_sex_text(baby)

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
            baby_services.baby_confirm_sex(baby=obj, sex=sex, source=LabelSource.STAFF, actor=request.user)

    @admin.action(description="Restore selected babies (undo the parent's delete)", permissions=["restore"])
    def restore_babies(self, request, queryset):
        restored = count_in_one_batch(
            queryset, baby_services.baby_restore, keyword="baby", actor=request.user
        )
        self.message_user(request, f"{restored} restored; {queryset.count() - restored} were not deleted.")

    @admin.action(
        description="Purge selected babies (delete scans and files for good)", permissions=["purge"]
    )
    def purge_babies(self, request, queryset):
        if request.POST.get("post") != "yes":
            return views.baby_purge_confirmation(request, model_admin=self, babies=queryset)
        batch = services.new_batch()
        removals = [baby_services.baby_purge(baby=baby, actor=request.user, batch=batch) for baby in queryset]
        pending = sum(1 for removal in removals if not removal.complete)
        if pending:
            self.message_user(
                request,
                f"{len(removals)} purged with their scans; the files of {pending} could not be erased yet "
                "(storage refused). They are in the ledger of file deletions and cron retries them.",
                messages.WARNING,
            )
        else:
            self.message_user(
                request, f"{len(removals)} purged, with their scans and files.", messages.SUCCESS
            )
        return None

    @admin.action(
        description="Retry the outcome e-mail of selected babies (reset refusals)", permissions=["change"]
    )
    def retry_outcome_emails(self, request, queryset):
        """For a baby given up after the address was refused (the parent has fixed the mailbox,
        say): the next ``send_outcome_emails`` run tries again. Sent e-mails are never re-sent."""
        from predictions.services import outcome_request_retry

        retried = count_in_one_batch(queryset, outcome_request_retry, keyword="baby", actor=request.user)
        self.message_user(
            request,
            f"{retried} outcome e-mail(s) will be tried on the next run; "
            f"{queryset.count() - retried} had none waiting (sent, never tried or not due).",
        )
