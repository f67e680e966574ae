"""The signed outcome link: GET asks, only POST records; bad links write nothing."""

import base64
import datetime
import threading
import time

import pytest
from django.core import signing
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from babies.models import Baby, LabelSource
from babies.services import baby_confirm_sex, baby_soft_delete
from predictions import services
from predictions.models import OutcomeAnswer
from predictions.outcome_links import LINK_SALT, outcome_token_make
from predictions.services import prediction_create
from predictions.tests.predict_support import grey_scan, tiny_model_version

pytestmark = pytest.mark.django_db

WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def prediction(baby):
    """A "boy" prediction for ``baby`` (a bright scan)."""
    tiny_model_version()
    grey_scan(baby, 230)
    return prediction_create(baby=baby)


@pytest.fixture
def token(baby, prediction, user):
    return outcome_token_make(baby=baby, prediction=prediction, email=user.email)


def url(token: str, answer: str | None = None) -> str:
    path = reverse("predictions:outcome", args=[token])
    return f"{path}?oc={answer}" if answer is not None else path


def assert_nothing_written(queries) -> None:
    statements = [query["sql"] for query in queries.captured_queries]
    assert not [sql for sql in statements if sql.lstrip().upper().startswith(WRITES)]


def checked_value(content: str) -> str | None:
    for value in ("True", "False"):
        tag = content.split(f'value="{value}"', 1)[1].split(">", 1)[0]
        if "checked" in tag:
            return value
    return None


@pytest.mark.parametrize(("answer", "checked"), [("True", "True"), ("False", "False"), ("maybe", None)])
def test_get_shows_the_question_preselected_and_writes_nothing(client, baby, token, answer, checked):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url(token, answer))

    assert response.status_code == 200
    content = response.content.decode()
    assert f"Was our prediction for your baby due on {baby.due_date:%-d %B %Y} right?" in content
    assert "Boy —" in content and "% likely" in content
    assert "Demo model trained on synthetic images" in content
    assert checked_value(content) == checked
    assert "Save my answer" in content
    assert_nothing_written(queries)
    baby.refresh_from_db()
    assert baby.confirmed_sex == ""
    assert not OutcomeAnswer.objects.exists()
    assert response["Cache-Control"].startswith("max-age=0")


def test_post_right_records_the_predicted_sex_from_the_email(client, baby, prediction, token):
    response = client.post(url(token, "True"), {"prediction_was_right": "True"})

    assert response.status_code == 302
    assert response["Location"] == reverse("predictions:outcome_thanks", args=[token])
    baby.refresh_from_db()
    assert baby.confirmed_sex == "male"
    assert baby.confirmed_sex_source == LabelSource.EMAIL
    assert baby.confirmed_sex_at is not None
    answer = OutcomeAnswer.objects.get()
    assert (answer.prediction, answer.prediction_was_right, answer.sex) == (prediction, True, "male")

    thanks = client.get(response["Location"]).content.decode()
    assert "Thank you!" in thanks
    assert "is a <strong>boy</strong>" in thanks and "our prediction was right" in thanks


def test_a_link_answers_once_and_a_second_submission_changes_nothing(client, baby, token):
    first = client.post(url(token), {"prediction_was_right": "True"})
    assert first.status_code == 302

    with CaptureQueriesContext(connection) as queries:
        again = client.post(url(token), {"prediction_was_right": "False"})

    assert again.status_code == 409
    content = again.content.decode()
    assert "This link has already been answered" in content
    assert "Nothing was changed: each link in our e-mail can be answered once." in content
    assert "is a <strong>boy</strong>" in content and "our prediction was right" in content
    assert_nothing_written(queries)
    baby.refresh_from_db()
    assert (baby.confirmed_sex, baby.confirmed_sex_source) == ("male", LabelSource.EMAIL)
    assert list(OutcomeAnswer.objects.values_list("sex", flat=True)) == ["male"]

    # Opening the link again shows the answer instead of the question.
    page = client.get(url(token, "False"))
    assert page.status_code == 200
    assert "This link has already been answered" in page.content.decode()
    assert "Save my answer" not in page.content.decode()
    assert "Nothing was changed" not in page.content.decode()


def test_the_service_refuses_a_second_answer_for_the_same_link(baby, prediction):
    services.outcome_answer_record(baby=baby, prediction=prediction, prediction_was_right=True)
    with pytest.raises(services.OutcomeAlreadyAnswered) as refused:
        services.outcome_answer_record(baby=baby, prediction=prediction, prediction_was_right=False)
    assert refused.value.answer.sex == "male"
    baby.refresh_from_db()
    assert baby.confirmed_sex == "male"
    assert OutcomeAnswer.objects.count() == 1


def test_an_answer_never_overwrites_a_staff_label_and_is_kept(client, baby, prediction, token, staff_user):
    baby_confirm_sex(baby=baby, sex="female", source=LabelSource.STAFF, actor=staff_user)
    labelled_at = Baby.objects.get(pk=baby.pk).confirmed_sex_at

    response = client.post(url(token), {"prediction_was_right": "True"})

    assert response.status_code == 302
    baby.refresh_from_db()
    assert (baby.confirmed_sex, baby.confirmed_sex_source, baby.confirmed_sex_at) == (
        "female",
        LabelSource.STAFF,
        labelled_at,
    )
    answer = OutcomeAnswer.objects.get()
    assert (answer.sex, answer.label_applied) == ("male", False)
    thanks = client.get(response["Location"]).content.decode()
    assert "Our team had already recorded" in thanks
    assert "we kept your answer" in thanks


def test_a_dashboard_label_is_replaced_by_the_email_answer(client, baby, token):
    Baby.objects.filter(pk=baby.pk).update(birth_date=datetime.date.today() - datetime.timedelta(days=3))
    baby.refresh_from_db()
    baby_confirm_sex(baby=baby, sex="female", source=LabelSource.DASHBOARD)
    client.post(url(token), {"prediction_was_right": "True"})
    baby.refresh_from_db()
    assert (baby.confirmed_sex, baby.confirmed_sex_source) == ("male", LabelSource.EMAIL)
    assert OutcomeAnswer.objects.get().label_applied is True


@pytest.mark.django_db(transaction=True)
def test_two_submissions_at_once_record_one_answer(baby, prediction):
    """Two requests with the same link, each on its own PostgreSQL connection."""
    if connection.vendor != "postgresql":
        pytest.skip("Concurrent writes need PostgreSQL (CI runs it there).")
    start = threading.Barrier(2)
    results = []

    def submit(right: bool):
        try:
            start.wait(timeout=10)
            results.append(
                services.outcome_answer_record(baby=baby, prediction=prediction, prediction_was_right=right)
            )
        except services.OutcomeAlreadyAnswered as refused:
            results.append(refused)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=submit, args=(right,)) for right in (True, False)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(type(result).__name__ for result in results) == ["OutcomeAlreadyAnswered", "OutcomeAnswer"]
    (answer,) = OutcomeAnswer.objects.all()
    baby.refresh_from_db()
    assert baby.confirmed_sex == answer.sex


def test_a_post_without_a_choice_is_a_form_error(client, baby, token):
    response = client.post(url(token), {})
    assert response.status_code == 200
    assert "Please choose yes or no." in response.content.decode()
    assert not OutcomeAnswer.objects.exists()


def test_the_thanks_page_before_any_answer_goes_back_to_the_question(client, token):
    response = client.get(reverse("predictions:outcome_thanks", args=[token]))
    assert response["Location"] == reverse("predictions:outcome", args=[token])


def _tampered(token: str) -> str:
    payload, rest = token.split(":", 1)
    # Another baby's id in the payload, with the old signature.
    data = signing.loads(token, salt=LINK_SALT)
    data["b"] += 1
    forged_payload = signing.dumps(data, salt=LINK_SALT).split(":", 1)[0]
    assert forged_payload != payload
    return f"{forged_payload}:{rest}"


def _forged(baby, prediction) -> str:
    """Signed with a key that is not ours."""
    payload = {"b": baby.pk, "p": prediction.pk, "e": "0" * 32}
    return signing.dumps(payload, key="not-the-secret-key", salt=LINK_SALT)


def _other_salt(baby, prediction, user) -> str:
    """Our key, but made for another purpose (a different salt)."""
    token = outcome_token_make(baby=baby, prediction=prediction, email=user.email)
    return signing.dumps(signing.loads(token, salt=LINK_SALT), salt="accounts.something-else")


def _expired(baby, prediction, user, monkeypatch, settings) -> str:
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() - (settings.OUTCOME_LINK_MAX_AGE_DAYS + 1) * 86400)
    try:
        return outcome_token_make(baby=baby, prediction=prediction, email=user.email)
    finally:
        monkeypatch.setattr(time, "time", real_time)


def _owner_deactivated(user, token) -> str:
    user.is_active = False
    user.save(update_fields=["is_active"])
    return token


def _signed(payload) -> str:
    """Signed with our key and salt, so only its shape is wrong."""
    return signing.dumps(payload, salt=LINK_SALT)


MALFORMED_PAYLOADS = {
    "a list": [1, 2, "x"],
    "a string": "hello",
    "keys missing": {"b": 1},
    "a list as the baby id": {"b": [1], "p": 1, "e": "0" * 32},
    "a string as the prediction id": {"b": 1, "p": "1 OR 1=1", "e": "0" * 32},
    "a float id": {"b": 1.5, "p": 1, "e": "0" * 32},
    "a boolean id": {"b": True, "p": True, "e": "0" * 32},
    "a negative id": {"b": -1, "p": 1, "e": "0" * 32},
    "an id past 64 bits": {"b": 2**70, "p": 2**70, "e": "0" * 32},
    "a dict as the digest": {"b": 1, "p": 1, "e": {"x": 1}},
    "a number as the digest": {"b": 1, "p": 1, "e": 7},
}


@pytest.mark.parametrize("kind", list(MALFORMED_PAYLOADS))
def test_a_validly_signed_malformed_payload_is_a_clear_page_not_a_500(client, baby, prediction, kind):
    token = _signed(MALFORMED_PAYLOADS[kind])
    client.raise_request_exception = True
    for response in (
        client.get(url(token, "True")),
        client.post(url(token), {"prediction_was_right": "True"}),
        client.get(reverse("predictions:outcome_thanks", args=[token])),
    ):
        assert response.status_code == 400
        assert "This link does not work" in response.content.decode()
    assert not OutcomeAnswer.objects.exists()


@pytest.mark.parametrize(
    ("kind", "status", "title"),
    [
        ("tampered", 400, "This link does not work"),
        ("truncated", 400, "This link does not work"),
        ("forged", 400, "This link does not work"),
        ("other_salt", 400, "This link does not work"),
        ("old_address", 400, "This link does not work"),
        ("owner_deactivated", 400, "This link does not work"),
        ("expired", 410, "This link has expired"),
    ],
)
def test_bad_links_show_a_clear_page_and_write_nothing(
    client, baby, prediction, token, user, kind, status, title, monkeypatch, settings
):
    bad = {
        "tampered": lambda: _tampered(token),
        "truncated": lambda: token[:-3],
        "forged": lambda: _forged(baby, prediction),
        "other_salt": lambda: _other_salt(baby, prediction, user),
        # A link sent before the parent changed the address.
        "old_address": lambda: outcome_token_make(baby=baby, prediction=prediction, email="old@example.com"),
        "expired": lambda: _expired(baby, prediction, user, monkeypatch, settings),
        # A valid link whose parent's account was deactivated after the e-mail went out.
        "owner_deactivated": lambda: _owner_deactivated(user, token),
    }[kind]()

    with CaptureQueriesContext(connection) as queries:
        got = client.get(url(bad, "True"))
        posted = client.post(url(bad, "True"), {"prediction_was_right": "True"})
        thanks = client.get(reverse("predictions:outcome_thanks", args=[bad]))

    for response in (got, posted, thanks):
        assert response.status_code == status
        assert title in response.content.decode()
        assert "Nothing has been saved." in response.content.decode()
    assert_nothing_written(queries)
    baby.refresh_from_db()
    assert baby.confirmed_sex == ""
    assert not OutcomeAnswer.objects.exists()


def test_a_deleted_baby_shows_a_clear_page_and_writes_nothing(client, baby, token):
    baby_soft_delete(baby=baby)
    response = client.post(url(token), {"prediction_was_right": "True"})
    assert response.status_code == 410
    assert "This baby has been deleted" in response.content.decode()
    baby.refresh_from_db()
    assert baby.confirmed_sex == ""
    assert not OutcomeAnswer.objects.exists()


def test_the_token_names_ids_but_not_the_address(token, user):
    payload = token.split(":", 1)[0]
    decoded = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    assert user.email.encode() not in decoded
    assert b'"b":' in decoded and b'"p":' in decoded


def test_the_link_works_for_someone_else_logged_in_too(client, other_user, baby, token):
    # The signature is the authorisation; whoever is logged in does not matter.
    client.force_login(other_user)
    assert client.get(url(token, "True")).status_code == 200
