"""factory_boy factories for users (verified by default, as most tests need a working login)."""

import base64
import hashlib
import hmac
import struct
import time

import factory
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model

DEFAULT_PASSWORD = "a-Long-and-unusual-passphrase-42"
# Every factory-made staff account's authenticator app shares this secret (base32), so a test can
# compute its codes (``totp_code``).
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def totp_code(secret: str = TOTP_SECRET, *, at: float | None = None) -> str:
    """The RFC 6238 code an authenticator app shows for ``secret`` (30 s steps, 6 digits, SHA-1)."""
    counter = int((time.time() if at is None else at) // 30)
    digest = hmac.new(base64.b32decode(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{value % 1_000_000:06d}"


def add_totp_authenticator(user, secret: str = TOTP_SECRET):
    """Set up an authenticator app for ``user`` as allauth does when they scan the QR code."""
    from allauth.mfa.totp.internal.auth import TOTP

    return TOTP.activate(user, secret).instance


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"parent{n}@example.com")
    password = factory.PostGenerationMethodCall("set_password", DEFAULT_PASSWORD)

    @factory.post_generation
    def verified(self, create, extracted, **kwargs):
        """Pass ``verified=False`` for a user who has not confirmed the address yet."""
        if not create:
            return
        self.save()
        EmailAddress.objects.create(
            user=self, email=self.email, primary=True, verified=extracted is not False
        )

    @factory.post_generation
    def mfa(self, create, extracted, **kwargs):
        """Staff get an authenticator app (``TOTP_SECRET``), as the admin requires; parents do not.

        ``mfa=False`` makes staff without one, ``mfa=True`` a parent with one.
        """
        if create and (extracted if extracted is not None else self.is_staff):
            add_totp_authenticator(self)


class StaffFactory(UserFactory):
    email = factory.Sequence(lambda n: f"staff{n}@example.com")
    is_staff = True
    is_superuser = True
