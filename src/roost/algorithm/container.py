"""The algorithm as a SageMaker training container, on a folder laid out like ``/opt/ml``.

Inputs (reference §7): ``input/config/hyperparameters.json``,
``input/config/inputdataconfig.json``, ``input/config/resourceconfig.json``,
``input/data/<channel>/``. Outputs: ``model/`` (SageMaker - or Roost's job
runner - packs it into ``model.tar.gz``), ``output/data/`` (metrics), and on
error ``output/failure``, whose text becomes the job's ``FailureReason``:
``ClientError: ...`` for the user's mistakes, ``AlgorithmError: ...`` for ours.
"""

from __future__ import annotations

import json
import logging
import sys
import traceback
from pathlib import Path

from roost.algorithm.hyperparameters import HyperParameters, HyperparameterError, parse_hyperparameters
from roost.algorithm.train import BatchHook, train
from roost.data.records import ChannelError, find_rec_files
from roost.formats.lst import LstError
from roost.formats.recordio import RecordIOError

log = logging.getLogger("roost.algorithm")

#: the keys of the container's own default-input.json (reference §1.1), with the effective values
DEFAULT_KEYS = ("beta_1", "beta_2", "eps", "gamma", "optimizer", "momentum", "weight_decay", "learning_rate",
                "lr_scheduler_factor", "epochs", "num_layers", "image_shape", "precision_dtype", "mini_batch_size",
                "use_pretrained_model")
RECORDIO_TYPES = {"application/x-recordio", "application/x-recordio; label-format=class-id"}
CLIENT_ERRORS = (HyperparameterError, ChannelError, LstError, RecordIOError, FileNotFoundError)
FAILURE_LIMIT = 1024  # SageMaker keeps this much of output/failure


class _CurrentStdout:
    """Resolves ``sys.stdout`` at each write, so a progress display that redirects it keeps working."""

    def write(self, s: str) -> int:
        return sys.stdout.write(s)

    def flush(self) -> None:
        sys.stdout.flush()


def log_formatter() -> logging.Formatter:
    # SageMaker's container prefix: [MM/DD/YYYY HH:MM:SS INFO <thread id>]
    return logging.Formatter("[%(asctime)s %(levelname)s %(thread)d] %(message)s", datefmt="%m/%d/%Y %H:%M:%S")


def setup_logging() -> logging.Handler:
    handler = logging.StreamHandler(_CurrentStdout())
    handler.setFormatter(log_formatter())
    root = logging.getLogger("roost")
    root.handlers = [h for h in root.handlers if not getattr(h, "_roost_container", False)]
    handler._roost_container = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    return handler


class JobPaths:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.config = self.root / "input" / "config"
        self.data = self.root / "input" / "data"
        self.model = self.root / "model"
        self.output = self.root / "output"
        self.output_data = self.output / "data"
        self.failure = self.output / "failure"

    def channel(self, name: str) -> Path:
        return self.data / name


def _read_json(path: Path, default):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise HyperparameterError([f"{path} is not valid JSON: {err}"]) from None


def _defaults() -> dict[str, str]:
    fields = HyperParameters.model_fields
    out = {}
    for k in DEFAULT_KEYS:
        v = fields[k].default
        out[k] = ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
    return out


def _channel_files(paths: JobPaths, name: str, config: dict) -> list[Path]:
    folder = paths.channel(name)
    content_type = (config.get(name) or {}).get("ContentType", "application/x-recordio")
    if content_type.split(";")[0].strip() != "application/x-recordio":
        raise ChannelError(
            f"channel {name!r} has ContentType {content_type!r}; this version of Roost trains from "
            "application/x-recordio channels (.rec files) only"
        )
    if not folder.exists():
        raise ChannelError(f"no {name!r} channel: the algorithm needs a 'train' and a 'validation' channel ({folder} missing)")
    log.info("Searching for .rec files in %s.", folder)
    return find_rec_files(folder)


def _class_names(paths: JobPaths, num_classes: int) -> list[str] | None:
    for channel in ("train", "validation"):
        f = paths.channel(channel) / "classes.json"
        if f.is_file():
            names = json.loads(f.read_text(encoding="utf-8"))
            if isinstance(names, dict):
                names = [names[k] for k in sorted(names, key=int)]
            if len(names) != num_classes:
                log.warning("%s names %d classes but num_classes=%d; ignoring the names", f, len(names), num_classes)
                return None
            return [str(n) for n in names]
    return None


def run_training(root: Path, *, on_batch: BatchHook | None = None, workers: int | None = None,
                 entrypoint: bool = False) -> int:
    """Train on the job folder ``root``; returns the exit status (0 success, 1 client error, 2 algorithm error)."""
    paths = JobPaths(root)
    setup_logging()
    if entrypoint:
        log.info("Docker entrypoint called with argument(s): train")
    paths.output.mkdir(parents=True, exist_ok=True)
    paths.failure.unlink(missing_ok=True)
    try:
        log.info("Reading default configuration from %s: %s", "roost/algorithm/hyperparameters.py", _defaults())
        provided = _read_json(paths.config / "hyperparameters.json", {})
        log.info("Merging with provided configuration from %s: %s", paths.config / "hyperparameters.json", provided)
        hp = parse_hyperparameters(provided)
        log.info("Final configuration: %s", {**_defaults(), **hp.to_strings()})
        data_config = _read_json(paths.config / "inputdataconfig.json", {})
        train_files = _channel_files(paths, "train", data_config)
        validation_files = _channel_files(paths, "validation", data_config)
        result = train(hp, train_files, validation_files, paths.model, paths.output_data,
                       class_names=_class_names(paths, hp.num_classes), on_batch=on_batch, workers=workers)
        log.info("Training finished after %d epochs; the model is %s", result.epochs_run, result.model_file)
        return 0
    except CLIENT_ERRORS as err:
        message = str(err)
        log.error("Customer Error: %s", message)
        _write_failure(paths, f"ClientError: {message}")
        return 1
    except Exception as err:  # noqa: BLE001 - every failure must leave a FailureReason
        log.error("Algorithm error:\n%s", traceback.format_exc())
        _write_failure(paths, f"AlgorithmError: {type(err).__name__}: {err}")
        return 2


def _write_failure(paths: JobPaths, text: str) -> None:
    paths.output.mkdir(parents=True, exist_ok=True)
    paths.failure.write_text(text[:FAILURE_LIMIT], encoding="utf-8")
