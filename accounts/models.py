"""The parent's account: e-mail is the login, there is no username."""

import uuid

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email: str, password: str | None, **extra_fields):
        if not email:
            raise ValueError("An e-mail address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **extra_fields)
        user.set_password(password)
        user.full_clean(exclude=["password"])
        user.save(using=self._db)
        return user

    def create_user(self, email: str, password: str | None = None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email: str, password: str | None = None, **extra_fields):
        extra_fields["is_staff"] = True
        extra_fields["is_superuser"] = True
        return self._create_user(email, password, **extra_fields)

    def get_by_natural_key(self, email):
        return self.get(email__iexact=email)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField("e-mail address", unique=True)
    is_staff = models.BooleanField(
        "staff status", default=False, help_text="Whether the user can log into the admin."
    )
    is_active = models.BooleanField(default=True)
    date_joined = models.DateTimeField(default=timezone.now)
    # Off until the parent opts in; enforced when a training set is built.
    allows_training_use = models.BooleanField(
        "lets Instagender train on their scans",
        default=False,
        help_text="The parent agreed that their labelled scans may improve the model.",
    )
    training_consent_changed_at = models.DateTimeField(null=True, blank=True)
    # A new value whenever something the parent's dashboard cards show changes: the key under
    # which each worker keeps the drawn cards (babies.card_cache). On this row because every
    # request reads it anyway; a random value, not a counter, so no two states share one.
    cards_stamp = models.UUIDField(default=uuid.uuid4, editable=False)

    objects = UserManager()

    EMAIL_FIELD = "email"
    USERNAME_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def clean(self):
        super().clean()
        self.email = self.__class__.objects.normalize_email(self.email).lower()

    def save(self, **kwargs):
        # The cards stamp is written only by babies.card_cache, as an UPDATE of that column.
        # Any other save of an existing user (a password change, the admin) leaves it alone: the
        # object may have been read before the stamp changed, and writing that old value back
        # would bring back cards drawn before the change.
        if not self._state.adding and kwargs.get("update_fields") is None and not kwargs.get("force_insert"):
            kwargs["update_fields"] = [
                field.name
                for field in self._meta.concrete_fields
                if not field.primary_key and field.name != "cards_stamp"
            ]
        super().save(**kwargs)


class StaffPermission(models.Model):
    """Permissions for staff actions that are not "add/change/delete/view" of one model.

    Restoring or purging a baby, exporting or erasing a parent's data and switching a model on are
    each a different job from editing the row they touch, so each has its own permission and the
    roles (``accounts.roles``) grant them one by one. The model has no table: it only carries the
    permissions (``accounts.<codename>``).
    """

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("restore_baby", "Can restore a baby its parent deleted"),
            ("purge_baby", "Can purge a baby with its scans and files"),
            ("export_parent_data", "Can export a parent's data"),
            ("erase_parent_data", "Can erase a parent's account and data"),
            ("activate_modelversion", "Can activate a model version that passes the quality gate"),
            ("override_model_gate", "Can activate a model version the quality gate refuses"),
        ]

    def __str__(self) -> str:
        return "staff permissions"


class CountedAction(models.Model):
    """One upload, prediction or data export an account made, while a per-account limit counts it.

    ``instagender.ratelimits`` counts an account's rows in each window of its limits and adds one
    when the request may go ahead; rows older than the longest window are deleted then too, so
    the table holds at most a day's worth per account. In the database every worker and container
    already share, so a limit holds whichever server answers.
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=32)
    at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["user", "action", "at"], name="counted_action_window")]

    def __str__(self) -> str:
        return f"{self.action} by user {self.user_id} at {self.at:%Y-%m-%d %H:%M:%S}"
