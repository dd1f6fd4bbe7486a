"""Single-label and multi-label classification: loss, accuracy and the validation report.

Single-label: softmax cross-entropy; accuracy = share of images whose top class
is right; top-k accuracy; confusion matrix.

Multi-label (``multi_label=1``): one sigmoid per class with binary cross-entropy;
accuracy as SageMaker defines it, averaged over classes - the share of
(image, class) decisions at threshold 0.5 that are right; per-class precision,
recall, F1 and average precision, and their mean (mAP). ``use_weighted_loss=1``
weighs each class's positives by ``negatives / positives`` in the training
set, so rare labels count as much as common ones.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def per_class_report(confusion: np.ndarray) -> list[dict]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows: truth)."""
    tp = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    out = []
    for c in range(len(tp)):
        out.append(_prf(c, tp[c], predicted[c], support[c]))
    return out


def _prf(c: int, tp: float, predicted: float, support: float) -> dict:
    p = tp / predicted if predicted else 0.0
    r = tp / support if support else 0.0
    f1 = 2 * p * r / (p + r) if p + r else 0.0
    return {"class": c, "precision": float(p), "recall": float(r), "f1": float(f1), "support": int(support)}


def average_precision(scores: np.ndarray, truth: np.ndarray) -> float | None:
    """Area under the precision-recall curve, as the mean precision at each positive (None without positives)."""
    positives = truth.sum()
    if positives == 0:
        return None
    order = np.argsort(-scores, kind="stable")
    hits = truth[order]
    precision_at = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float((precision_at * hits).sum() / positives)


class SingleLabel:
    multi_label = False

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target)

    def batch_stats(self, logits: torch.Tensor, target: torch.Tensor, top_k: int | None) -> tuple[int, int, int]:
        """(correct, decisions, correct within top k) for one batch."""
        correct = int((logits.argmax(1) == target).sum())
        correct_k = 0
        if top_k:
            k = min(top_k, logits.shape[1])
            correct_k = int((logits.topk(k, dim=1).indices == target[:, None]).any(dim=1).sum())
        return correct, target.shape[0], correct_k

    def evaluator(self, num_classes: int) -> _SingleEval:
        return _SingleEval(num_classes)


class _SingleEval:
    def __init__(self, num_classes: int) -> None:
        self.n = num_classes
        self.confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def add(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        pred = logits.argmax(1)
        self.confusion += torch.bincount((target * self.n + pred).cpu(), minlength=self.n**2).view(self.n, self.n)

    def merge(self, other: _SingleEval) -> None:
        """Another process's share of the validation set (distributed training)."""
        self.confusion += other.confusion

    def report(self) -> dict:
        c = self.confusion.numpy()
        return {
            "accuracy": float(np.trace(c) / max(1, c.sum())),
            "per_class": per_class_report(c),
            "confusion": c.tolist(),
        }


class MultiLabel:
    multi_label = True

    def __init__(self, pos_weight: torch.Tensor | None = None) -> None:
        self.pos_weight = pos_weight

    @classmethod
    def weighted_by_frequency(cls, label_matrix: np.ndarray) -> MultiLabel:
        positives = label_matrix.sum(axis=0)
        negatives = label_matrix.shape[0] - positives
        weight = np.where(positives > 0, negatives / np.maximum(positives, 1), 1.0)
        return cls(torch.tensor(weight, dtype=torch.float32))

    def loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        pw = self.pos_weight.to(logits.device) if self.pos_weight is not None else None
        return F.binary_cross_entropy_with_logits(logits.float(), target, pos_weight=pw)

    def batch_stats(self, logits: torch.Tensor, target: torch.Tensor, top_k: int | None) -> tuple[int, int, int]:
        correct = int(((logits > 0) == (target > 0.5)).sum())
        return correct, target.numel(), 0

    def evaluator(self, num_classes: int) -> _MultiEval:
        return _MultiEval(num_classes)


class _MultiEval:
    def __init__(self, num_classes: int) -> None:
        self.scores: list[np.ndarray] = []
        self.truth: list[np.ndarray] = []

    def add(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        self.scores.append(torch.sigmoid(logits.float()).cpu().numpy())
        self.truth.append(target.cpu().numpy())

    def merge(self, other: _MultiEval) -> None:
        """Another process's share of the validation set (distributed training)."""
        self.scores += other.scores
        self.truth += other.truth

    def report(self) -> dict:
        scores = np.concatenate(self.scores)
        truth = np.concatenate(self.truth) > 0.5
        pred = scores > 0.5
        per_class = []
        for c in range(truth.shape[1]):
            row = _prf(c, float((pred[:, c] & truth[:, c]).sum()), float(pred[:, c].sum()), float(truth[:, c].sum()))
            row["accuracy"] = float((pred[:, c] == truth[:, c]).mean())
            row["average_precision"] = average_precision(scores[:, c], truth[:, c])
            per_class.append(row)
        aps = [r["average_precision"] for r in per_class if r["average_precision"] is not None]
        return {
            "accuracy": float((pred == truth).mean()),
            "per_class": per_class,
            "confusion": None,
            "mAP": float(np.mean(aps)) if aps else None,
        }


Task = SingleLabel | MultiLabel
