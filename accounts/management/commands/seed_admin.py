"""Create or update the staff superuser from the environment (the original Flask app's ``seed_db``).

Operators run it once after the first deploy and again whenever the admin's password changes:
it is idempotent. It reads ``DJANGO_ADMIN_EMAIL`` and ``DJANGO_ADMIN_PASSWORD``, marks the
e-mail address verified (so allauth lets the admin log in) and never prints the password. It also
brings the staff role groups up to date (``sync_staff_roles``), so they exist from the first start.
The superuser sets up an authenticator app at the first sign-in: the admin opens only after that.
"""

import os

from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model, password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.core.validators import validate_email
from django.db import transaction

from accounts.roles import staff_roles_sync


class Command(BaseCommand):
    help = "Create or update the staff superuser from DJANGO_ADMIN_EMAIL and DJANGO_ADMIN_PASSWORD."

    def handle(self, *args, **options):
        email = os.environ.get("DJANGO_ADMIN_EMAIL", "").strip().lower()
        password = os.environ.get("DJANGO_ADMIN_PASSWORD", "")
        if not email or not password:
            raise CommandError("Set DJANGO_ADMIN_EMAIL and DJANGO_ADMIN_PASSWORD.")
        try:
            validate_email(email)
        except ValidationError as error:
            raise CommandError(f"DJANGO_ADMIN_EMAIL is not a valid address: {email}") from error

        User = get_user_model()
        with transaction.atomic():
            user = User.objects.filter(email__iexact=email).select_for_update().first()
            created = user is None
            if created:
                user = User(email=email)
            try:
                password_validation.validate_password(password, user)
            except ValidationError as error:
                raise CommandError(
                    "DJANGO_ADMIN_PASSWORD is too weak: " + " ".join(error.messages)
                ) from error
            user.is_staff = True
            user.is_superuser = True
            user.is_active = True
            user.set_password(password)
            user.save()
            EmailAddress.objects.update_or_create(
                user=user, email=email, defaults={"verified": True, "primary": True}
            )
        staff_roles_sync()
        verb = "Created" if created else "Updated"
        self.stdout.write(self.style.SUCCESS(f"{verb} staff superuser {email}."))
        self.stdout.write("Staff role groups up to date; the first sign-in sets up two-factor sign-in.")
