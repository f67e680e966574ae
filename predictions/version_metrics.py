"""One reader for ``ModelVersion.metrics``: the JSON a training run wrote, read defensively once.

Versions trained at different times recorded different things (the first ones only
``calibrated``; later ones ``abstention`` and ``week_bands``; now the ``evaluation`` on the fixed
evaluation set), and JSON can hold anything. Every page, tag, selector and command reads the
figures through :class:`VersionMetrics`, which answers ``None`` (or an empty table) for what a
version did not record instead of failing, and always in the same order of preference: the
evaluation first, then the older held-out test figures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ml import gate
from ml.evaluation import risk_coverage_row


def _number(value) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _count(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _proportion(value) -> float | None:
    number = _number(value)
    return number if number is not None and 0 <= number <= 1 else None


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _same_setting(measured, current) -> bool:
    if measured is None or current is None:
        return measured is None and current is None
    measured, current = _number(measured), _number(current)
    return measured is not None and current is not None and math.isclose(measured, current, abs_tol=1e-9)


@dataclass(frozen=True)
class PerBaby:
    """Per-baby accuracy on babies the version never saw, and the gate's lower bound for it."""

    accuracy: float | None = None
    babies: int | None = None
    lower_bound: float | None = None


@dataclass(frozen=True)
class Coverage:
    """One row of the risk–coverage curve: how often it answers, and how often it is then right."""

    coverage: float
    accuracy_answered: float
    babies: int | None


class VersionMetrics:
    def __init__(self, data):
        self.data = _dict(data)

    # --- raw access ------------------------------------------------------------------------
    def number(self, *paths: tuple[str, ...]) -> float | None:
        """The first finite number found at one of ``paths`` (tuples of keys)."""
        for keys in paths:
            node = self.data
            for key in keys:
                node = node.get(key) if isinstance(node, dict) else None
            value = _number(node)
            if value is not None:
                return value
        return None

    @property
    def evaluation(self) -> dict | None:
        """``metrics["evaluation"]``: the headline measurement (``ml.evaluation``), if recorded."""
        evaluation = self.data.get("evaluation")
        return evaluation if isinstance(evaluation, dict) else None

    @property
    def evaluation_set_name(self) -> str:
        return _dict(_dict(self.evaluation).get("set")).get("name") or "held-out test set"

    @property
    def headline(self) -> dict:
        """The per-baby report parents' figures come from: the evaluation's, else the test split's."""
        per_baby = _dict(_dict(self.evaluation).get("per_baby"))
        if _number(per_baby.get("accuracy")) is not None:
            return per_baby
        return _dict(_dict(self.data.get("calibrated")).get("per_baby"))

    @property
    def bayes_ceiling_per_baby(self) -> float | None:
        return self.number(("bayes", "ceiling_per_baby"))

    # --- what the gate and the card judge ---------------------------------------------------
    def per_baby(self) -> PerBaby:
        """Accuracy, babies and Wilson lower bound, counted as the gate counts them.

        The evaluation's ``correct`` string first; versions trained before it have only
        ``metrics["calibrated"]``, judged by the same rule when it says how many babies. A
        figure without a count bounds nothing.
        """
        evaluation = _dict(self.evaluation)
        correct = gate.correct_vector(evaluation)
        if correct is not None:
            right, total = correct.count("1"), len(correct)
            return PerBaby(right / total, total, gate.wilson_lower_bound(right, total))
        for per_baby in (evaluation.get("per_baby"), _dict(self.data.get("calibrated")).get("per_baby")):
            if not isinstance(per_baby, dict):
                continue
            accuracy, total = _proportion(per_baby.get("accuracy")), _count(per_baby.get("count"))
            if accuracy is not None and total:
                return PerBaby(accuracy, total, gate.wilson_lower_bound(round(accuracy * total), total))
            interval = per_baby.get("accuracy_wilson95")
            if accuracy is not None and isinstance(interval, list | tuple) and interval:
                lower = _proportion(interval[0])
                if lower is not None:
                    return PerBaby(accuracy, total, lower)
        return PerBaby()

    def coverage(
        self, *, margin: float, disagreement_threshold: float | None, min_gestational_week: int
    ) -> Coverage | None:
        """The risk–coverage row for this cannot-tell rule, or ``None`` if it was not measured.

        From the evaluation's curve (an older version's ``metrics["abstention"]`` has the same
        shape). Nothing when the margin was not measured, or when the curve was measured with
        another disagreement threshold or minimum week: it would describe another rule.
        """
        report = self.evaluation if self.evaluation is not None else self.data
        abstention, rule = _dict(report.get("abstention")), _dict(report.get("rule"))
        if not isinstance(abstention.get("by_margin"), list):
            return None
        for key, current in (
            ("disagreement_threshold", disagreement_threshold),
            ("min_gestational_week", min_gestational_week),
        ):
            source = abstention if key in abstention else rule
            if key not in source:
                if key == "disagreement_threshold":
                    return None  # unknown: the curve may describe another rule
                continue
            if not _same_setting(source[key], current):
                return None
        try:
            row = risk_coverage_row({"abstention": abstention}, float(margin))
        except (KeyError, TypeError):
            row = None
        if not isinstance(row, dict):
            return None
        coverage, accuracy = _proportion(row.get("coverage")), _proportion(row.get("accuracy_answered"))
        if coverage is None or accuracy is None:
            return None
        babies = _count(abstention.get("babies_considered")) or _count(
            _dict(report.get("per_baby")).get("count")
        )
        if babies is None and _count(abstention.get("babies")):
            babies = abstention["babies"] - (_count(abstention.get("babies_without_usable_scans")) or 0)
        return Coverage(coverage, accuracy, babies)

    # --- tables for staff ------------------------------------------------------------------
    def _rows(self, table) -> dict[str, tuple[float, int | None]]:
        result = {}
        for name, row in _dict(table).items():
            accuracy = _number(row.get("accuracy")) if isinstance(row, dict) else None
            if accuracy is not None:
                result[str(name)] = (accuracy, _count(row.get("count")))
        return result

    def accuracy_by_week(self) -> dict[str, tuple[float, int | None]]:
        """``{week: (accuracy, scans)}``: calibrated per-scan accuracy by gestational week."""
        return self._rows(_dict(self.data.get("calibrated")).get("per_scan_accuracy_by_week"))

    def week_bands(self) -> dict[str, tuple[float, int | None]]:
        """``{band: (accuracy, scans)}`` from ``week_bands["bands"]``, when recorded."""
        return self._rows(_dict(self.data.get("week_bands")).get("bands"))

    def scans_read(self) -> tuple[int | None, int | None]:
        """(scans in all splits, scans in the training split) of the run, when recorded."""
        splits = _dict(self.data.get("splits"))
        counts = [_number(size.get("scans")) for size in splits.values() if isinstance(size, dict)]
        train = self.number(("splits", "train", "scans"))
        total = int(sum(c for c in counts if c is not None)) if any(c is not None for c in counts) else None
        return total, int(train) if train is not None else None

    def honesty_tables(self) -> dict:
        """The per-week-band and the abstention tables (staff admin); missing pieces are ``None``."""
        week_bands = _dict(self.data.get("week_bands"))
        bands = [
            {
                "name": name,
                "count": row.get("count"),
                "accuracy": _number(row.get("accuracy")),
                "coverage": _number(row.get("coverage")),
                "accuracy_answered": _number(row.get("accuracy_answered")),
                "ece": _number(row.get("ece")),
            }
            for name, row in _dict(week_bands.get("bands")).items()
            if isinstance(row, dict)
        ]
        abstention = _dict(self.data.get("abstention"))
        at_margin = _dict(abstention.get("at_margin"))
        return {
            "bands": bands,
            "band_margin": _number(week_bands.get("margin")),
            "min_gestational_week": week_bands.get(
                "min_gestational_week", abstention.get("min_gestational_week")
            ),
            "abstention": abstention,
            "at_margin": at_margin,
            "by_margin": [row for row in abstention.get("by_margin") or [] if isinstance(row, dict)],
            "coverage": _number(at_margin.get("coverage")),
            "accuracy_answered": _number(at_margin.get("accuracy_answered")),
        }
