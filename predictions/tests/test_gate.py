"""The quality gate: nothing near chance, and nothing worse than the live version, is switched on."""

import io

import pytest
from django.core.management import CommandError, call_command

from audit.models import AuditEntry
from ml import gate
from predictions import evaluation_set
from predictions.models import ModelActivation, ModelVersion
from predictions.services import ModelGateError, model_version_activate
from predictions.tests.factories import PASSING_EVALUATION, evaluation_block
from predictions.tests.predict_support import IMAGE_SIZE, mean_pixel_tflite, tiny_model_version

pytestmark = pytest.mark.django_db


def test_wilson_lower_bound_and_the_rule_stated():
    assert gate.wilson_lower_bound(152, 300) == pytest.approx(0.450, abs=1e-3)  # a coin flip
    assert gate.wilson_lower_bound(0, 0) == 0.0
    assert gate.check(evaluation_block(right=200, total=300)).passed  # 66.7 %, bound 61.2 %
    refused = gate.check(evaluation_block(right=190, total=300))  # 63.3 %, bound 57.7 %
    assert not refused.passed and "not clearly above chance" in refused.message
    assert refused.details["accuracy_lower_bound"] == pytest.approx(0.577, abs=1e-3)


def test_mcnemar_is_one_sided_and_exact():
    assert gate.mcnemar_worse_p_value(0, 0) == 1.0
    assert gate.mcnemar_worse_p_value(0, 5) == pytest.approx(1 / 32)
    assert gate.mcnemar_worse_p_value(5, 0) == 1.0
    assert gate.mcnemar_worse_p_value(10, 20) == pytest.approx(0.0494, abs=1e-4)
    # A chance-level model against a good one on 3,000 babies: over a thousand discordant pairs.
    assert gate.mcnemar_worse_p_value(200, 1200) < 1e-100
    assert gate.mcnemar_worse_p_value(1200, 1200) == pytest.approx(0.5081, abs=1e-3)  # P(X <= n/2)


def _paired(correct: str, name="same babies") -> dict:
    block = evaluation_block(right=correct.count("1"), total=len(correct), babies=name)
    return {**block, "correct": correct}


def test_a_worse_challenger_is_refused_and_an_equal_one_passes():
    live = _paired("1" * 270 + "0" * 30)
    worse = _paired("1" * 250 + "0" * 50)  # 20 babies only the live version gets right
    verdict = gate.check(worse, live)
    assert not verdict.passed and "worse than the live version" in verdict.message
    assert (
        verdict.details["paired"]["live_only_right"] == 20
        and verdict.details["paired"]["candidate_only_right"] == 0
    )
    # Different babies: no pairing, so no claim that it is at least as good.
    assert "cannot be compared" in gate.check(_paired("1" * 270 + "0" * 30, "other babies"), live).message
    # Trading a few babies either way is not "worse".
    traded = _paired("0" * 5 + "1" * 265 + "0" * 25 + "1" * 5)
    assert gate.check(traded, live).passed


def test_a_chance_level_challenger_against_a_good_live_version_on_3000_babies():
    live = _paired("1" * 2700 + "0" * 300)
    coin = _paired("10" * 1500)
    verdict = gate.check(coin, live)
    assert not verdict.passed and len(verdict.reasons) == 2
    assert "not clearly above chance" in verdict.reasons[0] and "worse than the live" in verdict.reasons[1]


def test_a_never_measured_version_is_refused():
    verdict = gate.check(None)
    assert not verdict.passed and "never been measured" in verdict.message


def _constant_version(bias: float) -> ModelVersion:
    """A real .tflite that ignores the scan: logit = bias, i.e. always one sex."""
    version = tiny_model_version(
        name=f"Constant {bias}", activate=False, tflite_content=mean_pixel_tflite(weight=0.0, bias=bias)
    )
    version.metrics = {
        "evaluation": evaluation_set.evaluate_tflite(
            version.tflite_file.read(),
            spec=version.get_input_spec(),
            temperature=1.0,
            calibration=version.get_baby_calibration(),
            evaluation_set=evaluation_set.fixed_evaluation_set(),
        )
    }
    version.save()
    return version


def test_the_gate_refuses_a_constant_output_model_measured_for_real():
    always_girl = _constant_version(-5.0)
    evaluation = always_girl.metrics["evaluation"]
    assert evaluation["set"]["kind"] == "synthetic" and evaluation["per_baby"]["count"] >= 55
    assert evaluation["correct"].count("1") == sum(1 for c in evaluation["correct"] if c == "1")
    with pytest.raises(ModelGateError, match="not clearly above chance"):
        model_version_activate(model_version=always_girl)
    assert not ModelVersion.objects.active().exists() and not ModelActivation.objects.exists()


def test_activate_model_refuses_then_accepts_an_override_with_a_reason_that_is_audited(staff_user):
    live = tiny_model_version(name="Live", metrics={"evaluation": _paired("1" * 270 + "0" * 30)})
    worse = tiny_model_version(
        name="Worse", activate=False, metrics={"evaluation": _paired("1" * 250 + "0" * 50)}
    )
    with pytest.raises(CommandError, match="worse than the live version"):
        call_command("activate_model", str(worse.pk), stdout=io.StringIO())
    with pytest.raises(CommandError, match="needs a --reason"):
        call_command("activate_model", str(worse.pk), override_gate=True, stdout=io.StringIO())
    live.refresh_from_db()
    assert live.is_active
    out = io.StringIO()
    call_command(
        "activate_model",
        str(worse.pk),
        override_gate=True,
        reason="roll back while #1 is checked",
        stdout=out,
    )
    worse.refresh_from_db()
    assert worse.is_active and "Activated" in out.getvalue()
    entry = AuditEntry.objects.get(action="model_version.gate_overridden")
    assert entry.object_id == str(worse.pk) and entry.data["reason"] == "roll back while #1 is checked"
    assert "worse than the live version" in entry.data["refused_because"][0]
    assert entry.data["gate"]["paired"]["live_only_right"] == 20


def test_a_version_passing_the_gate_needs_no_override():
    tiny_model_version(name="Live", metrics={"evaluation": PASSING_EVALUATION})
    better = tiny_model_version(name="Better", activate=False, metrics={"evaluation": PASSING_EVALUATION})
    assert model_version_activate(model_version=better).is_active
    assert not AuditEntry.objects.filter(action="model_version.gate_overridden").exists()


def test_the_live_version_is_evaluated_on_the_fixed_set_when_it_has_no_stored_evaluation():
    """An old live version (no evaluation) is measured on the challenger's babies for the pairing."""
    old = tiny_model_version(name="Old", metrics={"calibrated": {"per_baby": {"accuracy": 0.5}}})
    assert old.is_active
    always_girl = _constant_version(-5.0)
    verdict = gate.check(always_girl.metrics["evaluation"])
    assert not verdict.passed
    from predictions.services import model_version_gate

    paired = model_version_gate(always_girl).details.get("paired")
    assert paired is not None  # the old version's .tflite was run on the same babies


def test_the_evaluation_set_is_never_trained_on(tmp_path):
    from ml.splits import split_by_baby

    records = evaluation_set.fixed_evaluation_set().records
    assert {record.split for record in records} == {"eval"} and len({r.baby_key for r in records}) == 60
    with pytest.raises(ValueError, match="never trained on"):
        split_by_baby(records, seed=0)


def test_the_evaluation_set_is_the_same_wherever_it_is_generated(settings, tmp_path):
    first = evaluation_set.fixed_evaluation_set()
    settings.MODEL_EVALUATION_DIR = tmp_path / "elsewhere"
    second = evaluation_set.fixed_evaluation_set()
    assert first.identity == second.identity
    assert [r.read_bytes() for r in first.records[:6]] == [r.read_bytes() for r in second.records[:6]]
    assert (
        first.identity["seed"] == settings.MODEL_EVALUATION_SEED and first.identity["generator_version"] >= 2
    )
    settings.MODEL_EVALUATION_SEED = 1
    assert evaluation_set.evaluation_set_identity()["digest"] != first.identity["digest"]


def test_evaluate_model_reproduces_the_stored_figures_and_says_when_they_differ():
    version = _constant_version(-5.0)
    out = io.StringIO()
    call_command("evaluate_model", str(version.pk), stdout=out)
    assert "Reproduced: every baby got the same verdict as stored." in out.getvalue()
    assert "per-baby accuracy" in out.getvalue() and "not clearly above chance" in out.getvalue()
    flipped = version.metrics["evaluation"]["correct"].translate(str.maketrans("01", "10"))
    version.metrics = {"evaluation": {**version.metrics["evaluation"], "correct": flipped}}
    version.save()
    with pytest.raises(CommandError, match="do not reproduce"):
        call_command("evaluate_model", str(version.pk), stdout=io.StringIO())


def test_evaluate_model_can_record_an_evaluation_for_an_old_version():
    old = tiny_model_version(name="Old", activate=False, metrics={})
    call_command("evaluate_model", str(old.pk), store=True, stdout=io.StringIO())
    old.refresh_from_db()
    assert old.metrics["evaluation"]["set"]["seed"] == evaluation_set.evaluation_set_identity()["seed"]
    assert old.get_input_spec().image_size == IMAGE_SIZE
