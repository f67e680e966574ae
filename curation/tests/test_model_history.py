"""Model history: every switch of the live model is kept, so any moment has a known live version,
and the admin compares versions side by side."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from babies.tests.factories import BabyFactory
from predictions.models import ModelActivation
from predictions.selectors import model_activation_history, model_version_live_at
from predictions.services import model_version_activate, prediction_create
from predictions.tests.factories import PASSING_EVALUATION
from predictions.tests.predict_support import grey_scan, tiny_model_version

pytestmark = pytest.mark.django_db

COMPARE_URL = reverse("admin:predictions_modelversion_compare")


def at(minutes: int) -> datetime.datetime:
    return datetime.datetime(2026, 11, 1, 9, 0, tzinfo=datetime.UTC) + datetime.timedelta(minutes=minutes)


def activate_at(monkeypatch, minutes: int, version, **kwargs):
    monkeypatch.setattr(timezone, "now", lambda: at(minutes))
    try:
        return model_version_activate(model_version=version, **kwargs)
    finally:
        monkeypatch.undo()


@pytest.fixture
def history(monkeypatch, staff_user):
    """Version A live from 0 to 10 minutes, B from 10 to 20, A again from 20."""
    first = tiny_model_version(name="A", activate=False)
    second = tiny_model_version(name="B", activate=False)
    activate_at(monkeypatch, 0, first)
    activate_at(monkeypatch, 10, second, user=staff_user, reason="better per-baby accuracy")
    activate_at(monkeypatch, 20, first, user=staff_user, reason="B over-confident at week 12")
    return first, second


def test_every_activation_and_deactivation_is_kept(history, staff_user):
    first, second = history
    rows = [
        (row.model_version_id, row.event, row.other_version_id, row.happened_at, row.changed_by, row.reason)
        for row in model_activation_history()
    ]
    assert rows == [
        (first.pk, "activated", second.pk, at(20), staff_user, "B over-confident at week 12"),
        (second.pk, "deactivated", first.pk, at(20), staff_user, "B over-confident at week 12"),
        (second.pk, "activated", first.pk, at(10), staff_user, "better per-baby accuracy"),
        (first.pk, "deactivated", second.pk, at(10), staff_user, "better per-baby accuracy"),
        (first.pk, "activated", None, at(0), None, ""),
    ]
    assert ModelActivation.objects.get(event="activated", happened_at=at(0)).changed_by_repr == "system"


def test_the_live_version_at_any_moment(history):
    first, second = history
    assert model_version_live_at(at(-1)) is None
    assert model_version_live_at(at(0)) == first
    assert model_version_live_at(at(9)) == first
    assert model_version_live_at(at(10)) == second  # the switch itself: the new version
    assert model_version_live_at(at(19)) == second
    assert model_version_live_at(at(25)) == first


def test_reactivating_the_live_version_records_nothing(history):
    first, _ = history
    count = ModelActivation.objects.count()
    model_version_activate(model_version=first)
    assert ModelActivation.objects.count() == count


def test_the_history_survives_the_user_who_switched(history, staff_user):
    staff_user.delete()
    row = ModelActivation.objects.filter(event="activated").first()
    assert row.changed_by is None and row.changed_by_repr == staff_user.email


def test_a_past_predictions_version_was_the_live_one_then(history, staff_user):
    first, second = history
    baby = BabyFactory()
    grey_scan(baby, 200)
    prediction = prediction_create(baby=baby)
    assert prediction.model_version == first == model_version_live_at(prediction.created_at)


def test_the_admin_action_writes_history_with_its_reason(staff_user):
    current = tiny_model_version(name="Current")
    candidate = tiny_model_version(name="Candidate", activate=False)
    model_version_activate(model_version=candidate, user=staff_user, reason="admin action")
    assert model_version_live_at(timezone.now()) == candidate
    assert [(r.model_version, r.event) for r in model_activation_history()][:2] == [
        (candidate, "activated"),
        (current, "deactivated"),
    ]


def test_the_version_page_shows_its_history(history, staff_client):
    first, _ = history
    html = staff_client.get(reverse("admin:predictions_modelversion_change", args=[first.pk])).text
    assert 'data-testid="model-history"' in html
    assert "B over-confident at week 12" in html and "replaced by" in html and "replacing" in html


def test_the_compare_page_lines_versions_up(staff_client, monkeypatch):
    metrics = {
        "calibrated": {
            "per_baby": {"accuracy": 0.8, "roc_auc": 0.85, "count": 40},
            "per_scan": {"accuracy": 0.7, "roc_auc": 0.75, "brier": 0.2, "ece": 0.05},
            "per_scan_accuracy_by_week": {
                "12": {"count": 10, "accuracy": 0.6},
                "20": {"count": 5, "accuracy": 0.9},
            },
        },
        "ece_after_calibration": 0.04,
        "splits": {"train": {"scans": 120, "babies": 40}, "val": {"scans": 20}, "test": {"scans": 30}},
        "abstention": {"at_margin": {"coverage": 0.75, "accuracy_answered": 0.9}},
        "week_bands": {"bands": {"16+": {"count": 8, "accuracy": 0.95}, "12": {"count": 4, "accuracy": 0.5}}},
        "evaluation": PASSING_EVALUATION,  # activate_at goes through the quality gate
    }
    old = tiny_model_version(
        name="Old", activate=False, metrics={"calibrated": {"per_baby": {"accuracy": 0.7}}}
    )
    new = tiny_model_version(name="New", activate=False, metrics=metrics)
    activate_at(monkeypatch, 0, new)

    response = staff_client.get(COMPARE_URL, {"id": [old.pk, new.pk]})

    assert response.status_code == 200
    html = response.text
    assert html.index("#" + str(old.pk) + " Old") < html.index("#" + str(new.pk) + " New")
    assert "<svg" in html and "<polyline" in html and "style=" not in html.split("<svg")[1].split("</svg>")[0]
    assert '<td class="curation-best">80.0%' in html and "70.0%" in html  # per-baby accuracy
    assert "0.040" in html and "75.0%" in html  # ECE after calibration, coverage
    assert "170" in html and "120" in html  # scans read, train split
    assert "Week 12" in html and "60% (n=10)" in html
    assert "1 Nov 2026 09:00 – now" in html
    assert html.index("Weeks 12") < html.index("Weeks 16+") and "95% (n=8)" in html


def test_the_compare_action_redirects_with_the_selection(staff_client):
    first = tiny_model_version(name="One", activate=False)
    second = tiny_model_version(name="Two", activate=False)
    response = staff_client.post(
        reverse("admin:predictions_modelversion_changelist"),
        {"action": "compare", "_selected_action": [first.pk, second.pk]},
    )
    assert response.status_code == 302
    assert f"id={first.pk}" in response["Location"] and f"id={second.pk}" in response["Location"]


def test_parents_cannot_see_the_compare_page(parent_client):
    assert parent_client.get(COMPARE_URL).status_code == 302  # to the admin login


def test_the_version_list_links_to_the_compare_page(staff_client):
    html = staff_client.get(reverse("admin:predictions_modelversion_changelist")).text
    assert f'href="{COMPARE_URL}"' in html


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_concurrent_activations_leave_one_consistent_history():
    """Two staff activate different versions at once: one live version, and a history in which
    every switch names the version that really was live before it. PostgreSQL only (CI's
    database): the in-memory SQLite test database refuses a second writer outright."""
    import threading

    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("row locks and concurrent writers need PostgreSQL")

    first = tiny_model_version(name="A")
    second = tiny_model_version(name="B", activate=False)
    third = tiny_model_version(name="C", activate=False)
    barrier, errors = threading.Barrier(2), []

    def activate(version):
        try:
            barrier.wait()
            model_version_activate(model_version=version, reason=f"race {version.name}")
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=activate, args=(v,)) for v in (second, third)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not errors
    live = model_version_live_at(timezone.now())
    assert live is not None and live.is_active and live.pk in (second.pk, third.pk)
    chain = list(model_activation_history().order_by("happened_at", "id"))
    assert [row.event for row in chain] == [
        "activated",
        "deactivated",
        "activated",
        "deactivated",
        "activated",
    ]
    current = first.pk
    for deactivated, activated in zip(chain[1::2], chain[2::2], strict=True):
        assert deactivated.model_version_id == current == activated.other_version_id
        assert deactivated.other_version_id == activated.model_version_id
        current = activated.model_version_id
    assert current == live.pk
