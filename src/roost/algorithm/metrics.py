"""Training progress on disk: one record per epoch, written to ``metrics.csv`` / ``metrics.jsonl`` and read back
(also from SageMaker-format log lines), and plotted."""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from roost.formats.artifact import META_FILE


@dataclass(kw_only=True)
class EpochMetrics:
    """One epoch's results, as ``metrics.csv`` and ``metrics.jsonl`` record them."""

    epoch: int
    train_accuracy: float
    train_top_k: float | None
    train_loss: float
    validation_accuracy: float
    validation_top_k: float | None
    validation_loss: float | None
    learning_rate: float
    time_cost: float
    images_per_second: float
    validation_per_class: list[dict] | None = None
    validation_confusion: list[list[int]] | None = None
    validation_map: float | None = None


class MetricsWriter:
    """``metrics.csv`` (one row per epoch) and ``metrics.jsonl`` (with per-class validation results)."""

    COLUMNS = [
        "epoch",
        "train_accuracy",
        "train_top_k",
        "train_loss",
        "validation_accuracy",
        "validation_top_k",
        "validation_loss",
        "validation_map",
        "learning_rate",
        "time_cost",
        "images_per_second",
    ]

    def __init__(self, folder: Path, class_names: list[str] | None, previous: Sequence[EpochMetrics] = ()) -> None:
        self.csv_path = folder / "metrics.csv"
        self.jsonl_path = folder / "metrics.jsonl"
        self.class_names = class_names
        with open(self.csv_path, "w", newline="") as f:
            csv.writer(f).writerow(self.COLUMNS)
        self.jsonl_path.write_text("")
        for m in previous:  # a resumed run keeps the epochs it already has
            self.write(m)

    def write(self, m: EpochMetrics) -> None:
        with open(self.csv_path, "a", newline="") as f:
            csv.writer(f).writerow(["" if getattr(m, c) is None else getattr(m, c) for c in self.COLUMNS])
        record = {c: getattr(m, c) for c in self.COLUMNS}
        if m.validation_per_class is not None:
            names = self.class_names or []
            record["validation_per_class"] = [
                {**row, "name": names[row["class"]]} if row["class"] < len(names) else row
                for row in m.validation_per_class
            ]
            record["validation_confusion"] = m.validation_confusion
        with open(self.jsonl_path, "a") as f:
            f.write(json.dumps(record) + "\n")


#: a metric's value in an epoch line, the one grammar every reader of those lines uses (nan included: a diverged
#: run prints it, and a reader skips it rather than misreading the line)
METRIC_VALUE = r"[-+0-9.eE]+|nan"
#: matches Roost's and SageMaker's lines, also with CloudWatch's time prefix in front
EPOCH_LINE = re.compile(rf"Epoch\[(\d+)\] (Train|Validation)-(accuracy|top_k_accuracy_\d+)=({METRIC_VALUE})")


@dataclass
class Curves:
    """Per-metric ``{epoch: value}``; metric names as in the log (``Train-accuracy``, "
    "``Validation-top_k_accuracy_2``)."""

    series: dict[str, dict[int, float]] = field(default_factory=dict)
    source: str = ""

    def add(self, name: str, epoch: int, value: float) -> None:
        self.series.setdefault(name, {})[epoch] = value

    def __bool__(self) -> bool:
        return any(self.series.values())


def parse_log(text: str, source: str = "log") -> Curves:
    """Curves from a log: Roost's, SageMaker's container log, or a CloudWatch export (restarts overwrite epochs)."""
    curves = Curves(source=source)
    for m in EPOCH_LINE.finditer(text):
        curves.add(f"{m.group(2)}-{m.group(3)}", int(m.group(1)), float(m.group(4)))
    return curves


def read_metrics_csv(path: str | os.PathLike) -> Curves:
    curves = Curves(source=str(path))
    names = {
        "train_accuracy": "Train-accuracy",
        "validation_accuracy": "Validation-accuracy",
        "train_top_k": "Train-top_k_accuracy",
        "validation_top_k": "Validation-top_k_accuracy",
    }
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            for col, name in names.items():
                if row.get(col):
                    curves.add(name, int(row["epoch"]), float(row[col]))
    return curves


def load_curves(path: str | os.PathLike) -> Curves:
    """From a job folder (metrics.csv, else training.log), a metrics.csv, or any log text file."""
    p = Path(path)
    if p.is_dir():
        for candidate in (p / "output" / "data" / "metrics.csv", p / "metrics.csv", p / "training.log"):
            if candidate.is_file():
                return load_curves(candidate)
        raise FileNotFoundError(
            f"{p}: no output/data/metrics.csv or training.log in this folder; is it a Roost job folder?"
        )
    if p.suffix == ".csv":
        return read_metrics_csv(p)
    curves = parse_log(p.read_text(encoding="utf-8", errors="replace"), str(p))
    if not curves:
        raise ValueError(f"{p}: no 'Epoch[N] Train-accuracy=' or 'Validation-accuracy=' lines found")
    return curves


def validation_report(job: str | os.PathLike) -> dict:
    """The served model's epoch from a job folder: its metrics, per-class results and confusion matrix."""
    job = Path(job)
    meta_path = job / "model" / META_FILE
    metrics_path = job / "output" / "data" / "metrics.jsonl"
    if not meta_path.is_file() or not metrics_path.is_file():
        raise FileNotFoundError(
            f"{job}: no model/{META_FILE} and output/data/metrics.jsonl; is it a finished Roost job?"
        )
    meta = json.loads(meta_path.read_text())
    epoch = next(c["epoch"] for c in meta["checkpoints"] if c["file"] == meta["model"]) - 1
    for line in metrics_path.read_text().splitlines():
        record = json.loads(line)
        if record["epoch"] == epoch:
            record["model"] = meta["model"]
            record["class_names"] = meta.get("class_names")
            return record
    raise ValueError(f"{metrics_path}: no metrics for epoch {epoch}, the epoch of {meta['model']}")


def plot_accuracy(curves: Curves, out: str | os.PathLike, title: str | None = None) -> Path:
    """Train and validation accuracy by epoch (top-k dashed), best validation epoch marked."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    styles = {"Train": ("tab:blue", "Train"), "Validation": ("tab:orange", "Validation")}
    for name, points in sorted(curves.series.items()):
        phase, metric = name.split("-", 1)
        epochs = sorted(points)
        color, label = styles.get(phase, ("grey", phase))
        top_k = metric.startswith("top_k")
        ax.plot(
            epochs,
            [points[e] for e in epochs],
            color=color,
            linestyle="--" if top_k else "-",
            marker="" if top_k else "o",
            markersize=3,
            label=f"{label} {metric.replace('_', ' ')}",
        )
    val = curves.series.get("Validation-accuracy")
    if val:
        best = max(val, key=lambda e: (val[e], -e))
        ax.annotate(
            f"best {val[best]:.3f} (epoch {best})",
            (best, val[best]),
            textcoords="offset points",
            xytext=(0, 8),
            ha="center",
            fontsize=8,
        )
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title(title or f"Accuracy by epoch: {curves.source}", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    return out
