"""Which scans a training set may take: review state, label, deletion, consent and label source."""

import pytest
from django.core.exceptions import ValidationError

from babies import services as baby_services
from babies.models import LabelSource
from babies.tests.factories import BabyFactory
from curation import selectors, services
from curation.tests.factories import labelled_baby, reviewed_scan

pytestmark = pytest.mark.django_db


def eligible_ids(**kwargs):
    return set(selectors.scans_eligible_for_training(**kwargs).values_list("pk", flat=True))


def test_an_accepted_labelled_scan_of_a_consenting_parent_is_eligible(staff_user):
    scan = reviewed_scan(labelled_baby(), reviewer=staff_user)
    assert eligible_ids() == {scan.pk}


@pytest.mark.parametrize("state", ["pending", "rejected"])
def test_only_accepted_scans_are_eligible(staff_user, state):
    reviewed_scan(labelled_baby(), reviewer=staff_user, state=state)
    assert eligible_ids() == set()


def test_a_scan_never_reviewed_is_not_eligible(staff_user):
    reviewed_scan(labelled_baby(), reviewer=staff_user, state="pending")
    assert eligible_ids() == set()


def test_a_scan_set_back_to_pending_is_no_longer_eligible(staff_user):
    scan = reviewed_scan(labelled_baby(), reviewer=staff_user)
    services.scan_review_update(scan=scan, reviewer=staff_user, state="pending")
    assert eligible_ids() == set()


def test_a_baby_without_a_confirmed_sex_is_not_eligible(staff_user, user):
    user.allows_training_use = True
    user.save()
    reviewed_scan(BabyFactory(owner=user), reviewer=staff_user)
    assert eligible_ids() == set()


def test_a_parent_without_consent_is_not_eligible(staff_user):
    reviewed_scan(labelled_baby(consent=False), reviewer=staff_user)
    assert eligible_ids() == set()


def test_withdrawing_consent_makes_the_scans_ineligible(staff_user):
    from accounts.services import user_training_consent_update

    baby = labelled_baby()
    reviewed_scan(baby, reviewer=staff_user)
    user_training_consent_update(user=baby.owner, allows_training_use=False)
    assert eligible_ids() == set()


def test_an_inactive_parent_is_not_eligible(staff_user):
    baby = labelled_baby()
    reviewed_scan(baby, reviewer=staff_user)
    baby.owner.is_active = False
    baby.owner.save()
    assert eligible_ids() == set()


def test_a_soft_deleted_baby_is_not_eligible_until_restored(staff_user):
    baby = labelled_baby()
    scan = reviewed_scan(baby, reviewer=staff_user)
    baby_services.baby_soft_delete(baby=baby)
    assert eligible_ids() == set()
    baby_services.baby_restore(baby=baby, actor=staff_user)
    assert eligible_ids() == {scan.pk}


def test_label_sources_select_which_labels_are_trusted(staff_user):
    from_dashboard = reviewed_scan(labelled_baby(source=LabelSource.DASHBOARD), reviewer=staff_user)
    from_email = reviewed_scan(labelled_baby(source=LabelSource.EMAIL), reviewer=staff_user)
    from_staff = reviewed_scan(labelled_baby(source=LabelSource.STAFF), reviewer=staff_user)
    assert eligible_ids() == {from_dashboard.pk, from_email.pk, from_staff.pk}
    assert eligible_ids(label_sources=["staff", "dashboard"]) == {from_dashboard.pk, from_staff.pk}
    assert eligible_ids(label_sources=["email"]) == {from_email.pk}


def test_a_flagged_scan_cannot_be_accepted(staff_user):
    scan = reviewed_scan(labelled_baby(), reviewer=staff_user, state="pending")
    with pytest.raises(ValidationError, match="quality flags"):
        services.scan_review_update(
            scan=scan, reviewer=staff_user, state="accepted", flags={"is_unfocused": True}
        )
    assert eligible_ids() == set()


def test_the_summary_explains_what_is_left_out(staff_user):
    reviewed_scan(labelled_baby(), reviewer=staff_user)
    reviewed_scan(labelled_baby(consent=False), reviewer=staff_user)
    reviewed_scan(labelled_baby(source=LabelSource.EMAIL), reviewer=staff_user)
    deleted = labelled_baby(sex="male")
    reviewed_scan(deleted, reviewer=staff_user)
    baby_services.baby_soft_delete(baby=deleted)
    reviewed_scan(labelled_baby(), reviewer=staff_user, state="rejected")
    reviewed_scan(labelled_baby(), reviewer=staff_user, state="pending")

    summary = selectors.training_eligibility_summary(label_sources=["dashboard"])
    assert summary.eligible == 1
    assert summary.class_counts == {"female": 1, "male": 0}
    assert summary.accepted_without_consent == 1
    assert summary.accepted_with_other_label_source == 1
    assert summary.accepted_of_deleted_babies == 1
    assert summary.rejected == 1
    assert summary.pending == 1


def test_creating_a_set_with_nothing_eligible_says_so(staff_user):
    reviewed_scan(labelled_baby(consent=False), reviewer=staff_user)
    with pytest.raises(ValidationError, match="No scans are eligible"):
        services.training_set_create(created_by=staff_user)
