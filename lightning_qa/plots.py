"""`training_curves.png`: training loss and validation EM/F1 against steps, drawn at the end of fit
(`callbacks.TrainingCurves`)."""

from __future__ import annotations

import csv


def read_metrics(path: str) -> dict[str, list[tuple[int, float]]]:
    """metrics.csv (CSVLogger) -> {metric: [(step, value), ...]}."""
    series: dict[str, list[tuple[int, float]]] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for key, value in row.items():
                if key not in ("epoch", "step") and value not in ("", None):
                    series.setdefault(key, []).append((int(row["step"]), float(value)))
    return series


def plot_training_curves(metrics_csv: str, out_png: str) -> str | None:
    """Draw the curves; None when matplotlib (the `plot` extra) is missing or nothing was logged."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    series = read_metrics(metrics_csv)
    if "train/loss" not in series:
        return None
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(*zip(*series["train/loss"], strict=True), label="train loss")
    if "val/loss" in series:
        ax_loss.plot(*zip(*series["val/loss"], strict=True), "o-", label="validation loss")
    ax_loss.set(xlabel="step", ylabel="loss", title="Loss")
    ax_loss.legend()
    for key, label in (("val/exact_match", "exact match"), ("val/f1", "F1")):
        if key in series:
            ax_val.plot(*zip(*series[key], strict=True), "o-", label=label)
    ax_val.set(xlabel="step", ylabel="%", title="Validation (SQuAD)", ylim=(0, 100))
    if ax_val.lines:
        ax_val.legend()
    else:  # fit without validation
        ax_val.text(0.5, 0.5, "no validation data", ha="center", va="center", transform=ax_val.transAxes)
    fig.tight_layout()
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
