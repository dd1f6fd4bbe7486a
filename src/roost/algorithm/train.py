"""The training loop: SageMaker's image-classification algorithm on PyTorch.

Read top to bottom: :func:`train` builds data, network and optimizer from the
hyperparameters, finds where to start (the beginning, or a saved state), then
alternates :func:`train_one_epoch` and :func:`evaluate`, logging SageMaker's
lines, writing metrics, and keeping the model files :class:`ModelFolder`
decides to ship.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from roost import __version__
from roost.algorithm import state as run_state
from roost.algorithm.distributed import SINGLE, World, host_log
from roost.algorithm.hyperparameters import HyperParameters
from roost.algorithm.metrics import EpochMetrics, MetricsWriter
from roost.algorithm.optim import MultiFactorSchedule, make_optimizer
from roost.algorithm.runtime import Precision, precision_plan
from roost.algorithm.tasks import MultiLabel, SingleLabel, Task
from roost.data.augment import Preprocess
from roost.data.channels import ChannelData, ChannelError, recordio_samples
from roost.data.dataset import ImageDataset, make_loader
from roost.formats.artifact import (
    META_FILE,
    Checkpoint,
    ModelMeta,
    checkpoint_name,
    serving_preprocessing,
    write_model_shapes,
)
from roost.models.artifact import save_checkpoint
from roost.models.recipes import resnet_spec
from roost.models.resnet import ResNet
from roost.models.weights import load_incremental, load_pretrained
from roost.system import STOP_REQUESTED, cpu_budget, keep_freed_memory

log = logging.getLogger("roost.algorithm")

BatchHook = Callable[[str, int, int, int], None]  # (phase, epoch, batches done, batches total)


class StopRequested(Exception):
    pass


@dataclass
class TrainStats:
    accuracy: float
    top_k: float | None
    loss: float
    images: int


@dataclass
class EvalStats:
    accuracy: float
    top_k: float | None
    loss: float
    per_class: list[dict]
    confusion: list[list[int]] | None
    mean_ap: float | None  # multi-label only


@dataclass
class TrainResult:
    epochs_run: int
    best_validation_accuracy: float | None
    model_file: str
    history: list[EpochMetrics] = field(default_factory=list)


# --------------------------------------------------------------------------- pieces


def pick_device(world: World = SINGLE) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", world.local_rank)
    torch.set_num_threads(cpu_budget())
    keep_freed_memory()
    return torch.device("cpu")


def to_input(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 NCHW from the loader -> float32 on the device (channels-last on CPU, where oneDNN prefers it)."""
    x = images.to(device, non_blocking=True).float()
    return x.contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- epochs


class TrainStep:
    """One optimisation step on a uint8 batch: the unit the training benchmark times."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        device: torch.device,
        task: Task | None = None,
        precision: Precision | None = None,
    ) -> None:
        self.model, self.optimizer, self.device = model, optimizer, device
        self.network = model  # the bare network: ``model`` becomes its DistributedDataParallel wrapper when distributed
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


# --------------------------------------------------------------------------- epochs


def train_one_epoch(
    step: TrainStep,
    loader,
    schedule: MultiFactorSchedule,
    num_update: int,
    epoch: int,
    top_k: int | None,
    on_batch: BatchHook | None,
    world: World = SINGLE,
) -> tuple[TrainStats, int]:
    """One pass over this process's share of the training data; returns the statistics over every process's
    share and the update count after it."""
    step.model.train()
    seen = decisions = correct = correct_k = 0
    loss_sum = 0.0
    # every process takes the same number of steps, or the others would wait at the end (hosts holding parts of
    # different sizes, ShardedByS3Key)
    total = world.min(len(loader))
    if hasattr(loader.batch_sampler, "set_epoch"):
        loader.batch_sampler.set_epoch(epoch)
    for b, (images, target) in enumerate(loader, 1):
        if b > total:
            break
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
                f"(now {schedule.current:g})"
            )
        if on_batch:
            on_batch("train", epoch, b, total)
        if world.any(STOP_REQUESTED.is_set()):  # all processes stop at the same batch, or the others would wait
            raise StopRequested
    n_seen, n_decisions, n_correct, n_correct_k, total_loss = world.sum(seen, decisions, correct, correct_k, loss_sum)
    top = n_correct_k / n_seen if top_k and not step.task.multi_label else None
    stats = TrainStats(accuracy=n_correct / n_decisions, top_k=top, loss=total_loss / n_seen, images=int(n_seen))
    return stats, num_update


@torch.no_grad()
def evaluate(
    step: TrainStep,
    loader,
    epoch: int,
    top_k: int | None,
    num_classes: int,
    on_batch: BatchHook | None,
    world: World = SINGLE,
) -> EvalStats:
    """Validation over this process's share; the statistics cover every share, each image counted once."""
    # the bare network: its DDP wrapper would synchronise buffers in forward, and the shares differ by a batch
    model, task = step.network, step.task
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
    if world.distributed:
        shares = world.gather((acc, seen, correct_k, loss_sum))
        acc = shares[0][0]
        for other, *_ in shares[1:]:
            acc.merge(other)
        seen, correct_k, loss_sum = (sum(share[i] for share in shares) for i in (1, 2, 3))
    report = acc.report()
    return EvalStats(
        accuracy=report["accuracy"],
        top_k=correct_k / seen if top_k and not task.multi_label else None,
        loss=loss_sum / seen,
        per_class=report["per_class"],
        confusion=report["confusion"],
        mean_ap=report.get("mAP"),
    )


# --------------------------------------------------------------------------- SageMaker's log lines


def log_parameters(hp: HyperParameters, precision: Precision) -> None:
    """The "---- Parameters ----" block of SageMaker's log."""
    log.info("---- Parameters ----")
    log.info("num_layers: %d", hp.num_layers)
    if resnet_spec(hp.num_layers, hp.image_shape[1]).imagenet_depth_on_small_images:
        log.info(
            "num_layers %d has no recipe for images of height %d in MXNet's resnet.py: using its ImageNet "
            "depth table with the small-image 3x3 stem",
            hp.num_layers,
            hp.image_shape[1],
        )
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


def log_train_epoch(epoch: int, tr: TrainStats, cost: float, top_k: int | None) -> None:
    log.info("Epoch[%d] Train-accuracy=%f", epoch, tr.accuracy)
    if tr.top_k is not None:
        log.info("Epoch[%d] Train-top_k_accuracy_%d=%f", epoch, top_k, tr.top_k)
    log.info("Epoch[%d] Time cost=%.3f", epoch, cost)


def log_validation(epoch: int, va: EvalStats, top_k: int | None) -> None:
    log.info("Epoch[%d] Validation-accuracy=%f", epoch, va.accuracy)
    if va.top_k is not None:
        log.info("Epoch[%d] Validation-top_k_accuracy_%d=%f", epoch, top_k, va.top_k)
    if va.mean_ap is not None:
        log.info("Epoch[%d] Validation-mAP=%f", epoch, va.mean_ap)


# --------------------------------------------------------------------------- set-up


def make_dataset(data: ChannelData, hp: HyperParameters, train: bool) -> ImageDataset:
    c, h, w = hp.image_shape
    pre = Preprocess(h, w, resize=hp.resize, augmentation_type=hp.augmentation_type, train=train)
    return ImageDataset(
        data.samples, data.rec_files, pre, channels=c, num_classes=hp.num_classes, multi_label=bool(hp.multi_label)
    )


def load_channel(files: list[Path], hp: HyperParameters, train: bool) -> ImageDataset:
    """A RecordIO channel's dataset (for tools and tests)."""
    return make_dataset(ChannelData(recordio_samples(files, hp.num_classes, bool(hp.multi_label)), files), hp, train)


def check_datasets(hp: HyperParameters, train_set: ImageDataset, val_set: ImageDataset) -> None:
    if len(train_set) != hp.num_training_samples:
        log.warning(
            "num_training_samples=%d but the train channel holds %d images; the learning-rate schedule "
            "(lr_scheduler_step) counts updates from num_training_samples",
            hp.num_training_samples,
            len(train_set),
        )
    if len(train_set) < hp.mini_batch_size:
        raise ChannelError(
            f"The number of input images must be bigger or equal to the mini_batch_size: the train channel has "
            f"{len(train_set)} images, mini_batch_size is {hp.mini_batch_size}"
        )
    if not len(val_set):
        raise ChannelError("the validation channel holds no images")


def make_task(hp: HyperParameters, train_set: ImageDataset) -> Task:
    if not hp.multi_label:
        if hp.use_weighted_loss:
            log.info("use_weighted_loss applies to multi-label training only; ignored")
        return SingleLabel()
    if hp.use_weighted_loss:
        task = MultiLabel.weighted_by_frequency(train_set.label_matrix())
        weights = task.pos_weight.tolist() if task.pos_weight is not None else []
        log.info("use_weighted_loss: positive weights per class %s", [round(w, 3) for w in weights])
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


class ModelFolder:
    """What ``model/`` ships: the best epoch's weights, or every ``checkpoint_frequency``-th epoch's,
    and the description (``roost-model.json``, ``model-shapes.json``) that serving reads."""

    def __init__(self, folder: Path, hp: HyperParameters, checkpoints: list[Checkpoint]) -> None:
        self.folder, self.hp, self.checkpoints = folder, hp, checkpoints
        folder.mkdir(parents=True, exist_ok=True)

    def after_epoch(self, model: nn.Module, m: EpochMetrics, best_before: float | None) -> None:
        accuracy = m.validation_accuracy
        if self.hp.checkpoint_frequency:
            if (m.epoch + 1) % self.hp.checkpoint_frequency == 0:
                self.checkpoints.append(self._save(model, m.epoch, accuracy))
        elif best_before is None or accuracy > best_before:
            log.info("Storing the best model with validation accuracy: %f", accuracy)
            for old in self.checkpoints:
                (self.folder / old.file).unlink(missing_ok=True)
            self.checkpoints[:] = [self._save(model, m.epoch, accuracy)]

    def finish(self, model: ResNet, history: list[EpochMetrics], class_names: list[str] | None) -> Checkpoint:
        """Write the description; returns the checkpoint serving loads (the best of those shipped)."""
        if not self.checkpoints:  # stopped early, or a checkpoint_frequency that never fired: keep the current weights
            last = history[-1] if history else None
            self.checkpoints.append(
                self._save(model, last.epoch if last else 0, last.validation_accuracy if last else None)
            )
        # with periodic checkpoints SageMaker ships them all; serving takes the best of them
        served = max(self.checkpoints, key=lambda c: (c.validation_accuracy or 0.0, c.epoch))
        hp = self.hp
        write_model_shapes(self.folder, hp.mini_batch_size, hp.image_shape)
        meta = ModelMeta(
            num_classes=hp.num_classes,
            num_layers=hp.num_layers,
            image_shape=list(hp.image_shape),
            hyperparameters=hp.to_strings(),
            checkpoints=self.checkpoints,
            model=served.file,
            head=model.head_name,
            multi_label=bool(hp.multi_label),
            class_names=class_names,
            preprocessing=serving_preprocessing(hp.image_shape),
            roost_version=__version__,
        )
        (self.folder / META_FILE).write_text(meta.to_json(), encoding="utf-8")
        return served

    def _save(self, model: nn.Module, epoch: int, accuracy: float | None) -> Checkpoint:
        name = checkpoint_name(epoch)
        path = save_checkpoint(model, self.folder / name)
        log.info('Saved checkpoint to "%s"', path)
        return Checkpoint(name, epoch + 1, accuracy)


def _improves(new: float, best: float, tolerance: float) -> bool:
    """Relative improvement rule of ``early_stopping_tolerance``: (new - best) / best >= tolerance."""
    if new <= best:
        return False
    return best == 0 or (new - best) / best >= tolerance


def should_stop_early(history: list[EpochMetrics], hp: HyperParameters) -> bool:
    if not history:
        return False
    epoch = history[-1].epoch
    if epoch + 1 < hp.early_stopping_min_epochs:
        return False
    best, best_epoch = history[0].validation_accuracy, history[0].epoch
    for m in history[1:]:
        if _improves(m.validation_accuracy, best, hp.early_stopping_tolerance):
            best, best_epoch = m.validation_accuracy, m.epoch
    if epoch - best_epoch < hp.early_stopping_patience:
        return False
    log.info(
        "Early stopping: validation accuracy has not improved by a relative %g for %d epochs (best %f at epoch %d)",
        hp.early_stopping_tolerance,
        epoch - best_epoch,
        best,
        best_epoch,
    )
    return True


# --------------------------------------------------------------------------- the job


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
    world: World = SINGLE,
) -> TrainResult:
    """Train and validate; with a distributed ``world`` every process calls this, and only the main one logs
    SageMaker's lines and writes the model, the metrics and the checkpoints."""
    torch.manual_seed(seed)  # the same initial weights everywhere (DDP also broadcasts the main process's)
    device = pick_device(world)
    class_names = train_data.class_names or validation_data.class_names
    main = world.is_main

    # ---- data: each process reads its own share, in batches of mini_batch_size split over the host's processes
    train_set = make_dataset(train_data, hp, train=True)
    val_set = make_dataset(validation_data, hp, train=False)
    check_datasets(hp, train_set, val_set)
    batch = per_process_batch(hp.mini_batch_size, world)
    workers = cpu_budget() if workers is None else workers
    pin = device.type == "cuda"
    train_loader = make_loader(
        train_set,
        batch,
        train=True,
        workers=workers,
        seed=seed,
        pin_memory=pin,
        share=world.share(train_data.sharded_by_host),
    )
    val_loader = make_loader(
        val_set, batch, train=False, workers=workers, pin_memory=pin, share=world.share(validation_data.sharded_by_host)
    )

    # ---- network, optimizer, precision
    log.info("use_pretrained_model: %d", hp.use_pretrained_model)
    log.info("multi_label: %d", hp.multi_label)
    precision = precision_plan(hp.precision_dtype, device, cpu_bf16)
    if main:
        log_parameters(hp, precision)
    model = build_model(hp, model_channel, pretrained_folder)
    model.to(device, memory_format=torch.channels_last)  # type: ignore[call-overload]  # missing from torch's stubs
    step = TrainStep(model, make_optimizer(model, hp), device, make_task(hp, train_set), precision)
    schedule = MultiFactorSchedule(hp, hosts=world.host_count)
    log.info("Setting number of threads: %d", torch.get_num_threads() if device.type == "cpu" else workers)
    log.info("Training on %s with %d data-loading workers; precision: %s", device, workers, precision.description)
    if world.distributed and hp.kv_store == "dist_async":
        log.info(
            "kv_store=dist_async: PyTorch's DistributedDataParallel has no asynchronous updates; training "
            "synchronously, as dist_sync (docs/distributed.md)"
        )
    if world.distributed:
        host_log.info(
            "%s: batches of %d per process, %d per host, %d in all; %d training images here, %d batches of them "
            "for this process an epoch",
            world.host,
            batch,
            batch * world.local_size,
            batch * world.size,
            len(train_set),
            len(train_loader),
        )

    # ---- where to start: the beginning, or a saved state in the checkpoint folder (the main process keeps it)
    progress = run_state.Progress()
    resumed = run_state.restore(checkpoint_dir, hp, step, schedule, model_dir) if main and checkpoint_dir else None
    if world.distributed:  # every process takes the main one's place in the run (its weights come with DDP)
        resumed, optimizer_state, schedule.index = world.broadcast(
            (resumed, step.optimizer.state_dict() if resumed else None, schedule.index)
        )
        if resumed is not None and not main:
            step.optimizer.load_state_dict(optimizer_state)
    if resumed is not None:
        progress = resumed
        log.info(
            "Resuming from %s: %d epoch(s) done, continuing at epoch %d",
            checkpoint_dir,
            progress.next_epoch,
            progress.next_epoch,
        )
    if world.distributed:
        step.model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None
        )
    shipped = ModelFolder(model_dir, hp, list(progress.checkpoints)) if main else None
    writer = None
    if main:
        output_data_dir.mkdir(parents=True, exist_ok=True)
        writer = MetricsWriter(output_data_dir, class_names, progress.history)

    # ---- epochs
    try:
        for epoch in range(progress.next_epoch, hp.epochs):
            if STOP_REQUESTED.is_set():  # before the loaders start their workers for another epoch
                raise StopRequested
            if hp.early_stopping and should_stop_early(progress.history, hp):
                break
            tic = time.perf_counter()
            tr, progress.num_update = train_one_epoch(
                step, train_loader, schedule, progress.num_update, epoch, hp.top_k, on_batch, world
            )
            cost = time.perf_counter() - tic
            if main:
                log_train_epoch(epoch, tr, cost, hp.top_k)
            va = evaluate(step, val_loader, epoch, hp.top_k, hp.num_classes, on_batch, world)
            if main:
                log_validation(epoch, va, hp.top_k)
            metrics = EpochMetrics(
                epoch=epoch,
                train_accuracy=tr.accuracy,
                train_top_k=tr.top_k,
                train_loss=tr.loss,
                validation_accuracy=va.accuracy,
                validation_top_k=va.top_k,
                validation_loss=va.loss,
                learning_rate=schedule.current,
                time_cost=cost,
                images_per_second=tr.images / cost,
                validation_per_class=va.per_class,
                validation_confusion=va.confusion,
                validation_map=va.mean_ap,
            )
            if writer is not None and shipped is not None:  # the main process
                writer.write(metrics)
                shipped.after_epoch(model, metrics, progress.best)
                progress.checkpoints = list(shipped.checkpoints)
            progress.history.append(metrics)
            progress.next_epoch = epoch + 1
            if main and checkpoint_dir is not None:
                run_state.save(checkpoint_dir, hp, step, schedule, model_dir, progress)
    except StopRequested:
        log.info("Stop requested (SIGTERM): stopping after the current batch and keeping the model trained so far")

    if shipped is None:  # not the main process: it trained its share; the main one ships the model
        return TrainResult(len(progress.history), progress.best, "", progress.history)
    served = shipped.finish(model, progress.history, class_names)
    return TrainResult(len(progress.history), progress.best, served.file, progress.history)


def per_process_batch(mini_batch_size: int, world: World) -> int:
    """SageMaker's ``mini_batch_size`` is per host, split over its GPUs (MXNet's ``dist_sync``)."""
    if mini_batch_size % world.local_size:
        raise ChannelError(
            f"mini_batch_size={mini_batch_size} does not split over the {world.local_size} processes of a host; "
            f"use a multiple of {world.local_size}"
        )
    return mini_batch_size // world.local_size
