"""The dashboard keeps its drawn cards between visits (``babies.card_cache``), and never shows a
kept card after anything on it changed: every way a card changes is made here and then looked at."""

import datetime
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from babies import services
from babies.models import Baby, LabelSource
from babies.tests.factories import BabyFactory, create_scan
from predictions.models import ModelVersion
from predictions.services import prediction_create
from predictions.tests.predict_support import grey_scan, tiny_model_version

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("babies:dashboard")
CARD_TABLES = ("babies_baby", "babies_scan", "predictions_prediction", "predictions_modelversion")
TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


def dashboard(client) -> str:
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    return response.content.decode()


def without_tokens(page: str) -> str:
    return TOKEN.sub('name="csrfmiddlewaretoken" value=""', page)


def test_a_second_visit_reads_nothing_of_the_cards_again(parent_client, user):
    for name in ("Robin", "Sam"):
        create_scan(BabyFactory(owner=user, name=name))
    first = dashboard(parent_client)

    with CaptureQueriesContext(connection) as queries:
        second = dashboard(parent_client)

    assert not [query["sql"] for query in queries if any(table in query["sql"] for table in CARD_TABLES)]
    assert without_tokens(second) == without_tokens(first)
    assert second.count('data-testid="baby-card"') == 2


def test_a_kept_page_carries_a_fresh_csrf_token_that_works(user, password):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    baby = BabyFactory(owner=user, name="Robin", born=True)
    first = TOKEN.findall(dashboard(client))
    page = dashboard(client)  # the kept cards
    tokens = TOKEN.findall(page)

    assert tokens and len(tokens) == len(first)
    assert "<!--csrf-field-->" not in page
    assert set(tokens).isdisjoint(first)  # masked afresh for this response

    confirm = reverse("babies:baby_confirm_sex", args=[baby.pk])
    response = client.post(confirm, {"sex": "female", "csrfmiddlewaretoken": tokens[-1]})
    assert response.status_code == 302
    assert "You told us Robin is a <strong>girl</strong>." in dashboard(client)


def test_parents_never_get_each_others_kept_cards(client, user, other_user):
    BabyFactory(owner=user, name="Robin")
    BabyFactory(owner=other_user, name="Alex")
    client.force_login(user)
    assert "Robin" in dashboard(client)
    client.force_login(other_user)
    page = dashboard(client)
    assert "Alex" in page and "Robin" not in page


# --- Every change shows on the next visit -----------------------------------------------------
def rename(baby):
    services.baby_update(baby=baby, name="Renamed")
    return "Renamed"


def confirm_sex(baby):
    services.baby_confirm_sex(baby=baby, sex="male", source=LabelSource.DASHBOARD)
    return "is a <strong>boy</strong>"


def staff_relabel(baby):
    services.baby_confirm_sex(baby=baby, sex="female", source=LabelSource.STAFF)
    return "is a <strong>girl</strong>"


def save_anywhere(baby):
    # The admin's change form, a shell: a plain save() renews the stamp too.
    baby.name = "Saved elsewhere"
    baby.save()
    return "Saved elsewhere"


def upload(baby):
    create_scan(baby)
    return "2 scans"


def delete_scan(baby):
    services.scan_delete(scan=baby.scans.get())
    return "0 scans"


def soft_delete(baby):
    BabyFactory(owner=baby.owner, name="Another")
    services.baby_soft_delete(baby=baby)
    return "Another"


@pytest.mark.parametrize(
    "change", [rename, confirm_sex, staff_relabel, save_anywhere, upload, delete_scan, soft_delete]
)
def test_a_change_to_a_baby_or_its_scans_shows_on_the_next_visit(parent_client, user, change):
    baby = BabyFactory(owner=user, name="Robin", born=True)
    create_scan(baby)
    before = dashboard(parent_client)
    assert without_tokens(dashboard(parent_client)) == without_tokens(before)  # kept

    shows = change(Baby.all_objects.get(pk=baby.pk))

    after = dashboard(parent_client)
    assert shows in after and shows not in before
    if change is soft_delete:
        assert "Robin" not in after


def test_a_prediction_and_a_renamed_model_version_show_on_the_next_visit(parent_client, baby):
    tiny_model_version(name="First name")
    grey_scan(baby, 230)
    assert 'data-has-prediction="false"' in dashboard(parent_client)

    prediction_create(baby=baby)
    page = dashboard(parent_client)
    assert 'data-has-prediction="true"' in page and "First name" in page

    version = ModelVersion.objects.get()
    version.name = "Second name"
    version.save()
    assert "Second name" in dashboard(parent_client)


def test_a_new_day_redraws_the_weeks_to_go(parent_client, user, monkeypatch):
    today = timezone.localdate()
    BabyFactory(owner=user, name="Robin", due_date=today + datetime.timedelta(days=21))
    assert "3 weeks to go" in dashboard(parent_client)

    monkeypatch.setattr(timezone, "localdate", lambda *args, **kwargs: today + datetime.timedelta(days=7))
    assert "2 weeks to go" in dashboard(parent_client)


def test_a_write_that_bypasses_save_must_renew_the_stamp_itself(parent_client, user):
    from babies.card_cache import cards_changed

    baby = BabyFactory(owner=user, name="Robin")
    dashboard(parent_client)
    Baby.objects.filter(pk=baby.pk).update(name="Updated")
    assert "Updated" not in dashboard(parent_client)  # the documented limit: no signal, no new stamp

    cards_changed(pk=user.pk)
    assert "Updated" in dashboard(parent_client)


def test_saving_a_user_read_before_a_change_keeps_the_new_stamp(parent_client, user):
    from accounts.models import User

    baby = BabyFactory(owner=user, name="Robin")
    stale = User.objects.get(pk=user.pk)  # e.g. read by a request that saves the account later
    dashboard(parent_client)
    create_scan(baby)  # meanwhile: a new stamp
    stale.email = "renamed@example.com"
    stale.save()  # must not write the old stamp back

    assert User.objects.get(pk=user.pk).email == "renamed@example.com"

    assert "1 scan" in dashboard(parent_client)
