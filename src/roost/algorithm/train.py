"""The training loop: SageMaker's image-classification algorithm on PyTorch.

Read top to bottom: ``train`` builds data, network and optimizer from the
hyperparameters, then alternates ``train_one_epoch`` and ``evaluate``,
logging SageMaker's lines, writing metrics and keeping checkpoints.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from roost import __version__
from roost.algorithm.hyperparameters import HyperParameters
from roost.algorithm.runtime import keep_freed_memory
from roost.data.augment import Preprocess
from roost.data.parallel import available_cores
from roost.data.records import ChannelError, RecordImageDataset, make_loader
from roost.formats.artifact import Checkpoint, ModelMeta, checkpoint_name, serving_preprocessing, write_model_shapes
from roost.formats.artifact import META_FILE
from roost.models.artifact import save_checkpoint
from roost.models.resnet import ResNet

log = logging.getLogger("roost.algorithm")

BatchHook = Callable[[str, int, int, int], None]  # (phase, epoch, batches done, batches total)


@dataclass
class EpochMetrics:
    epoch: int
    train_accuracy: float
    train_top_k: float | None
    train_loss: float
    validation_accuracy: float | None
    validation_top_k: float | None
    validation_loss: float | None
    learning_rate: float
    time_cost: float
    images_per_second: float
    validation_per_class: list[dict] | None = None
    validation_confusion: list[list[int]] | None = None


@dataclass
class TrainResult:
    epochs_run: int
    best_validation_accuracy: float | None
    model_file: str
    history: list[EpochMetrics] = field(default_factory=list)


# --------------------------------------------------------------------------- pieces


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(available_cores())
    keep_freed_memory()
    return torch.device("cpu")


def make_optimizer(model: nn.Module, hp: HyperParameters) -> torch.optim.Optimizer:
    """SageMaker's optimizer names and arguments (reference §1.5).

    Like MXNet (``wd_mult`` 0 for biases, gamma and beta), weight decay applies
    to conv and fully connected weights only, and - as SageMaker documents -
    only for sgd and nag.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        is_weight = name.endswith("weight") and p.ndim > 1
        (decay if is_weight else no_decay).append(p)
    wd = hp.weight_decay if hp.optimizer in ("sgd", "nag") else 0.0
    groups = [{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}]
    lr = hp.learning_rate
    if hp.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=hp.momentum)
    if hp.optimizer == "nag":
        return torch.optim.SGD(groups, lr=lr, momentum=hp.momentum, nesterov=hp.momentum > 0)
    if hp.optimizer == "adam":
        return torch.optim.Adam(groups, lr=lr, betas=(hp.beta_1, hp.beta_2), eps=hp.eps)
    return torch.optim.RMSprop(groups, lr=lr, alpha=hp.gamma, eps=hp.eps)


class MultiFactorSchedule:
    """MXNet's ``MultiFactorScheduler`` over update counts, steps from epochs as ``fit.py`` computes them.

    The container runs Python 2, so ``epoch_size`` is ``floor(num_training_samples / mini_batch_size)``.
    """

    def __init__(self, hp: HyperParameters) -> None:
        self.base = hp.learning_rate
        self.factor = hp.lr_scheduler_factor
        epoch_size = max(1, hp.num_training_samples // hp.mini_batch_size)
        self.steps = [epoch_size * e for e in (hp.lr_scheduler_step or ())]
        self.index = 0

    def lr(self, num_update: int) -> float:
        """Learning rate for the ``num_update``-th update (1-based); logs each change like MXNet."""
        while self.index < len(self.steps) and num_update > self.steps[self.index]:
            self.index += 1
            log.info("Update[%d]: Change learning rate to %0.5e", num_update, self.current)
        return self.current

    @property
    def current(self) -> float:
        return self.base * self.factor**self.index


def topk_correct(logits: torch.Tensor, target: torch.Tensor, k: int) -> int:
    k = min(k, logits.shape[1])
    return int((logits.topk(k, dim=1).indices == target[:, None]).any(dim=1).sum())


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NCHW from the loader -> float32 on the device (channels-last on CPU, where oneDNN prefers it)."""
    x = images.to(device, non_blocking=True).float()
    return x.contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- epochs


class TrainStep:
    """One optimisation step on a uint8 batch: the unit the training benchmark times."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device) -> None:
        self.model, self.optimizer, self.device = model, optimizer, device

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_input(images, self.device)
        y = labels.to(self.device, non_blocking=True)
        logits = self.model(x)
        loss = F.cross_entropy(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return logits.detach(), loss.detach()


def train_one_epoch(step: TrainStep, loader, schedule, num_update: int, epoch: int, top_k,
                    on_batch: BatchHook | None) -> tuple[dict, int]:
    step.model.train()
    seen = correct = correct_k = 0
    loss_sum = 0.0
    total = len(loader)
    if hasattr(loader.batch_sampler, "set_epoch"):
        loader.batch_sampler.set_epoch(epoch)
    for b, (images, labels) in enumerate(loader, 1):
        num_update += 1
        step.set_lr(schedule.lr(num_update))
        logits, loss = step(images, labels)
        y = labels.to(logits.device)
        n = y.shape[0]
        seen += n
        loss_sum += float(loss) * n
        correct += int((logits.argmax(1) == y).sum())
        if top_k:
            correct_k += topk_correct(logits, y, top_k)
        if not math.isfinite(loss_sum):
            raise FloatingPointError(
                f"training diverged in epoch {epoch} (loss is {loss_sum}); lower learning_rate (now {schedule.current:g})"
            )
        if on_batch:
            on_batch("train", epoch, b, total)
    return {"accuracy": correct / seen, "top_k": correct_k / seen if top_k else None, "loss": loss_sum / seen,
            "images": seen}, num_update


@torch.no_grad()
def evaluate(model, loader, epoch: int, device, top_k, num_classes: int, on_batch: BatchHook | None) -> dict:
    model.eval()
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    seen = correct_k = 0
    loss_sum = 0.0
    total = len(loader)
    for b, (images, labels) in enumerate(loader, 1):
        logits = model(to_input(images, device))
        y = labels.to(device)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        pred = logits.argmax(1)
        confusion += torch.bincount((y * num_classes + pred).cpu(), minlength=num_classes**2).view(num_classes, num_classes)
        seen += y.shape[0]
        if top_k:
            correct_k += topk_correct(logits, y, top_k)
        if on_batch:
            on_batch("validation", epoch, b, total)
    correct = int(confusion.diag().sum())
    return {"accuracy": correct / seen, "top_k": correct_k / seen if top_k else None, "loss": loss_sum / seen,
            "confusion": confusion.tolist(), "per_class": per_class_report(confusion.numpy())}


def per_class_report(confusion: np.ndarray) -> list[dict]:
    """Precision, recall, F1 and support per class from a confusion matrix (rows: truth)."""
    tp = np.diag(confusion).astype(float)
    predicted = confusion.sum(axis=0)
    support = confusion.sum(axis=1)
    out = []
    for c in range(len(tp)):
        p = tp[c] / predicted[c] if predicted[c] else 0.0
        r = tp[c] / support[c] if support[c] else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        out.append({"class": c, "precision": p, "recall": r, "f1": f1, "support": int(support[c])})
    return out


# --------------------------------------------------------------------------- the job


def log_parameters(hp: HyperParameters, precision: str) -> None:
    """The "---- Parameters ----" block of SageMaker's log."""
    log.info("---- Parameters ----")
    log.info("num_layers: %d", hp.num_layers)
    log.info("data type: <type 'numpy.%s'>", precision)
    log.info("epochs: %d", hp.epochs)
    if hp.resize:
        log.info("image resize size: %d", hp.resize)
    log.info("optimizer: %s", hp.optimizer)
    if hp.optimizer in ("sgd", "nag"):
        log.info("momentum: %s", hp.momentum)
        log.info("weight_decay: %s", hp.weight_decay)
    elif hp.optimizer == "adam":
        log.info("beta_1: %s", hp.beta_1)
        log.info("beta_2: %s", hp.beta_2)
        log.info("eps: %s", hp.eps)
    else:
        log.info("gamma: %s", hp.gamma)
        log.info("eps: %s", hp.eps)
    log.info("learning_rate: %s", hp.learning_rate)
    log.info("num_training_samples: %d", hp.num_training_samples)
    log.info("mini_batch_size: %d", hp.mini_batch_size)
    log.info("image_shape: %s", ",".join(map(str, hp.image_shape)))
    log.info("num_classes: %d", hp.num_classes)
    log.info("augmentation_type: %s", hp.augmentation_type)
    log.info("kv_store: %s", hp.kv_store or "device")
    if hp.top_k:
        log.info("top_k: %d", hp.top_k)
    if hp.checkpoint_frequency:
        log.info("checkpoint_frequency: %d", hp.checkpoint_frequency)
    else:
        log.info("checkpoint_frequency not set, will store the best model")
    log.info("--------------------")


def load_channel(files, hp: HyperParameters, train: bool) -> RecordImageDataset:
    c, h, w = hp.image_shape
    pre = Preprocess(h, w, resize=hp.resize, augmentation_type=hp.augmentation_type, train=train)
    return RecordImageDataset(files, pre, channels=c, num_classes=hp.num_classes, multi_label=bool(hp.multi_label))


def train(
    hp: HyperParameters,
    train_files: list[Path],
    validation_files: list[Path],
    model_dir: Path,
    output_data_dir: Path,
    *,
    class_names: list[str] | None = None,
    workers: int | None = None,
    seed: int = 0,
    on_batch: BatchHook | None = None,
) -> TrainResult:
    torch.manual_seed(seed)
    device = pick_device()
    if hp.multi_label:
        raise ChannelError("multi_label=1 is not supported yet")
    if hp.precision_dtype == "float16":
        log.info("precision_dtype=float16 is not supported yet; training in float32")

    # ---- data
    train_set = load_channel(train_files, hp, train=True)
    val_set = load_channel(validation_files, hp, train=False)
    if len(train_set) != hp.num_training_samples:
        log.warning(
            "num_training_samples=%d but the train channel holds %d images; the learning-rate schedule "
            "(lr_scheduler_step) counts updates from num_training_samples", hp.num_training_samples, len(train_set))
    if len(train_set) < hp.mini_batch_size:
        raise ChannelError(
            f"The number of input images must be bigger or equal to the mini_batch_size: the train channel has "
            f"{len(train_set)} images, mini_batch_size is {hp.mini_batch_size}")
    if workers is None:
        workers = available_cores()
    pin = device.type == "cuda"
    train_loader = make_loader(train_set, hp.mini_batch_size, train=True, workers=workers, seed=seed, pin_memory=pin)
    val_loader = make_loader(val_set, hp.mini_batch_size, train=False, workers=workers, pin_memory=pin)

    # ---- network and optimizer
    log.info("use_pretrained_model: %d", hp.use_pretrained_model)
    log.info("multi_label: %d", hp.multi_label)
    log_parameters(hp, "float32")
    model = ResNet(hp.num_classes, hp.num_layers, hp.image_shape).to(device, memory_format=torch.channels_last)
    step = TrainStep(model, make_optimizer(model, hp), device)
    schedule = MultiFactorSchedule(hp)
    log.info("Setting number of threads: %d", torch.get_num_threads() if device.type == "cpu" else workers)
    log.info("Training on %s with %d data-loading workers", device, workers)

    # ---- epochs
    model_dir.mkdir(parents=True, exist_ok=True)
    output_data_dir.mkdir(parents=True, exist_ok=True)
    writer = MetricsWriter(output_data_dir, class_names)
    checkpoints: list[Checkpoint] = []
    best: float | None = None
    num_update = 0
    history = []
    for epoch in range(hp.epochs):
        tic = time.perf_counter()
        tr, num_update = train_one_epoch(step, train_loader, schedule, num_update, epoch, hp.top_k, on_batch)
        log.info("Epoch[%d] Train-accuracy=%f", epoch, tr["accuracy"])
        if hp.top_k:
            log.info("Epoch[%d] Train-top_k_accuracy_%d=%f", epoch, hp.top_k, tr["top_k"])
        cost = time.perf_counter() - tic
        log.info("Epoch[%d] Time cost=%.3f", epoch, cost)
        va = evaluate(model, val_loader, epoch, device, hp.top_k, hp.num_classes, on_batch)
        log.info("Epoch[%d] Validation-accuracy=%f", epoch, va["accuracy"])
        if hp.top_k:
            log.info("Epoch[%d] Validation-top_k_accuracy_%d=%f", epoch, hp.top_k, va["top_k"])

        metrics = EpochMetrics(epoch, tr["accuracy"], tr["top_k"], tr["loss"], va["accuracy"], va["top_k"], va["loss"],
                               schedule.current, cost, tr["images"] / cost, va["per_class"], va["confusion"])
        history.append(metrics)
        writer.write(metrics)

        # ---- checkpoints
        if hp.checkpoint_frequency:
            if (epoch + 1) % hp.checkpoint_frequency == 0:
                checkpoints.append(_save(model, model_dir, epoch, va["accuracy"]))
        elif best is None or va["accuracy"] > best:
            log.info("Storing the best model with validation accuracy: %f", va["accuracy"])
            for old in checkpoints:
                (model_dir / old.file).unlink(missing_ok=True)
            checkpoints = [_save(model, model_dir, epoch, va["accuracy"])]
        if best is None or va["accuracy"] > best:
            best = va["accuracy"]

        if hp.early_stopping and _should_stop(history, hp):
            break

    if not checkpoints:  # checkpoint_frequency that never fired: keep the final epoch
        checkpoints.append(_save(model, model_dir, epoch, va["accuracy"]))
    served = _served_checkpoint(checkpoints)
    write_model_shapes(model_dir, hp.mini_batch_size, hp.image_shape)
    meta = ModelMeta(
        num_classes=hp.num_classes, num_layers=hp.num_layers, image_shape=list(hp.image_shape),
        hyperparameters=hp.to_strings(), checkpoints=checkpoints, model=served.file, head=model.head_name,
        multi_label=bool(hp.multi_label), class_names=class_names,
        preprocessing=serving_preprocessing(hp.image_shape), roost_version=__version__,
    )
    (model_dir / META_FILE).write_text(meta.to_json(), encoding="utf-8")
    return TrainResult(len(history), best, served.file, history)


def _save(model: nn.Module, model_dir: Path, epoch: int, accuracy: float) -> Checkpoint:
    name = checkpoint_name(epoch)
    path = save_checkpoint(model, model_dir / name)
    log.info('Saved checkpoint to "%s"', path)
    return Checkpoint(name, epoch + 1, accuracy)


def _served_checkpoint(checkpoints: list[Checkpoint]) -> Checkpoint:
    # with periodic checkpoints SageMaker ships them all; serving takes the best of them
    return max(checkpoints, key=lambda c: (c.validation_accuracy or 0.0, c.epoch))


def _improves(new: float, best: float, tolerance: float) -> bool:
    """Relative improvement rule of ``early_stopping_tolerance``: (new - best) / best >= tolerance."""
    if new <= best:
        return False
    return best == 0 or (new - best) / best >= tolerance


def _should_stop(history: list[EpochMetrics], hp: HyperParameters) -> bool:
    epoch = history[-1].epoch
    if epoch + 1 < hp.early_stopping_min_epochs:
        return False
    best, best_epoch = None, 0
    for m in history:
        if best is None or _improves(m.validation_accuracy, best, hp.early_stopping_tolerance):
            best, best_epoch = m.validation_accuracy, m.epoch
    if epoch - best_epoch < hp.early_stopping_patience:
        return False
    log.info("Early stopping: validation accuracy has not improved by a relative %g for %d epochs "
             "(best %f at epoch %d)", hp.early_stopping_tolerance, epoch - best_epoch, best, best_epoch)
    return True


class MetricsWriter:
    """``metrics.csv`` (one row per epoch) and ``metrics.jsonl`` (with per-class validation results)."""

    COLUMNS = ["epoch", "train_accuracy", "train_top_k", "train_loss", "validation_accuracy", "validation_top_k",
               "validation_loss", "learning_rate", "time_cost", "images_per_second"]

    def __init__(self, folder: Path, class_names: list[str] | None) -> None:
        self.csv_path = folder / "metrics.csv"
        self.jsonl_path = folder / "metrics.jsonl"
        self.class_names = class_names
        with open(self.csv_path, "w", newline="") as f:
            csv.writer(f).writerow(self.COLUMNS)
        self.jsonl_path.write_text("")

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
