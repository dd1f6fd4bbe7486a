"""Training state that survives interruption (SageMaker's ``CheckpointConfig``, ``/opt/ml/checkpoints``).

After every epoch the checkpoint folder receives the full state - network,
optimizer (and loss scaler), learning-rate schedule, epoch, update count, best
accuracy, history, random-number state - and a copy of the model files shipped
so far. Started again on the same folder, training continues at the next epoch
instead of starting over. Files are written under temporary names and renamed,
so a kill at any moment leaves the previous complete state.
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from roost.algorithm.metrics import EpochMetrics
from roost.errors import UserError
from roost.formats.artifact import Checkpoint

log = logging.getLogger("roost.algorithm")

STATE_FILE = "roost-training-state.pt"
MODEL_COPY = "model"


class ResumeError(UserError):
    """The checkpoint folder holds a run that cannot be continued with this job's settings."""


@dataclass
class Progress:
    """Where a run stands: the next epoch to train, updates so far, and what every epoch gave."""

    next_epoch: int = 0
    num_update: int = 0
    history: list[EpochMetrics] = field(default_factory=list)
    checkpoints: list[Checkpoint] = field(default_factory=list)  # the model files shipped so far

    @property
    def best(self) -> float | None:
        return max((m.validation_accuracy for m in self.history), default=None)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Progress:
        return cls(
            next_epoch=d["next_epoch"],
            num_update=d["num_update"],
            history=[EpochMetrics(**m) for m in d["history"]],
            checkpoints=[Checkpoint(**c) for c in d["checkpoints"]],
        )


def save(folder: Path, hp, step, schedule, model_dir: Path, progress: Progress) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    copy = folder / MODEL_COPY
    copy.mkdir(exist_ok=True)
    shipped = {c.file for c in progress.checkpoints}
    for f in shipped:
        if not (copy / f).is_file():
            shutil.copy2(model_dir / f, copy / (f + ".partial"))
            os.replace(copy / (f + ".partial"), copy / f)
    state = {
        "hyperparameters": hp.to_strings(),
        "progress": progress.to_dict(),
        "model": step.network.state_dict(),  # the bare network, not its DDP wrapper
        "optimizer": step.optimizer.state_dict(),
        "scaler": step.precision.scaler.state_dict() if step.precision.scaler is not None else None,
        "schedule_index": schedule.index,
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    tmp = folder / (STATE_FILE + ".partial")
    torch.save(state, tmp)
    os.replace(tmp, folder / STATE_FILE)
    for stale in copy.iterdir():  # best-model files that were replaced
        if stale.name not in shipped:
            stale.unlink()


def restore(folder: Path, hp, step, schedule, model_dir: Path) -> Progress | None:
    """Load a saved state into ``step`` and ``schedule``; ``None`` when the folder holds none."""
    path = folder / STATE_FILE
    if not path.is_file():
        return None
    state = torch.load(path, map_location=step.device, weights_only=True)
    saved = state["hyperparameters"]
    ours = hp.to_strings()
    if saved != ours:
        diff = sorted(k for k in set(saved) | set(ours) if saved.get(k) != ours.get(k))
        raise ResumeError(
            f"the checkpoint folder {folder} holds a run with other hyperparameters ({', '.join(diff)} differ); "
            "resume with the same hyperparameters, or empty the folder to start over"
        )
    step.network.load_state_dict(state["model"])
    step.optimizer.load_state_dict(state["optimizer"])
    if state["scaler"] is not None and step.precision.scaler is not None:
        step.precision.scaler.load_state_dict(state["scaler"])
    schedule.index = state["schedule_index"]
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    progress = Progress.from_dict(state["progress"])
    model_dir.mkdir(parents=True, exist_ok=True)
    for c in progress.checkpoints:
        shutil.copy2(folder / MODEL_COPY / c.file, model_dir / c.file)
    return progress
