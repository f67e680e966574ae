"""The review queue in the admin: order, filters, the review page and bulk actions."""

import re

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from babies.tests.factories import BabyFactory
from curation.models import ScanReview
from curation.tests.factories import labelled_baby, reviewed_scan

pytestmark = pytest.mark.django_db

QUEUE_URL = reverse("admin:curation_reviewqueuescan_changelist")


def change_url(scan):
    return reverse("admin:curation_reviewqueuescan_change", args=[scan.pk])


def listed_scan_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', response.content.decode())]


def review_form(state="pending", note="", **flags):
    return {
        "review_state": state,
        "review_note": note,
        **{name: "on" for name, value in flags.items() if value},
    }


@pytest.fixture
def queue(staff_user):
    """Scans in every position of the queue, uploaded in the order a reviewer would not want."""
    unlabelled_pending = reviewed_scan(BabyFactory(), reviewer=staff_user, state="pending")
    accepted = reviewed_scan(labelled_baby(), reviewer=staff_user, state="accepted")
    labelled_pending = reviewed_scan(labelled_baby(sex="male"), reviewer=staff_user, state="pending")
    rejected = reviewed_scan(labelled_baby(), reviewer=staff_user, state="rejected")
    labelled_pending_later = reviewed_scan(labelled_baby(), reviewer=staff_user, state="pending")
    return {
        "unlabelled_pending": unlabelled_pending,
        "accepted": accepted,
        "labelled_pending": labelled_pending,
        "rejected": rejected,
        "labelled_pending_later": labelled_pending_later,
    }


def test_labelled_unreviewed_scans_come_first(staff_client, queue):
    ids = listed_scan_ids(staff_client.get(QUEUE_URL))
    assert ids[:3] == [
        queue["labelled_pending"].pk,
        queue["labelled_pending_later"].pk,
        queue["unlabelled_pending"].pk,
    ]
    assert set(ids[3:]) == {queue["accepted"].pk, queue["rejected"].pk}


def test_the_queue_shows_staff_only_thumbnails(staff_client, queue):
    html = staff_client.get(QUEUE_URL).content.decode()
    for scan in queue.values():
        assert reverse("babies:scan_thumbnail", args=[scan.pk]) in html
    # The thumbnail URL itself serves staff (and the owner), nobody else.
    url = reverse("babies:scan_thumbnail", args=[queue["accepted"].pk])
    assert staff_client.get(url).status_code == 200


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"review": "pending"}, ["labelled_pending", "labelled_pending_later", "unlabelled_pending"]),
        ({"review": "accepted"}, ["accepted"]),
        ({"review": "rejected"}, ["rejected"]),
        ({"labelled": "none"}, ["unlabelled_pending"]),
        ({"labelled": "male"}, ["labelled_pending"]),
    ],
)
def test_filters(staff_client, queue, query, expected):
    ids = listed_scan_ids(staff_client.get(QUEUE_URL, query))
    assert sorted(ids) == sorted(queue[name].pk for name in expected)


def test_the_flag_filter(staff_client, staff_user, queue):
    from curation.services import scan_review_update

    scan_review_update(scan=queue["rejected"], reviewer=staff_user, flags={"is_3d_or_4d": True})
    assert listed_scan_ids(staff_client.get(QUEUE_URL, {"flag": "is_3d_or_4d"})) == [queue["rejected"].pk]
    assert listed_scan_ids(staff_client.get(QUEUE_URL, {"flag": "any"})) == [queue["rejected"].pk]
    assert listed_scan_ids(staff_client.get(QUEUE_URL, {"flag": "is_unfocused"})) == []


def test_the_review_page_shows_the_jpeg_large_and_saves_a_review(staff_client, staff_user, queue):
    scan = queue["labelled_pending"]
    page = staff_client.get(change_url(scan))
    html = page.content.decode()
    assert reverse("babies:scan_image", args=[scan.pk]) in html
    assert 'class="curation-large"' in html
    assert "Save and review next" in html

    response = staff_client.post(change_url(scan), review_form("rejected", note="blurred", is_unfocused=True))

    assert response.status_code == 302
    review = ScanReview.objects.get(scan=scan)
    assert (review.state, review.is_unfocused, review.note, review.reviewed_by) == (
        "rejected",
        True,
        "blurred",
        staff_user,
    )
    assert review.reviewed_at is not None
    entry = AuditEntry.objects.get(action="scan.reviewed", object_id=str(scan.pk))
    assert entry.data["before"]["state"] == "pending"
    assert entry.data["after"] == {"state": "rejected", "flags": ["is_unfocused"], "note": "blurred"}
    # The entry is shown on the scan's page.
    assert "scan.reviewed" in staff_client.get(change_url(scan)).content.decode()


def test_save_and_review_next_goes_to_the_next_labelled_pending_scan(staff_client, queue):
    first, second = queue["labelled_pending"], queue["labelled_pending_later"]
    response = staff_client.post(change_url(first), {**review_form("accepted"), "_review_next": "1"})
    assert response["Location"] == change_url(second)
    response = staff_client.post(change_url(second), {**review_form("accepted"), "_review_next": "1"})
    assert response["Location"] == QUEUE_URL


def test_accepting_a_flagged_scan_is_a_form_error(staff_client, queue):
    scan = queue["labelled_pending"]
    response = staff_client.post(change_url(scan), review_form("accepted", needs_crop=True))
    assert response.status_code == 200
    assert "cannot be accepted" in response.content.decode()
    assert not ScanReview.objects.filter(scan=scan).exists()


def test_bulk_accept_records_one_entry_per_scan_and_reports_refusals(staff_client, staff_user, queue):
    from curation.services import scan_review_update

    flagged = queue["rejected"]
    scan_review_update(scan=flagged, reviewer=staff_user, flags={"is_duplicate": True})
    chosen = [queue["labelled_pending"], queue["labelled_pending_later"], flagged]
    before = set(AuditEntry.objects.values_list("pk", flat=True))

    response = staff_client.post(
        QUEUE_URL, {"action": "mark_accepted", "_selected_action": [scan.pk for scan in chosen]}, follow=True
    )

    messages = [str(m) for m in response.context["messages"]]
    assert "2 scans accepted." in messages
    assert any(f"Scan {flagged.pk} was not changed" in m for m in messages)
    new_entries = AuditEntry.objects.exclude(pk__in=before)
    assert sorted(int(e.object_id) for e in new_entries) == sorted(s.pk for s in chosen[:2])
    assert len({e.batch for e in new_entries}) == 1 and new_entries[0].batch is not None
    assert ScanReview.objects.get(scan=flagged).state == "rejected"


def test_bulk_reject_with_a_flag(staff_client, queue):
    chosen = [queue["labelled_pending"], queue["accepted"]]
    staff_client.post(
        QUEUE_URL, {"action": "reject_is_not_ultrasound", "_selected_action": [s.pk for s in chosen]}
    )
    for scan in chosen:
        review = ScanReview.objects.get(scan=scan)
        assert (review.state, review.is_not_ultrasound) == ("rejected", True)
    assert (
        AuditEntry.objects.filter(action="scan.reviewed", data__after__flags=["is_not_ultrasound"]).count()
        == 2
    )


def test_reviewing_again_without_a_change_writes_nothing(staff_client, queue):
    scan = queue["accepted"]
    count = AuditEntry.objects.count()
    staff_client.post(QUEUE_URL, {"action": "mark_accepted", "_selected_action": [scan.pk]})
    assert AuditEntry.objects.count() == count


def test_scans_cannot_be_added_or_deleted_in_the_admin(staff_client, queue):
    scan = queue["accepted"]
    assert staff_client.get(reverse("admin:curation_reviewqueuescan_add")).status_code == 403
    assert (
        staff_client.get(reverse("admin:curation_reviewqueuescan_delete", args=[scan.pk])).status_code == 403
    )


def test_the_queue_needs_the_same_queries_for_many_scans(staff_client, staff_user, queue):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as few:
        staff_client.get(QUEUE_URL)
    for _ in range(6):
        reviewed_scan(labelled_baby(), reviewer=staff_user, state="rejected")
    with CaptureQueriesContext(connection) as many:
        staff_client.get(QUEUE_URL)
    assert len(many.captured_queries) == len(few.captured_queries)
