"""The quality gate: nothing near chance, and nothing worse than the live version, is switched on."""

import io
import math

import numpy as np
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


# --- Rule 3: probabilities no less honest than the live version's ----------------------------
def _calibrated_babies(total: int = 3000, seed: int = 7):
    """Babies whose true sex follows the live version's probability exactly: it is calibrated."""
    import numpy as np

    rng = np.random.default_rng(seed)
    # Mostly confident answers, as a good model gives: 90 % of babies at 0.02-0.2 or 0.8-0.98.
    confident = rng.uniform(0.8, 0.98, total)
    doubtful = rng.uniform(0.5, 0.8, total)
    leaning_male = rng.random(total) < 0.5
    strength = np.where(rng.random(total) < 0.9, confident, doubtful)
    probabilities = np.where(leaning_male, strength, 1 - strength)
    labels = (rng.random(total) < probabilities).astype(int)
    return labels, probabilities


def _evaluation_with(labels, probabilities, name="same babies") -> dict:
    pairs = zip(labels, probabilities, strict=True)
    correct = "".join("1" if (p >= 0.5) == (y == 1) else "0" for y, p in pairs)
    return {
        **_paired(correct, name),
        "baby_labels": "".join(str(int(y)) for y in labels),
        "baby_probabilities": [float(p) for p in probabilities],
    }


def _squashed(probabilities, factor: float):
    """The same answers (same side of 50 %), their certainty shrunk toward 50 % by ``factor``."""
    return 0.5 + factor * (probabilities - 0.5)


def test_the_bootstrapped_ece_is_the_evaluations_ece():
    from ml.metrics import expected_calibration_error

    labels, probabilities = _calibrated_babies(total=500)
    squashed = _squashed(probabilities, 0.7)
    comparison = gate.calibration_comparison(labels.astype(float), squashed, probabilities)
    assert comparison["candidate_ece"] == pytest.approx(expected_calibration_error(labels, squashed))
    assert comparison["live_ece"] == pytest.approx(expected_calibration_error(labels, probabilities))
    assert comparison["ece_increase"] == pytest.approx(comparison["candidate_ece"] - comparison["live_ece"])
    # Seeded: the same verdict every time.
    again = gate.calibration_comparison(labels.astype(float), squashed, probabilities)
    assert again["ece_increase_lower_bound"] == comparison["ece_increase_lower_bound"]


def test_an_as_accurate_challenger_with_squashed_probabilities_is_refused():
    """What a flood of wrong labels does: the same answers, told with too little certainty."""
    labels, probabilities = _calibrated_babies()
    live = _evaluation_with(labels, probabilities)
    squashed = _evaluation_with(labels, _squashed(probabilities, 0.7))
    assert squashed["correct"] == live["correct"]  # rules 1 and 2 see no difference at all

    verdict = gate.check(squashed, live)

    assert not verdict.passed and len(verdict.reasons) == 1
    assert "less honest than the live version's" in verdict.message and "ECE" in verdict.message
    calibration = verdict.details["calibration"]
    assert calibration["compared"] and calibration["ece_increase_lower_bound"] > gate.MAX_ECE_INCREASE
    assert calibration["candidate_ece"] > 0.08 > calibration["live_ece"]
    # Over-confidence is as dishonest as under-confidence.
    boastful = _evaluation_with(labels, np.clip(_squashed(probabilities, 1.6), 0.001, 0.999))
    assert "less honest" in gate.check(boastful, live).message


def test_a_small_or_uncertain_calibration_change_is_not_a_refusal():
    labels, probabilities = _calibrated_babies()
    live = _evaluation_with(labels, probabilities)
    # A point of ECE worse: within the tolerance, as retraining on the same data can do.
    slightly = gate.check(_evaluation_with(labels, _squashed(probabilities, 0.95)), live)
    assert slightly.passed
    assert 0 < slightly.details["calibration"]["ece_increase"] < gate.MAX_ECE_INCREASE
    # Better calibrated than the live version: nothing to object to.
    assert gate.check(live, _evaluation_with(labels, _squashed(probabilities, 0.7))).passed
    # Clearly squashed, but on 60 babies the bound cannot tell it from luck.
    few_labels, few_probabilities = _calibrated_babies(total=60)
    few = gate.check(
        _evaluation_with(few_labels, _squashed(few_probabilities, 0.7), "few"),
        _evaluation_with(few_labels, few_probabilities, "few"),
    )
    assert few.details["calibration"]["ece_increase"] > gate.MAX_ECE_INCREASE
    assert few.passed


def test_without_per_baby_probabilities_calibration_is_not_compared_and_says_so():
    labels, probabilities = _calibrated_babies(total=300)
    live = _evaluation_with(labels, probabilities)
    old = {key: value for key, value in live.items() if key not in ("baby_labels", "baby_probabilities")}
    verdict = gate.check(_evaluation_with(labels, _squashed(probabilities, 0.6)), old)
    assert verdict.passed
    calibration = verdict.details["calibration"]
    assert calibration["compared"] is False
    assert calibration["why"].startswith("the live version's evaluation has no per-baby probabilities")
    broken = {**live, "baby_probabilities": [*live["baby_probabilities"][:-1], 1.5]}
    assert gate.check(broken, live).details["calibration"]["compared"] is False


def test_the_activation_refusal_names_the_calibration_and_an_override_records_it(staff_user):
    labels, probabilities = _calibrated_babies()
    live = tiny_model_version(name="Live", metrics={"evaluation": _evaluation_with(labels, probabilities)})
    flooded = tiny_model_version(
        name="Trained on a flood",
        activate=False,
        metrics={"evaluation": _evaluation_with(labels, _squashed(probabilities, 0.7))},
    )
    with pytest.raises(ModelGateError, match="less honest than the live version's"):
        model_version_activate(model_version=flooded)
    live.refresh_from_db()
    assert live.is_active

    model_version_activate(
        model_version=flooded, user=staff_user, override_gate=True, reason="checked by hand"
    )
    entry = AuditEntry.objects.get(action="model_version.gate_overridden")
    assert entry.data["gate"]["calibration"]["compared"] is True
    assert "less honest" in entry.data["refused_because"][0]


def test_an_evaluation_stores_each_babys_label_and_probability_for_the_gate():
    version = _constant_version(2.0)  # always "boy", 88 % sure
    evaluation = version.metrics["evaluation"]
    babies = len(evaluation["correct"])
    assert len(evaluation["baby_labels"]) == len(evaluation["baby_probabilities"]) == babies
    assert evaluation["baby_probabilities"] == [pytest.approx(1 / (1 + math.exp(-2.0)), abs=1e-6)] * babies
    assert evaluation["baby_labels"] == evaluation["correct"]  # right exactly for the boys


# --- Rule 4: not trained on a flood of wrong answers ---------------------------------------------
def _label_errors(rate: float, lower: float, babies: int = 200) -> dict:
    return {"estimated": True, "rate": rate, "lower_bound": lower, "upper_bound": 0.5, "babies": babies}


def test_a_version_trained_on_a_flood_of_wrong_answers_is_refused_even_when_it_measures_well():
    live = _paired("1" * 270 + "0" * 30)
    as_good = _paired("1" * 270 + "0" * 30)

    flooded = gate.check(as_good, live, training_labels=_label_errors(0.41, 0.34))

    assert not flooded.passed and len(flooded.reasons) == 1
    assert "estimated 41% are wrong" in flooded.message and "judges its data" in flooded.message
    assert flooded.details["training_labels"]["lower_bound"] == 0.34
    # The usual share of mistakes, or a flood the interval cannot tell from it, is no refusal.
    assert gate.check(as_good, live, training_labels=_label_errors(0.12, 0.07)).passed
    assert gate.check(as_good, live, training_labels=_label_errors(0.3, 0.2, babies=40)).passed
    # Nothing estimated (too few babies scored out of sample): rule 4 does not judge.
    not_estimated = {"estimated": False, "babies": 12, "why": "fewer than 30 babies"}
    assert gate.check(as_good, live, training_labels=not_estimated).passed
    # It applies to a first version too: nothing live is no licence to learn from a flood.
    assert not gate.check(as_good, training_labels=_label_errors(0.41, 0.34)).passed


def test_the_activation_reads_the_estimate_from_the_training_sets_data_card(staff_user):
    from curation.models import TrainingSet

    tiny_model_version(name="Live", metrics={"evaluation": PASSING_EVALUATION})
    training_set = TrainingSet.objects.create(
        split_seed=1, content_digest="0" * 64, data_card={"label_errors": _label_errors(0.41, 0.34)}
    )
    candidate = tiny_model_version(name="Trained on a flood", activate=False)
    candidate.training_set = training_set
    candidate.save()

    with pytest.raises(ModelGateError, match="a flood of wrong answers"):
        model_version_activate(model_version=candidate)
    assert ModelVersion.objects.get(is_active=True).name == "Live"
