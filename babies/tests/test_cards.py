"""The dashboard's cards (babies.cards): links and strings made once per page say what the
template tags said, and the page costs the same queries however many babies and predictions."""

import datetime

import pytest
from django.db import connection
from django.template.defaultfilters import date as date_filter
from django.test.utils import CaptureQueriesContext, override_script_prefix
from django.urls import reverse
from django.utils import timezone

from babies.cards import baby_card, link_maker
from babies.templatetags.baby_tags import baby_in_sentence
from babies.tests.factories import BabyFactory, create_scan
from predictions.models import Prediction
from predictions.services import prediction_create
from predictions.tests.predict_support import grey_scan, tiny_model_version

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url_name", ["babies:baby_detail", "babies:scan_image", "predictions:predict"])
def test_a_link_made_once_is_the_reversed_link_for_every_id(url_name):
    make = link_maker(url_name)
    for object_id in (1, 7, 42, 7_130_462, 10**12):
        assert make(object_id) == reverse(url_name, args=[object_id])


def test_links_follow_the_script_prefix():
    with override_script_prefix("/instagender/"):
        assert link_maker("babies:baby_detail")(5) == "/instagender/babies/5/"
    assert link_maker("babies:baby_detail")(5) == "/babies/5/"


def test_a_card_says_what_the_tags_and_filters_said(user):
    baby = BabyFactory(owner=user, due_date=datetime.date(2027, 5, 3))
    early = create_scan(baby, gestational_week=9)
    later = create_scan(baby, gestational_week=20)

    card = baby_card(baby, scans=[early, later])

    assert card.id == str(baby.pk)
    assert (card.display_name, card.in_sentence) == (baby.display_name, baby_in_sentence(baby))
    assert card.due_date == "3 May 2027" and card.due_date_iso == "2027-05-03"
    assert card.detail_url == reverse("babies:baby_detail", args=[baby.pk])
    assert card.predict_url == reverse("predictions:predict", args=[baby.pk])
    first, second = card.thumbnails
    assert first.thumbnail_url == reverse("babies:scan_thumbnail", args=[early.pk])
    assert (first.is_too_early, first.is_flagged, second.is_flagged) == (True, True, False)
    uploaded = date_filter(timezone.localtime(early.uploaded_at), "j F Y")
    assert first.alt == (
        f"Scan 1 of your baby due on 3 May 2027 at week 9, uploaded {uploaded}, "
        "too early to predict from (opens full size)"
    )
    # Templates read fields as obj[name] too.
    assert card["in_sentence"] == card.in_sentence and first["alt"] == first.alt
    with pytest.raises(KeyError):
        card["no_such_field"]


def test_the_dashboard_costs_the_same_queries_with_predictions_from_several_versions(parent_client, user):
    def baby_with_prediction():
        baby = BabyFactory(owner=user)
        grey_scan(baby, 200, gestational_week=20)
        return prediction_create(baby=baby)

    tiny_model_version(name="First")
    baby_with_prediction()
    with CaptureQueriesContext(connection) as one_baby:
        parent_client.get(reverse("babies:dashboard"))

    for _ in range(3):
        baby_with_prediction()
    tiny_model_version(name="Second")
    for _ in range(2):
        baby_with_prediction()
    with CaptureQueriesContext(connection) as six_babies:
        content = parent_client.get(reverse("babies:dashboard")).content.decode()

    assert len(six_babies) == len(one_baby)
    assert Prediction.objects.count() == 6
    assert content.count('data-testid="prediction-model"') == 6
    assert content.count("Model: First") == 4 and content.count("Model: Second") == 2
