from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts.models import User


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
