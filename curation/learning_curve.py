"""The learning curve: each model version's accuracy on the evaluation set against its data.

Shown on the model-history page of the admin (``curation.admin.model_versions``). Only versions
measured on the fixed evaluation set configured now are plotted: figures on other babies (a
real-data version's own test babies, an older set) are not comparable, and are counted instead.
The per-baby Bayes ceiling of the synthetic evaluation set is the line no model can beat.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ml.synthetic import SyntheticConfig, bayes_ceiling


@dataclass(frozen=True)
class CurvePoint:
    version: object  # predictions.models.ModelVersion
    training_babies: int
    accuracy: float
    accuracy_ci95: tuple[float, float] | None


@dataclass
class LearningCurve:
    points: list[CurvePoint] = field(default_factory=list)
    bayes_ceiling_per_baby: float | None = None
    evaluation_set_name: str = ""
    not_comparable: int = 0


def evaluation_bayes_ceiling(evaluation: dict | None) -> float | None:
    """The per-baby Bayes ceiling of a synthetic evaluation set, from its stored identity."""
    identity = (evaluation or {}).get("set") or {}
    if identity.get("kind") != "synthetic" or "config" not in identity:
        return None
    config = SyntheticConfig.from_dict(identity["config"])
    return bayes_ceiling(config, int(identity.get("scans_per_baby", 3)))


def training_babies(version) -> int | None:
    """Babies in the data a version was trained on (its frozen set, else its recorded splits)."""
    if version.training_set_id is not None:
        return version.training_set.baby_count
    splits = (version.metrics or {}).get("splits")
    if not isinstance(splits, dict):
        return None
    counts = [split.get("babies") for split in splits.values() if isinstance(split, dict)]
    return sum(counts) if counts and all(isinstance(count, int) for count in counts) else None


def learning_curve(versions) -> LearningCurve:
    """The points of ``versions`` (a ModelVersion queryset or list) measured on the fixed set."""
    from predictions.evaluation_set import evaluation_set_identity

    identity = evaluation_set_identity()
    curve = LearningCurve(
        bayes_ceiling_per_baby=evaluation_bayes_ceiling({"set": identity}),
        evaluation_set_name=f"{identity['name']} ({identity['babies']} babies, seed {identity['seed']})",
    )
    for version in versions:
        evaluation = version.measured.evaluation or {}
        accuracy = version.measured.headline.get("accuracy")
        babies = training_babies(version)
        if (evaluation.get("set") or {}).get("digest") != identity["digest"] or None in (accuracy, babies):
            curve.not_comparable += 1
            continue
        interval = version.measured.headline.get("accuracy_ci95")
        curve.points.append(
            CurvePoint(
                version=version,
                training_babies=babies,
                accuracy=accuracy,
                accuracy_ci95=tuple(interval) if interval and None not in interval else None,
            )
        )
    curve.points.sort(key=lambda point: (point.training_babies, point.version.pk))
    return curve
