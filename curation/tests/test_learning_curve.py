"""The model-history page's learning curve: accuracy on the evaluation set against training babies."""

import pytest
from django.urls import reverse

from curation.learning_curve import evaluation_bayes_ceiling, learning_curve
from ml.synthetic import SyntheticConfig, bayes_ceiling
from predictions.evaluation_set import evaluation_set_identity
from predictions.models import ModelVersion
from predictions.tests.factories import evaluation_block
from predictions.tests.predict_support import tiny_model_version

pytestmark = pytest.mark.django_db

CHANGELIST = reverse("admin:predictions_modelversion_changelist")


def version_measured(*, name: str, babies: int, right: int, on_fixed_set: bool = True) -> ModelVersion:
    evaluation = evaluation_block(right=right, total=200)
    if on_fixed_set:
        evaluation["set"] = evaluation_set_identity()
    evaluation["per_baby"]["accuracy_ci95"] = [right / 200 - 0.04, right / 200 + 0.04]
    splits = {"train": {"babies": babies - 20, "scans": 0}, "val": {"babies": 10}, "test": {"babies": 10}}
    return tiny_model_version(name=name, activate=False, metrics={"evaluation": evaluation, "splits": splits})


def test_the_curve_plots_versions_measured_on_the_fixed_set_with_the_synthetic_ceiling():
    small = version_measured(name="small", babies=100, right=120)
    large = version_measured(name="large", babies=1600, right=180)
    version_measured(name="elsewhere", babies=400, right=150, on_fixed_set=False)

    curve = learning_curve(ModelVersion.objects.order_by("pk"))

    assert [(p.version, p.training_babies, p.accuracy) for p in curve.points] == [
        (small, 100, 0.6),
        (large, 1600, 0.9),
    ]
    assert curve.not_comparable == 1
    assert curve.bayes_ceiling_per_baby == pytest.approx(bayes_ceiling(SyntheticConfig(), 3))
    assert evaluation_bayes_ceiling({"set": {"kind": "held_out_test", "name": "test"}}) is None


def test_the_model_history_page_shows_the_learning_curve_and_its_figures(staff_client):
    version_measured(name="Loop round 1", babies=190, right=160)
    version_measured(name="Loop round 4", babies=1560, right=182)
    version_measured(name="Real data", babies=400, right=150, on_fixed_set=False)

    page = staff_client.get(CHANGELIST).text

    assert 'data-testid="learning-curve"' in page
    assert page.count('class="curation-chart-dot') == 2
    assert page.count('class="curation-chart-whisker') == 2
    assert 'class="curation-chart-reference"' in page
    ceiling = f"{bayes_ceiling(SyntheticConfig(), 3):.1%}"
    assert f"per-baby Bayes ceiling of the synthetic data ({ceiling})" in page
    assert "1 version measured on other babies is left out" in page
    assert "<td>190</td><td>80.0% (76.0%–84.0%)</td>" in page
    assert "<td>1560</td><td>91.0% (87.0%–95.0%)</td>" in page


def test_without_comparable_versions_the_page_has_no_curve(staff_client):
    version_measured(name="Real data", babies=400, right=150, on_fixed_set=False)
    assert 'data-testid="learning-curve"' not in staff_client.get(CHANGELIST).text
