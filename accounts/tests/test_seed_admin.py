import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

STRONG = "Correct-Horse-Battery-Staple-9"


@pytest.fixture
def admin_env(monkeypatch):
    monkeypatch.setenv("DJANGO_ADMIN_EMAIL", "Admin@Instagender.example")
    monkeypatch.setenv("DJANGO_ADMIN_PASSWORD", STRONG)


def test_seed_admin_creates_a_verified_staff_superuser(db, admin_env, capsys):
    call_command("seed_admin")
    user = get_user_model().objects.get()
    assert user.email == "admin@instagender.example"
    assert user.is_staff and user.is_superuser and user.is_active
    assert user.check_password(STRONG)
    assert EmailAddress.objects.get(user=user).verified
    output = capsys.readouterr().out
    assert "Created staff superuser admin@instagender.example" in output
    assert STRONG not in output


def test_seed_admin_is_idempotent_and_updates_the_password(db, admin_env, monkeypatch, capsys):
    call_command("seed_admin")
    monkeypatch.setenv("DJANGO_ADMIN_PASSWORD", STRONG + "-changed")
    call_command("seed_admin")
    user = get_user_model().objects.get()
    assert user.check_password(STRONG + "-changed")
    assert EmailAddress.objects.count() == 1
    assert "Updated staff superuser" in capsys.readouterr().out


def test_seed_admin_promotes_an_existing_parent(db, admin_env, django_user_model):
    django_user_model.objects.create_user("admin@instagender.example", "whatever-Pass-123")
    call_command("seed_admin")
    user = django_user_model.objects.get()
    assert user.is_staff and user.is_superuser


@pytest.mark.parametrize(
    ("email", "password", "message"),
    [
        ("", STRONG, "Set DJANGO_ADMIN_EMAIL"),
        ("admin@instagender.example", "", "Set DJANGO_ADMIN_EMAIL"),
        ("not-an-address", STRONG, "not a valid address"),
        ("admin@instagender.example", "123", "too weak"),
    ],
)
def test_seed_admin_refuses_bad_input_and_writes_nothing(db, monkeypatch, email, password, message):
    monkeypatch.setenv("DJANGO_ADMIN_EMAIL", email)
    monkeypatch.setenv("DJANGO_ADMIN_PASSWORD", password)
    with pytest.raises(CommandError, match=message):
        call_command("seed_admin")
    assert not get_user_model().objects.exists()
