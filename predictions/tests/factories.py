"""Test data for model versions: evaluation blocks the quality gate reads."""

from ml.evaluation import babies_digest


def evaluation_block(*, right: int, total: int, babies: str = "test-evaluation-babies") -> dict:
    """A ``metrics["evaluation"]`` with ``right`` of ``total`` babies answered correctly.

    ``babies`` names the evaluation babies: two blocks with the same name can be paired by the
    gate, as two versions measured on the same babies are.
    """
    keys = [f"{babies}-{index:05d}" for index in range(total)]
    return {
        "set": {"kind": "synthetic", "name": babies, "digest": babies},
        "babies": total,
        "babies_without_usable_scans": 0,
        "per_baby": {
            "count": total,
            "accuracy": right / total if total else None,
            "accuracy_ci95": None,
        },
        "correct": "1" * right + "0" * (total - right),
        "babies_digest": babies_digest(keys, [0] * total),
    }


PASSING_EVALUATION = evaluation_block(right=259, total=300)
