"""The PNG plots stored with a model version: ROC, reliability diagram, confusion matrix."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402 - the backend must be chosen first
import numpy as np  # noqa: E402

from ml import metrics  # noqa: E402


def _subtitle(title: str, synthetic: bool) -> str:
    return f"{title}\n(held-out test babies{'; SYNTHETIC data' if synthetic else ''})"


def save_plots(
    output_dir: Path, *, labels, logits, temperature: float, baby_keys, synthetic: bool
) -> dict[str, Path]:
    labels = np.asarray(labels)
    logits = np.asarray(logits, dtype=np.float64)
    before = metrics.sigmoid(logits)
    after = metrics.sigmoid(logits / temperature)
    paths = {}

    figure, axis = plt.subplots(figsize=(5, 5), dpi=100)
    fpr, tpr = metrics.roc_curve(labels, after)
    auc = metrics.roc_auc(labels, after)
    axis.plot(fpr, tpr, color="#7b2cbf", label=f"per scan, AUC {auc:.3f}" if auc is not None else "per scan")
    _, baby_labels, baby_logits = metrics.aggregate_by_baby(baby_keys, labels, logits / temperature)
    baby_fpr, baby_tpr = metrics.roc_curve(baby_labels, baby_logits)
    baby_auc = metrics.roc_auc(baby_labels, baby_logits)
    if baby_auc is not None:
        axis.plot(baby_fpr, baby_tpr, color="#e76f51", label=f"per baby, AUC {baby_auc:.3f}")
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    axis.set(xlabel="false positive rate (female called male)", ylabel="true positive rate (male)")
    axis.set_title(_subtitle("ROC", synthetic))
    axis.legend(loc="lower right")
    paths["roc"] = _save(figure, output_dir / "roc.png")

    figure, axis = plt.subplots(figsize=(5, 5), dpi=100)
    for probabilities, label, colour in [(before, "before", "#adb5bd"), (after, "after", "#7b2cbf")]:
        bins = [b for b in metrics.reliability_bins(labels, probabilities) if b["count"]]
        ece = metrics.expected_calibration_error(labels, probabilities)
        axis.plot(
            [b["mean_probability"] for b in bins],
            [b["observed_rate"] for b in bins],
            marker="o",
            color=colour,
            label=f"{label} temperature scaling, ECE {ece:.3f}",
        )
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    axis.set(
        xlabel="predicted probability of male", ylabel="observed share of males", xlim=(0, 1), ylim=(0, 1)
    )
    axis.set_title(_subtitle(f"Reliability (T = {temperature:.2f})", synthetic))
    axis.legend(loc="upper left")
    paths["reliability"] = _save(figure, output_dir / "reliability.png")

    figure, axis = plt.subplots(figsize=(5, 4.5), dpi=100)
    matrix = np.array(metrics.confusion_matrix(labels, after))
    axis.imshow(matrix, cmap="Purples")
    for (row, column), value in np.ndenumerate(matrix):
        axis.text(
            column,
            row,
            str(value),
            ha="center",
            va="center",
            color="white" if value > matrix.max() / 2 else "black",
        )
    axis.set_xticks([0, 1], ["female", "male"])
    axis.set_yticks([0, 1], ["female", "male"])
    axis.set(xlabel="predicted", ylabel="true")
    axis.set_title(_subtitle("Confusion matrix, per scan", synthetic))
    paths["confusion_matrix"] = _save(figure, output_dir / "confusion_matrix.png")
    return paths


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path
