"""Likely label errors: scores from the active model, stored by a command, shown first in the queue.

The active model is the exact mean-pixel network of ``predict_support``: a grey scan of value
``v`` has the logit ``10 * v / 255 - 5``, so every probability below is known in advance, and
one baby is labelled a girl on purpose while her scan looks, to the model, like a boy's.
"""

import io
import math
import re

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit.models import AuditEntry
from babies import services as baby_services
from babies.models import LabelSource
from curation import services
from curation.models import LabelQualityScore
from curation.tests.factories import labelled_baby
from predictions.inference import clear_loaded_model
from predictions.tests.predict_support import expected_logit, grey_png, tiny_model_version

pytestmark = pytest.mark.django_db

QUEUE_URL = reverse("admin:curation_reviewqueuescan_changelist")


def sigmoid(value: float) -> float:
    return 1 / (1 + math.exp(-value))


def listed_scan_ids(response) -> list[int]:
    return [int(pk) for pk in re.findall(r'name="_selected_action" value="(\d+)"', response.content.decode())]


@pytest.fixture(autouse=True)
def _fresh_interpreter():
    clear_loaded_model()
    yield
    clear_loaded_model()


@pytest.fixture
def seeded(staff_user):
    """Dark scans for girls and bright ones for boys, except one flipped and one doubtful label."""
    from babies.tests.factories import create_scan

    def scan(sex: str, value: int):
        baby = labelled_baby(sex=sex)
        made = create_scan(baby, data=grey_png(value))
        services.scan_review_update(scan=made, reviewer=staff_user, state="accepted")
        return made

    tiny_model_version()
    return {
        "girl": scan("female", 20),
        "boy": scan("male", 235),
        "girl_2": scan("female", 40),
        "boy_2": scan("male", 215),
        # Labelled a girl, but as bright as a boy's scan: the flipped label.
        "flipped": scan("female", 230),
        # Labelled a boy, a little darker than the middle: the model leans (57 %) to girl.
        "doubtful": scan("male", 120),
    }


def score_all() -> str:
    out = io.StringIO()
    call_command("score_label_quality", stdout=out)
    return out.getvalue()


def test_scores_are_the_models_probability_of_the_other_sex(seeded):
    output = score_all()

    assert "Scored 6 labelled scans of 6 babies" in output and "2 likely label errors" in output
    for name, value, sex in [("flipped", 230, "female"), ("doubtful", 120, "male"), ("girl", 20, "female")]:
        score = LabelQualityScore.objects.get(scan=seeded[name])
        p_male = sigmoid(expected_logit(value))
        expected = p_male if sex == "female" else 1 - p_male
        assert score.disagreement == pytest.approx(expected, abs=1e-5)
        assert score.sex == sex and score.model_version.is_active


def test_the_queue_lists_the_flipped_label_first_then_the_doubtful_one(seeded, staff_client):
    before = listed_scan_ids(staff_client.get(QUEUE_URL))
    assert before[0] != seeded["flipped"].pk  # nothing scored yet: upload order

    score_all()
    response = staff_client.get(QUEUE_URL)

    order = listed_scan_ids(response)
    assert order[:2] == [seeded["flipped"].pk, seeded["doubtful"].pk]
    # The rest (accepted scans the model agrees with) keep the old order: by upload.
    assert order[2:] == [seeded[name].pk for name in ("girl", "boy", "girl_2", "boy_2")]
    assert "likely label error" in response.content.decode()


@pytest.mark.slow  # importing cleanlab (and scikit-learn) takes seconds
def test_the_ranking_matches_cleanlabs_self_confidence(seeded):
    from cleanlab.rank import get_label_quality_scores

    score_all()
    scores = list(LabelQualityScore.objects.order_by("scan_id"))
    labels = np.array([1 if s.sex == "male" else 0 for s in scores])
    probabilities = np.array([[1 - s.probability_male, s.probability_male] for s in scores])
    quality = get_label_quality_scores(labels, probabilities, method="self_confidence")
    margin = get_label_quality_scores(labels, probabilities, method="normalized_margin")

    ours = [s.scan_id for s in sorted(scores, key=lambda s: -s.disagreement)]
    assert [scores[i].scan_id for i in np.argsort(quality, kind="stable")] == ours
    assert [scores[i].scan_id for i in np.argsort(margin, kind="stable")] == ours


def test_relabelling_the_baby_drops_the_stale_score_from_the_top(seeded, staff_user, staff_client):
    score_all()
    baby_services.baby_confirm_sex(
        baby=seeded["flipped"].baby, sex="male", source=LabelSource.STAFF, actor=staff_user
    )

    order = listed_scan_ids(staff_client.get(QUEUE_URL))
    assert order[0] == seeded["doubtful"].pk
    score_all()  # scored again against the corrected label: the model now agrees
    assert LabelQualityScore.objects.get(scan=seeded["flipped"]).disagreement < 0.05


def test_staff_can_mark_a_label_as_checked(seeded, staff_user, staff_client):
    score_all()
    staff_client.post(
        QUEUE_URL, {"action": "mark_label_checked", "_selected_action": [seeded["doubtful"].pk]}
    )

    order = listed_scan_ids(staff_client.get(QUEUE_URL))
    assert order[0] == seeded["flipped"].pk and order.index(seeded["doubtful"].pk) > 1
    entry = AuditEntry.objects.get(action="scan.label_checked")
    assert entry.object_id == str(seeded["doubtful"].pk) and entry.actor == staff_user
    filtered = listed_scan_ids(staff_client.get(QUEUE_URL, {"label_check": "likely_error"}))
    assert filtered == [seeded["flipped"].pk]


def test_the_admin_action_scores_on_demand(seeded, staff_client):
    response = staff_client.post(
        QUEUE_URL,
        {"action": "score_label_quality", "_selected_action": [seeded["flipped"].pk, seeded["girl"].pk]},
        follow=True,
    )
    assert "2 labelled scans of 2 babies scored: 1 likely label errors" in response.content.decode()
    assert set(LabelQualityScore.objects.values_list("scan_id", flat=True)) == {
        seeded["flipped"].pk,
        seeded["girl"].pk,
    }


def test_a_dry_run_stores_nothing(seeded):
    out = io.StringIO()
    call_command("score_label_quality", "--dry-run", stdout=out)
    assert "Dry run: would have scored 6" in out.getvalue()
    assert not LabelQualityScore.objects.exists()


def test_without_an_active_model_the_command_fails(staff_user, db):
    with pytest.raises(CommandError, match="No model version is active"):
        call_command("score_label_quality")


def test_the_queue_costs_the_same_queries_for_more_scored_scans(seeded, staff_client, staff_user):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from babies.tests.factories import create_scan

    score_all()
    with CaptureQueriesContext(connection) as few:
        staff_client.get(QUEUE_URL)
    for value in (60, 90, 180, 200):
        create_scan(labelled_baby(sex="male"), data=grey_png(value))
    score_all()
    with CaptureQueriesContext(connection) as more:
        staff_client.get(QUEUE_URL)
    assert len(more) == len(few)


def test_an_unreadable_scan_is_counted_and_keeps_its_old_score(seeded):
    from predictions.tests.predict_support import corrupt_stored_file

    score_all()
    before = LabelQualityScore.objects.get(scan=seeded["flipped"]).scored_at
    corrupt_stored_file(seeded["flipped"])

    output = score_all()

    assert "Scored 5 labelled scans" in output and "1 unreadable" in output
    assert LabelQualityScore.objects.get(scan=seeded["flipped"]).scored_at == before


# --- A label is a baby's: scored from all its scans, checked once for all of them ----------------
def baby_with_scans(sex: str, values: list[int], *, reviewer, weeks=None, source=LabelSource.DASHBOARD):
    """A labelled baby with one accepted grey scan per value (``weeks``: their gestational weeks)."""
    from babies.tests.factories import create_scan

    baby = labelled_baby(sex=sex, source=source)
    scans = []
    for value, week in zip(values, weeks or [None] * len(values), strict=True):
        scan = create_scan(baby, data=grey_png(value), gestational_week=week)
        services.scan_review_update(scan=scan, reviewer=reviewer, state="accepted")
        scans.append(scan)
    return baby, scans


@pytest.fixture
def three_scan_babies(staff_user):
    """Two girls by their labels: one with a single boy-like scan among two clear girl's scans,
    one whose three scans all lean moderately to boy."""
    tiny_model_version()
    odd, odd_scans = baby_with_scans("female", [235, 40, 45], reviewer=staff_user)
    leaning, leaning_scans = baby_with_scans("female", [160, 165, 170], reviewer=staff_user)
    return {"odd": odd, "odd_scans": odd_scans, "leaning": leaning, "leaning_scans": leaning_scans}


def test_a_babys_score_combines_its_scans_as_its_prediction_does(three_scan_babies):
    from predictions.services import prediction_create

    score_all()

    for name in ("odd", "leaning"):
        baby = three_scan_babies[name]
        expected = prediction_create(baby=baby).probability_male  # the label is "female"
        scores = LabelQualityScore.objects.filter(scan__baby=baby)
        assert scores.count() == 3
        assert {score.baby_scans for score in scores} == {3}
        for score in scores:
            assert score.baby_disagreement == pytest.approx(expected, abs=1e-5)
    # The boy-like scan disagrees most on its own, yet its baby, all scans together, is a girl.
    odd_scan = LabelQualityScore.objects.get(scan=three_scan_babies["odd_scans"][0])
    assert odd_scan.disagreement == pytest.approx(sigmoid(expected_logit(235)), abs=1e-5)
    assert odd_scan.disagreement > 0.98
    assert odd_scan.baby_disagreement < 0.5


def test_the_queue_ranks_babies_and_keeps_their_scans_together(three_scan_babies, staff_client):
    score_all()

    order = listed_scan_ids(staff_client.get(QUEUE_URL))

    # Ranked by the scan alone, the boy-like scan of the girl would come first; by baby, the
    # girl whose every scan leans to boy does, with her three scans in a row.
    assert order[:3] == [scan.pk for scan in three_scan_babies["leaning_scans"]]
    likely = listed_scan_ids(staff_client.get(QUEUE_URL, {"label_check": "likely_error"}))
    assert likely == order[:3]


def test_scans_before_the_minimum_week_are_left_out_of_the_babys_score(staff_user, settings):
    settings.PREDICTION_MIN_GESTATIONAL_WEEK = 12
    tiny_model_version()
    # Labelled a girl: a boy-like scan at week 11 (too early to count) and a girl's at week 16.
    baby, scans = baby_with_scans("female", [235, 40], weeks=[11, 16], reviewer=staff_user)

    score_all()

    score = LabelQualityScore.objects.get(scan=scans[0])
    assert score.baby_scans == 1
    assert score.baby_disagreement == pytest.approx(sigmoid(expected_logit(40)), abs=1e-5)


def test_checking_one_scan_checks_the_babys_label_on_all_scans(three_scan_babies, staff_user, staff_client):
    score_all()
    leaning_scans = three_scan_babies["leaning_scans"]

    staff_client.post(QUEUE_URL, {"action": "mark_label_checked", "_selected_action": [leaning_scans[1].pk]})

    likely = listed_scan_ids(staff_client.get(QUEUE_URL, {"label_check": "likely_error"}))
    assert likely == []
    scores = LabelQualityScore.objects.filter(scan__in=leaning_scans)
    assert all(score.label_checked_by == staff_user for score in scores)
    entries = AuditEntry.objects.filter(action="scan.label_checked")
    assert sorted(int(entry.object_id) for entry in entries) == sorted(scan.pk for scan in leaning_scans)
    assert len({entry.batch for entry in entries}) == 1
    # Nothing left to check on that baby: a second call marks nothing and logs nothing.
    assert services.baby_label_mark_checked(baby=three_scan_babies["leaning"], actor=staff_user) == 0
    assert entries.count() == 3


def test_a_label_staff_set_is_not_a_likely_error(staff_user, staff_client):
    tiny_model_version()
    # Staff decided "girl" although every scan looks like a boy's: their call, not a likely error.
    baby, scans = baby_with_scans("female", [230, 235], reviewer=staff_user, source=LabelSource.STAFF)

    score_all()

    assert LabelQualityScore.objects.get(scan=scans[0]).baby_disagreement > 0.95
    assert listed_scan_ids(staff_client.get(QUEUE_URL, {"label_check": "likely_error"})) == []
    assert "set by staff" in staff_client.get(QUEUE_URL).content.decode()


def test_scoring_one_scan_scores_its_whole_baby(three_scan_babies, staff_client):
    leaning_scans = three_scan_babies["leaning_scans"]

    response = staff_client.post(
        QUEUE_URL, {"action": "score_label_quality", "_selected_action": [leaning_scans[0].pk]}, follow=True
    )

    assert "3 labelled scans of 1 babies scored: 1 likely label errors" in response.content.decode()
    assert set(LabelQualityScore.objects.values_list("scan_id", flat=True)) == {s.pk for s in leaning_scans}
