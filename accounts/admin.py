from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User
from accounts.services import user_delete
from babies.models import Baby, Scan


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "is_staff", "is_active", "allows_training_use", "date_joined"]
    list_filter = ["is_staff", "is_superuser", "is_active", "allows_training_use"]
    search_fields = ["email"]
    readonly_fields = ["date_joined", "last_login", "training_consent_changed_at"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Consent", {"fields": ["allows_training_use", "training_consent_changed_at"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]}),
    ]

    # Deleting here must remove the parent's files and training copies too, as their own
    # account deletion does; a plain cascade would leave every file behind.
    def delete_model(self, request, obj):
        user_delete(user=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for user in queryset:
            user_delete(user=user, actor=request.user)

    def get_deleted_objects(self, objs, request):
        """Babies and scans go through ``user_delete`` (files included), so deleting them needs
        no delete permission of their own (their admin refuses plain deletes)."""
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        handled = {model._meta.verbose_name for model in (Baby, Scan)}
        return deleted, counts, perms_needed - handled, protected
