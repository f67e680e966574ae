"""Near-duplicate scans: the grouping, the search for one scan, and the admin page.

The pairwise search itself is tested in ``test_near_duplicates.py``.
"""

import pytest
from django.urls import reverse

from audit.models import AuditEntry
from babies.models import Scan
from babies.tests.factories import BabyFactory, create_scan
from curation.models import ScanReview
from curation.selectors import near_duplicate_groups, near_duplicates_of
from curation.tests.factories import distinct_image

DUPLICATES_URL = reverse("admin:curation_reviewqueuescan_duplicates")


def set_hash(scan, value: str) -> Scan:
    Scan.objects.filter(pk=scan.pk).update(perceptual_hash=value)
    scan.perceptual_hash = value
    return scan


def group_ids(groups):
    return [[scan.pk for scan in group.scans] for group in groups]


@pytest.mark.django_db
def test_groups_are_anchored_on_the_oldest_scan_across_babies_and_owners():
    first, second, third = BabyFactory(), BabyFactory(), BabyFactory()
    a = set_hash(create_scan(first), "ffff0000ffff0000")
    b = set_hash(create_scan(second), "ffff0000ffff0007")  # 3 bits from a
    c = set_hash(create_scan(third), "ffff0000ffff003f")  # 3 bits from b, 6 from a
    far = set_hash(create_scan(first), "0000ffff0000ffff")
    x, y = set_hash(create_scan(first), "123456789abcdef0"), set_hash(create_scan(first), "123456789abcdef1")

    groups = near_duplicate_groups(max_distance=6)
    assert group_ids(groups) == [[a.pk, b.pk, c.pk], [x.pk, y.pk]]
    assert groups[0].spans_owners and groups[0].owner_count == 3 and groups[0].baby_count == 3
    assert groups[0].distances == {a.pk: 0, b.pk: 3, c.pk: 6}
    assert groups[1].members == [(x, 0), (y, 1)]
    assert far.pk not in {pk for group in group_ids(groups) for pk in group}

    # Closer: c is 6 bits from a, so it is shown next to b, its own near-duplicate; no chain.
    assert group_ids(near_duplicate_groups(max_distance=3)) == [[a.pk, b.pk], [b.pk, c.pk], [x.pk, y.pk]]
    assert group_ids(near_duplicate_groups(max_distance=3, across_babies_only=True)) == [
        [a.pk, b.pk],
        [b.pk, c.pk],
    ]
    assert group_ids(near_duplicate_groups(max_distance=0)) == []


@pytest.mark.django_db
def test_soft_deleted_babies_are_included():
    from babies.services import baby_soft_delete

    kept, deleted = BabyFactory(), BabyFactory()
    set_hash(create_scan(kept), "00000000000000ff")
    set_hash(create_scan(deleted), "00000000000000fe")
    baby_soft_delete(baby=deleted)
    assert len(near_duplicate_groups()) == 1


@pytest.mark.django_db
def test_a_re_encoded_copy_of_a_real_scan_is_found():
    original = create_scan(BabyFactory(), data=distinct_image(77, image_format="PNG"))
    copy = create_scan(BabyFactory(), data=distinct_image(77, size=(120, 90), image_format="JPEG"))
    other = create_scan(BabyFactory(), data=distinct_image(78))

    matches = near_duplicates_of(scan=original)
    assert [scan.pk for scan, _ in matches] == [copy.pk]
    assert matches[0][1] <= 6
    groups = near_duplicate_groups()
    assert [[s.pk for s in g.scans] for g in groups] == [[original.pk, copy.pk]]
    assert other.pk not in {s.pk for g in groups for s in g.scans}


@pytest.mark.django_db
def test_the_admin_page_shows_groups_and_rejects_ticked_copies(staff_client, staff_user):
    a = set_hash(create_scan(BabyFactory()), "ffff0000ffff0000")
    b = set_hash(create_scan(BabyFactory()), "ffff0000ffff0001")
    c = set_hash(create_scan(BabyFactory()), "ffff0000ffff0003")

    page = staff_client.get(DUPLICATES_URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert html.count('data-testid="duplicate-group"') == 1
    assert "across parents" in html
    for scan in (a, b, c):
        assert reverse("babies:scan_thumbnail", args=[scan.pk]) in html

    response = staff_client.post(DUPLICATES_URL, {"scan": [b.pk, c.pk]})
    assert response.status_code == 302
    for scan in (b, c):
        review = ScanReview.objects.get(scan=scan)
        assert (review.state, review.is_duplicate, review.reviewed_by) == ("rejected", True, staff_user)
    assert not ScanReview.objects.filter(scan=a).exists()
    entries = AuditEntry.objects.filter(action="scan.reviewed")
    assert sorted(int(e.object_id) for e in entries) == sorted([b.pk, c.pk])
    assert len({e.batch for e in entries}) == 1


@pytest.mark.django_db
def test_the_admin_page_accepts_a_threshold(staff_client):
    set_hash(create_scan(BabyFactory()), "ffff0000ffff0000")
    set_hash(create_scan(BabyFactory()), "ffff0000ffff000f")  # 4 bits apart
    assert (
        'data-testid="duplicate-group"'
        not in staff_client.get(DUPLICATES_URL, {"max_distance": 3}).content.decode()
    )
    assert (
        'data-testid="duplicate-group"'
        in staff_client.get(DUPLICATES_URL, {"max_distance": 4}).content.decode()
    )
    # Nonsense is a form error, not a 500; the default threshold is used meanwhile.
    response = staff_client.get(DUPLICATES_URL, {"max_distance": "lots"})
    assert response.status_code == 200
    assert "Enter a whole number" in response.content.decode()
