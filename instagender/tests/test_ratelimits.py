"""Per-account rate limits on upload, predict and export: a 429 with a sentence, nothing done.

The counters are rows (``accounts.CountedAction``), rolled back with each test.
"""

import datetime
import io
import threading

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import CountedAction
from accounts.tests.factories import UserFactory
from babies.models import Scan
from babies.tests.factories import BabyFactory, image_bytes
from instagender import ratelimits
from instagender.ratelimits import consume, describe_rates, refusal_message
from predictions.models import Prediction
from predictions.tests.predict_support import grey_scan, tiny_model_version

pytestmark = pytest.mark.django_db

JSON = {"Accept": "application/json"}


def upload(client, baby):
    handle = io.BytesIO(image_bytes("PNG", (80, 60)))
    handle.name = "scan.png"
    return client.post(reverse("babies:scan_upload", args=[baby.pk]), {"file": handle}, headers=JSON)


@pytest.fixture
def tight_limits(settings):
    settings.ACCOUNT_RATE_LIMITS = {
        **settings.ACCOUNT_RATE_LIMITS,
        "scan_upload": "2/10m/user,50/d/user",
        "predict": "2/h/user",
        "account_export": "1/h/user",
    }


def test_the_third_upload_in_ten_minutes_is_refused_with_a_sentence_and_nothing_stored(
    parent_client, baby, tight_limits
):
    assert [upload(parent_client, baby).status_code for _ in range(2)] == [201, 201]

    response = upload(parent_client, baby)

    assert response.status_code == 429
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == (
        "You have uploaded a lot of scans in a short time: each account can upload 2 scans every "
        "10 minutes and 50 a day. Please wait a while, then try again; the scans you already "
        "uploaded are safe."
    )
    assert Scan.objects.count() == 2


def test_the_limit_is_per_account(client, tight_limits):
    first, second = UserFactory(), UserFactory()
    for user in (first, second):
        client.force_login(user)
        baby = BabyFactory(owner=user)
        assert [upload(client, baby).status_code for _ in range(3)] == [201, 201, 429]
    assert (
        Scan.objects.filter(baby__owner=first).count() == Scan.objects.filter(baby__owner=second).count() == 2
    )


def test_a_refused_upload_does_not_count(parent_client, baby, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "scan_upload": "1/h/user"}
    assert upload(parent_client, baby).status_code == 201
    assert [upload(parent_client, baby).status_code for _ in range(3)] == [429, 429, 429]
    assert Scan.objects.count() == 1


def test_an_empty_rate_switches_the_limit_off(parent_client, baby, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "scan_upload": ""}
    assert {upload(parent_client, baby).status_code for _ in range(4)} == {201}


def test_too_many_predictions_get_a_429_page_that_says_why_and_leads_back(parent_client, baby, tight_limits):
    tiny_model_version()
    grey_scan(baby, 200)
    url = reverse("predictions:predict", args=[baby.pk])
    back = reverse("babies:baby_detail", args=[baby.pk])
    assert [parent_client.post(url, {"next": back}).status_code for _ in range(2)] == [302, 302]

    response = parent_client.post(url, {"next": back})

    assert response.status_code == 429
    html = response.content.decode()
    assert "<title>Please slow down a little · Instagender</title>" in html
    assert "each account can ask for 2 predictions an hour" in html
    assert f'<a href="{back}">Go back</a>' in html
    assert Prediction.objects.count() == 2


def test_too_many_exports_get_a_429_page(parent_client, tight_limits):
    url = reverse("account_export")
    assert parent_client.post(url).status_code == 200

    response = parent_client.post(url)

    assert response.status_code == 429
    assert "each account can download it 1 time an hour" in response.content.decode()
    assert f'<a href="{reverse("account_settings")}">Go back</a>' in response.content.decode()


def test_the_limit_is_counted_in_the_database_every_server_shares(parent_client, baby, tight_limits):
    """Not in a worker's memory: the rows say what each window holds, whichever worker served."""
    assert [upload(parent_client, baby).status_code for _ in range(3)] == [201, 201, 429]
    counted = CountedAction.objects.filter(user=baby.owner, action="scan_upload")
    assert counted.count() == 2  # the refused one is not counted


def test_a_limit_costs_a_few_statements_whatever_its_windows(baby, tight_limits):
    def statements() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            allowed.append(consume(baby.owner, "scan_upload"))
        # The savepoints are the test's own transaction; production's is one BEGIN ... COMMIT.
        return [query["sql"].split()[0] for query in captured if "SAVEPOINT" not in query["sql"]]

    allowed = []
    assert statements() == ["SELECT", "DELETE", "SELECT", "INSERT"]  # lock the account, prune, count, add
    assert statements() == ["SELECT", "DELETE", "SELECT", "INSERT"]
    assert statements() == ["SELECT", "DELETE", "SELECT"]  # the third in ten minutes: refused, not added
    assert allowed == [True, True, False]


def test_a_sliding_window_lets_actions_through_again_once_they_leave_it(baby, settings, monkeypatch):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "predict": "2/10m/user,3/d/user"}
    user, clock = baby.owner, [timezone.now()]
    monkeypatch.setattr(ratelimits.timezone, "now", lambda: clock[0])
    assert [consume(user, "predict") for _ in range(3)] == [True, True, False]
    clock[0] += datetime.timedelta(minutes=10, seconds=1)
    assert [consume(user, "predict") for _ in range(2)] == [True, False]  # 3 a day
    clock[0] += datetime.timedelta(days=1)
    assert consume(user, "predict")
    # Rows older than the longest window were deleted on the way.
    assert CountedAction.objects.filter(user=user).count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs row locks (CI runs on PostgreSQL)")
def test_concurrent_requests_of_one_account_never_pass_the_limit_together(settings):
    """Eight workers at once for one account with room for three: exactly three go ahead."""
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "predict": "3/h/user"}
    user = UserFactory()
    barrier, answers = threading.Barrier(8), []

    def worker():
        try:
            barrier.wait()
            answers.append(consume(user, "predict"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [False] * 5 + [True] * 3
    assert CountedAction.objects.filter(user=user, action="predict").count() == 3


@pytest.mark.parametrize(
    ("rates", "noun", "words"),
    [
        ("60/10m/user,300/d/user", "scans", "60 scans every 10 minutes and 300 a day"),
        ("5/h/user", "predictions", "5 predictions an hour"),
        ("3/30s/user", "times", "3 times every 30 seconds"),
        ("1/1d/user", "scans", "1 scan a day"),
        ("1/h/user,1/d/user", "predictions", "1 prediction an hour and 1 a day"),
    ],
)
def test_rates_are_described_in_words(rates, noun, words):
    assert describe_rates(rates, noun) == words


def test_a_refusal_without_configured_rates_is_still_a_sentence(settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "predict": ""}
    assert refusal_message("predict") == (
        "You have asked for a lot of predictions in a short time. Please wait a moment, then try again."
    )


def test_allauths_own_429_uses_the_same_page(client, settings):
    settings.ACCOUNT_RATE_LIMITS = {**settings.ACCOUNT_RATE_LIMITS, "login": "1/m/ip"}
    url = reverse("account_login")
    client.post(url, {"login": "nobody@example.com", "password": "wrong"})

    response = client.post(url, {"login": "nobody@example.com", "password": "wrong"})

    assert response.status_code == 429
    assert "Please slow down a little" in response.content.decode()
