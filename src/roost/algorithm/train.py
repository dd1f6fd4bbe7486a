"""The training loop: SageMaker's image-classification algorithm on PyTorch.

Read top to bottom: ``train`` builds data, network and optimizer from the
hyperparameters, then alternates ``train_one_epoch`` and ``evaluate``,
logging SageMaker's lines, writing metrics and keeping checkpoints.
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from roost import __version__
from roost.algorithm import state as run_state
from roost.algorithm.hyperparameters import HyperParameters
from roost.algorithm.runtime import Precision, keep_freed_memory, precision_plan
from roost.algorithm.tasks import MultiLabel, SingleLabel
from roost.data.augment import Preprocess
from roost.data.channels import ChannelError, Sample, recordio_samples
from roost.data.dataset import ImageDataset, make_loader
from roost.data.parallel import available_cores
from roost.formats.artifact import (META_FILE, Checkpoint, ModelMeta, checkpoint_name, serving_preprocessing,
                                    write_model_shapes)
from roost.models.artifact import save_checkpoint
from roost.models.resnet import ResNet
from roost.models.weights import load_incremental, load_pretrained

log = logging.getLogger("roost.algorithm")

BatchHook = Callable[[str, int, int, int], None]  # (phase, epoch, batches done, batches total)

#: set (by the container's SIGTERM handler) to stop after the current batch and keep what was trained
STOP = threading.Event()


class StopRequested(Exception):
    pass


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
    validation_map: float | None = None


@dataclass
class TrainResult:
    epochs_run: int
    best_validation_accuracy: float | None
    model_file: str
    history: list[EpochMetrics] = field(default_factory=list)


# --------------------------------------------------------------------------- pieces


def cpu_budget() -> int:
    """Cores this job may use: ``ROOST_THREADS`` (set by the job runner when jobs share a machine), else all."""
    try:
        return max(1, int(os.environ["ROOST_THREADS"]))
    except (KeyError, ValueError):
        return available_cores()


def pick_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda")
    torch.set_num_threads(cpu_budget())
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


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NCHW from the loader -> float32 on the device (channels-last on CPU, where oneDNN prefers it)."""
    x = images.to(device, non_blocking=True).float()
    return x.contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- epochs


class TrainStep:
    """One optimisation step on a uint8 batch: the unit the training benchmark times."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, device: torch.device,
                 task=None, precision: Precision | None = None) -> None:
        self.model, self.optimizer, self.device = model, optimizer, device
        self.task = task or SingleLabel()
        self.precision = precision or Precision("float32")

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def autocast(self):
        dtype = self.precision.autocast_dtype
        if dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=dtype)

    def __call__(self, images: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = to_input(images, self.device)
        y = target.to(self.device, non_blocking=True)
        with self.autocast():
            logits = self.model(x)
            loss = self.task.loss(logits, y)
        self.optimizer.zero_grad(set_to_none=True)
        scaler = self.precision.scaler
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(self.optimizer)
            scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return logits.detach().float(), loss.detach().float()


def train_one_epoch(step: TrainStep, loader, schedule, num_update: int, epoch: int, top_k,
                    on_batch: BatchHook | None) -> tuple[dict, int]:
    step.model.train()
    seen = decisions = correct = correct_k = 0
    loss_sum = 0.0
    total = len(loader)
    if hasattr(loader.batch_sampler, "set_epoch"):
        loader.batch_sampler.set_epoch(epoch)
    for b, (images, target) in enumerate(loader, 1):
        num_update += 1
        step.set_lr(schedule.lr(num_update))
        logits, loss = step(images, target)
        n = target.shape[0]
        seen += n
        loss_sum += float(loss) * n
        c, d, ck = step.task.batch_stats(logits, target.to(logits.device), top_k)
        correct, decisions, correct_k = correct + c, decisions + d, correct_k + ck
        if not math.isfinite(loss_sum):
            raise FloatingPointError(
                f"training diverged in epoch {epoch} (loss is {loss_sum}); lower learning_rate "
                f"(now {schedule.current:g})")
        if on_batch:
            on_batch("train", epoch, b, total)
        if STOP.is_set():
            raise StopRequested
    top = correct_k / seen if top_k and not step.task.multi_label else None
    return {"accuracy": correct / decisions, "top_k": top, "loss": loss_sum / seen, "images": seen}, num_update


@torch.no_grad()
def evaluate(step: TrainStep, loader, epoch: int, top_k, num_classes: int, on_batch: BatchHook | None) -> dict:
    model, task = step.model, step.task
    model.eval()
    acc = task.evaluator(num_classes)
    seen = correct_k = 0
    loss_sum = 0.0
    total = len(loader)
    for b, (images, target) in enumerate(loader, 1):
        with step.autocast():
            logits = model(to_input(images, step.device)).float()
        y = target.to(step.device)
        loss_sum += float(task.loss(logits, y)) * y.shape[0]
        acc.add(logits, y)
        seen += y.shape[0]
        correct_k += task.batch_stats(logits, y, top_k)[2]
        if on_batch:
            on_batch("validation", epoch, b, total)
    report = acc.report()
    report["loss"] = loss_sum / seen
    report["top_k"] = correct_k / seen if top_k and not task.multi_label else None
    return report


# --------------------------------------------------------------------------- the job


def log_parameters(hp: HyperParameters, precision: Precision) -> None:
    """The "---- Parameters ----" block of SageMaker's log."""
    log.info("---- Parameters ----")
    log.info("num_layers: %d", hp.num_layers)
    log.info("data type: <type 'numpy.%s'>", precision.numpy_name)
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


@dataclass
class ChannelData:
    """One channel resolved to samples (see ``roost.data.channels``)."""

    samples: list[Sample]
    rec_files: list[Path] = field(default_factory=list)
    class_names: list[str] | None = None


def make_dataset(data: ChannelData, hp: HyperParameters, train: bool) -> ImageDataset:
    c, h, w = hp.image_shape
    pre = Preprocess(h, w, resize=hp.resize, augmentation_type=hp.augmentation_type, train=train)
    return ImageDataset(data.samples, data.rec_files, pre, channels=c, num_classes=hp.num_classes,
                        multi_label=bool(hp.multi_label))


def load_channel(files: list[Path], hp: HyperParameters, train: bool) -> ImageDataset:
    """A RecordIO channel's dataset (for tools and tests)."""
    return make_dataset(ChannelData(recordio_samples(files, hp.num_classes, bool(hp.multi_label)), files), hp, train)


def make_task(hp: HyperParameters, train_set: ImageDataset):
    if not hp.multi_label:
        if hp.use_weighted_loss:
            log.info("use_weighted_loss applies to multi-label training only; ignored")
        return SingleLabel()
    if hp.use_weighted_loss:
        task = MultiLabel.weighted_by_frequency(train_set.label_matrix())
        log.info("use_weighted_loss: positive weights per class %s",
                 [round(float(w), 3) for w in task.pos_weight])
        return task
    return MultiLabel()


def build_model(hp: HyperParameters, model_channel: Path | None, pretrained_folder: Path | None) -> ResNet:
    """A fresh network, or the model channel's weights (incremental), or ImageNet weights with a new head."""
    if model_channel is not None:
        state, head = load_incremental(model_channel, hp.num_layers, hp.image_shape, hp.num_classes)
        model = ResNet(hp.num_classes, hp.num_layers, hp.image_shape, head=head)
        model.load_state_dict(state)
        log.info("Incremental training: starting from the weights in %s", model_channel)
        if hp.use_pretrained_model:
            log.info("use_pretrained_model is ignored: a model channel was given")
        return model
    if hp.use_pretrained_model:
        # MXNet's fine-tune.py names the new head "fc", as SageMaker's transfer-learned artifacts show
        model = ResNet(hp.num_classes, hp.num_layers, hp.image_shape, head="fc")
        path = load_pretrained(model, hp.num_layers, pretrained_folder)
        log.info("Using pretrained model for initializing weights and transfer learning.")
        log.info("Pretrained weights: %s; the final layer is new for num_classes=%d", path, hp.num_classes)
        return model
    return ResNet(hp.num_classes, hp.num_layers, hp.image_shape)


def train(
    hp: HyperParameters,
    train_data: ChannelData,
    validation_data: ChannelData,
    model_dir: Path,
    output_data_dir: Path,
    *,
    model_channel: Path | None = None,
    pretrained_folder: Path | None = None,
    checkpoint_dir: Path | None = None,
    workers: int | None = None,
    seed: int = 0,
    cpu_bf16: bool | None = None,
    on_batch: BatchHook | None = None,
) -> TrainResult:
    torch.manual_seed(seed)
    device = pick_device()
    class_names = train_data.class_names or validation_data.class_names

    # ---- data
    train_set = make_dataset(train_data, hp, train=True)
    val_set = make_dataset(validation_data, hp, train=False)
    if len(train_set) != hp.num_training_samples:
        log.warning(
            "num_training_samples=%d but the train channel holds %d images; the learning-rate schedule "
            "(lr_scheduler_step) counts updates from num_training_samples", hp.num_training_samples, len(train_set))
    if len(train_set) < hp.mini_batch_size:
        raise ChannelError(
            f"The number of input images must be bigger or equal to the mini_batch_size: the train channel has "
            f"{len(train_set)} images, mini_batch_size is {hp.mini_batch_size}")
    if not len(val_set):
        raise ChannelError("the validation channel holds no images")
    if workers is None:
        workers = cpu_budget()
    pin = device.type == "cuda"
    train_loader = make_loader(train_set, hp.mini_batch_size, train=True, workers=workers, seed=seed, pin_memory=pin)
    val_loader = make_loader(val_set, hp.mini_batch_size, train=False, workers=workers, pin_memory=pin)

    # ---- network, optimizer, precision
    log.info("use_pretrained_model: %d", hp.use_pretrained_model)
    log.info("multi_label: %d", hp.multi_label)
    precision = precision_plan(hp.precision_dtype, device, cpu_bf16)
    log_parameters(hp, precision)
    model = build_model(hp, model_channel, pretrained_folder).to(device, memory_format=torch.channels_last)
    step = TrainStep(model, make_optimizer(model, hp), device, make_task(hp, train_set), precision)
    schedule = MultiFactorSchedule(hp)
    log.info("Setting number of threads: %d", torch.get_num_threads() if device.type == "cpu" else workers)
    log.info("Training on %s with %d data-loading workers; precision: %s", device, workers, precision.description)

    # ---- where to start: the beginning, or a saved state in the checkpoint folder
    model_dir.mkdir(parents=True, exist_ok=True)
    output_data_dir.mkdir(parents=True, exist_ok=True)
    progress = run_state.Progress()
    if checkpoint_dir is not None:
        resumed = run_state.restore(checkpoint_dir, hp, step, schedule, model_dir)
        if resumed is not None:
            progress = resumed
            log.info("Resuming from %s: %d epoch(s) done, continuing at epoch %d", checkpoint_dir,
                     progress.next_epoch, progress.next_epoch)
    writer = MetricsWriter(output_data_dir, class_names, [EpochMetrics(**m) for m in progress.history])

    # ---- epochs
    history = [EpochMetrics(**m) for m in progress.history]
    checkpoints = [Checkpoint(**c) for c in progress.checkpoints]
    best = progress.best
    num_update = progress.num_update
    try:
        for epoch in range(progress.next_epoch, hp.epochs):
            if history and hp.early_stopping and _should_stop(history, hp):
                break
            tic = time.perf_counter()
            tr, num_update = train_one_epoch(step, train_loader, schedule, num_update, epoch, hp.top_k, on_batch)
            log.info("Epoch[%d] Train-accuracy=%f", epoch, tr["accuracy"])
            if tr["top_k"] is not None:
                log.info("Epoch[%d] Train-top_k_accuracy_%d=%f", epoch, hp.top_k, tr["top_k"])
            cost = time.perf_counter() - tic
            log.info("Epoch[%d] Time cost=%.3f", epoch, cost)
            va = evaluate(step, val_loader, epoch, hp.top_k, hp.num_classes, on_batch)
            log.info("Epoch[%d] Validation-accuracy=%f", epoch, va["accuracy"])
            if va["top_k"] is not None:
                log.info("Epoch[%d] Validation-top_k_accuracy_%d=%f", epoch, hp.top_k, va["top_k"])
            if va.get("mAP") is not None:
                log.info("Epoch[%d] Validation-mAP=%f", epoch, va["mAP"])

            metrics = EpochMetrics(epoch, tr["accuracy"], tr["top_k"], tr["loss"], va["accuracy"], va["top_k"],
                                   va["loss"], schedule.current, cost, tr["images"] / cost, va["per_class"],
                                   va["confusion"], va.get("mAP"))
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
                checkpoints[:] = [_save(model, model_dir, epoch, va["accuracy"])]
            if best is None or va["accuracy"] > best:
                best = va["accuracy"]
            if checkpoint_dir is not None:
                run_state.save(checkpoint_dir, hp, step, schedule, model_dir, run_state.Progress(
                    next_epoch=epoch + 1, num_update=num_update, best=best,
                    history=[asdict(m) for m in history], checkpoints=[asdict(c) for c in checkpoints]))
    except StopRequested:
        log.info("Stop requested (SIGTERM): stopping after the current batch and keeping the model trained so far")

    if not checkpoints:  # stopped early, or a checkpoint_frequency that never fired: keep the current weights
        last = history[-1] if history else None
        checkpoints.append(_save(model, model_dir, last.epoch if last else 0, last.validation_accuracy if last else None))
    served = _served_checkpoint(checkpoints)
    write_model_shapes(model_dir, hp.mini_batch_size, hp.image_shape)
    meta = ModelMeta(
        num_classes=hp.num_classes, num_layers=hp.num_layers, image_shape=list(hp.image_shape),
        hyperparameters=hp.to_strings(), checkpoints=checkpoints, model=served.file, head=model.head_name,
        multi_label=bool(hp.multi_label), class_names=class_names,
        preprocessing=serving_preprocessing(hp.image_shape), roost_version=__version__,
    )
    (model_dir / META_FILE).write_text(meta.to_json(), encoding="utf-8")
    best = max((m.validation_accuracy for m in history), default=None)
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
               "validation_loss", "validation_map", "learning_rate", "time_cost", "images_per_second"]

    def __init__(self, folder: Path, class_names: list[str] | None, previous: list[EpochMetrics] = ()) -> None:
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
