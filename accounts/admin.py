"""Accounts in the admin: parents and staff (data protection exports and erases a parent's data),
and the two-factor authenticators, shown without their secrets."""

import tempfile

from allauth.mfa.admin import AuthenticatorAdmin as AllauthAuthenticatorAdmin
from allauth.mfa.models import Authenticator
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.http import FileResponse
from django.utils import timezone

from accounts.models import User
from accounts.services import user_data_export, user_delete
from audit.services import audit_log
from babies.models import Baby, Scan


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "is_staff", "is_active", "allows_training_use", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_active", "allows_training_use", "groups"]
    search_fields = ["email"]
    readonly_fields = ["date_joined", "last_login", "training_consent_changed_at"]
    actions = ["export_data"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Consent", {"fields": ["allows_training_use", "training_consent_changed_at"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]}),
    ]

    # Erasing a parent (their babies, scans, files and training copies) is data protection's
    # ``accounts.erase_parent_data``, not the plain "delete user" a cascade would need.
    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm("accounts.erase_parent_data")

    def has_export_permission(self, request):
        return request.user.has_perm("accounts.export_parent_data")

    # Deleting here must remove the parent's files and training copies too, as their own
    # account deletion does; a plain cascade would leave every file behind.
    def delete_model(self, request, obj):
        user_delete(user=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            user_delete(user=user, actor=request.user)

    def get_deleted_objects(self, objs, request):
        """Everything of the parent goes through ``user_delete`` (files and training copies
        included): the erase permission covers it, so no delete permission of each related model
        is needed (babies' and scans' admins refuse plain deletes anyway)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        if self.has_delete_permission(request):
            perms_needed = set()
        else:
            perms_needed -= {model._meta.verbose_name for model in (Baby, Scan)}
        return deleted, counts, perms_needed, protected

    @admin.action(description="Export the selected parent's data (ZIP)", permissions=["export"])
    def export_data(self, request, queryset):
        """The ZIP the parent can download themselves, for a request that came another way."""
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one account to export.", messages.ERROR)
            return None
        user = queryset.get()
        archive = tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024)  # noqa: SIM115 (FileResponse closes it)
        user_data_export(user=user, destination=archive, actor=request.user)
        archive.seek(0)
        filename = f"instagender-data-user-{user.pk}-{timezone.localdate():%Y-%m-%d}.zip"
        return FileResponse(archive, as_attachment=True, filename=filename, content_type="application/zip")


admin.site.unregister(Authenticator)


@admin.register(Authenticator)
class AuthenticatorAdmin(AllauthAuthenticatorAdmin):
    """allauth's, without the ``data`` field: it holds the TOTP secret and the recovery codes' seed,
    which would let whoever reads them pass as that person. Never added or edited here; deleting
    one (a lost phone) makes its owner set up a new one at the next sign-in, and is audited."""

    fields = ["user", "type", "created_at", "last_used_at"]
    readonly_fields = fields

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        self._audit_removal(request, obj)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for authenticator in queryset:
            self._audit_removal(request, authenticator)
        super().delete_queryset(request, queryset)

    def _audit_removal(self, request, authenticator):
        audit_log(
            actor=request.user,
            action="mfa.authenticator_removed",
            obj=authenticator.user,
            data={"authenticator": authenticator.type, "removed_in": "admin"},
        )
