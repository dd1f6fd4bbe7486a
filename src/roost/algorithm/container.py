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
import signal
import sys
import traceback
from pathlib import Path

from roost.algorithm.hyperparameters import HyperParameters, HyperparameterError, parse_hyperparameters
from roost.algorithm.state import ResumeError
from roost.algorithm.train import STOP, BatchHook, ChannelData, train
from roost.data.channels import (ChannelError, class_names_from_list, check_disjoint, find_lst, find_rec_files, folder_samples, lst_samples,
                                 manifest_samples, recordio_samples)
from roost.formats.lst import LstError, iter_list
from roost.formats.recordio import RecordIOError
from roost.models.weights import WeightsError

log = logging.getLogger("roost.algorithm")

#: the keys of the container's own default-input.json (reference §1.1), with the effective values
DEFAULT_KEYS = ("beta_1", "beta_2", "eps", "gamma", "optimizer", "momentum", "weight_decay", "learning_rate",
                "lr_scheduler_factor", "epochs", "num_layers", "image_shape", "precision_dtype", "mini_batch_size",
                "use_pretrained_model")
CLIENT_ERRORS = (HyperparameterError, ChannelError, LstError, RecordIOError, WeightsError, ResumeError,
                 FileNotFoundError)
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


IMAGE_TYPES = {"application/x-image", "image/jpeg", "image/png"}
MANIFEST_SUFFIXES = (".manifest", ".jsonl", ".json")


def _content_type(config: dict, name: str, folder: Path) -> tuple[str, dict[str, str]]:
    """The channel's ContentType split into the type and its parameters (``label-format=class-id``)."""
    raw = (config.get(name) or {}).get("ContentType")
    if raw is None:  # not given: the files tell
        has_rec = folder.is_dir() and any(folder.rglob("*.rec"))
        raw = "application/x-recordio" if has_rec or not folder.is_dir() else "application/x-image"
    base, *params = [p.strip() for p in raw.split(";")]
    opts = dict(p.split("=", 1) for p in params if "=" in p)
    return base.lower(), {k.strip().lower(): v.strip() for k, v in opts.items()}


def _manifest_file(folder: Path) -> Path:
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in MANIFEST_SUFFIXES and p.is_file())
    if len(found) != 1:
        raise ChannelError(f"{folder}: an augmented-manifest channel must hold exactly one manifest file "
                           f"(.manifest or .jsonl), found {len(found)}")
    return found[0]


def _guess_attributes(manifest: Path) -> list[str]:
    with open(manifest, encoding="utf-8") as f:
        first = json.loads(next((line for line in f if line.strip()), "{}"))
    refs = [k for k in first if k.endswith("-ref")]
    labels = [k for k in first if not k.endswith(("-ref", "-metadata"))]
    if len(refs) == 1 and len(labels) == 1:
        return [refs[0], labels[0]]
    raise ChannelError(f"{manifest}: give AttributeNames (image attribute, label attribute); "
                       f"the first line has attributes {list(first)}")


def _classes_json(folder: Path, num_classes: int) -> list[str] | None:
    """Class names: a ``classes.json`` in the channel, else the folders in the paths of an ``.lst`` there
    (im2rec leaves the list it packed beside the ``.rec``)."""
    f = folder / "classes.json"
    if not f.is_file():
        lists = sorted(folder.glob("*.lst")) if folder.is_dir() else []
        if len(lists) == 1:
            names = class_names_from_list(iter_list(lists[0], errors=[]))
            if names and len(names) == num_classes:
                return names
        return None
    names = json.loads(f.read_text(encoding="utf-8"))
    if isinstance(names, dict):
        names = [names[k] for k in sorted(names, key=int)]
    if len(names) != num_classes:
        log.warning("%s names %d classes but num_classes=%d; ignoring the names", f, len(names), num_classes)
        return None
    return [str(n) for n in names]


def resolve_channel(paths: JobPaths, name: str, config: dict, hp: HyperParameters) -> ChannelData:
    """A ``train``/``validation`` channel, by its content type: RecordIO, images (+ ``<name>_lst``), or a manifest."""
    folder = paths.channel(name)
    if not folder.exists():
        raise ChannelError(
            f"no {name!r} channel: the algorithm needs a 'train' and a 'validation' channel ({folder} missing)")
    ctype, params = _content_type(config, name, folder)
    cfg = config.get(name) or {}
    multi = bool(hp.multi_label)
    if ctype == "application/x-recordio" and (cfg.get("S3DataType") == "AugmentedManifestFile"
                                              or cfg.get("AttributeNames")):
        manifest = _manifest_file(folder)
        attributes = list(cfg.get("AttributeNames") or _guess_attributes(manifest))
        log.info("Reading the augmented manifest %s (attributes %s)", manifest, attributes)
        samples = manifest_samples(manifest, attributes, params.get("label-format", "multi-hot"), hp.num_classes, multi)
        return ChannelData(samples, [], _classes_json(folder, hp.num_classes))
    if ctype == "application/x-recordio":
        log.info("Searching for .rec files in %s.", folder)
        files = find_rec_files(folder)
        return ChannelData(recordio_samples(files, hp.num_classes, multi), files, _classes_json(folder, hp.num_classes))
    if ctype in IMAGE_TYPES:
        lst_channel = paths.channel(f"{name}_lst")
        if lst_channel.exists():
            log.info("Searching for .lst files in %s.", lst_channel)
            lst = find_lst(lst_channel)
            samples = lst_samples(lst, folder, hp.num_classes, multi)
            return ChannelData(samples, [], _classes_json(folder, hp.num_classes))
        if multi:
            raise ChannelError(f"multi_label=1 with image files needs a {name}_lst channel with one 0/1 label per class")
        samples, names = folder_samples(folder)
        if len(names) != hp.num_classes:
            raise ChannelError(f"{folder} has {len(names)} class folders ({', '.join(names[:8])}) but "
                               f"num_classes={hp.num_classes}")
        log.info("%s: %d images in %d class folders, no .lst needed", folder, len(samples), len(names))
        return ChannelData(samples, [], names)
    raise ChannelError(
        f"channel {name!r} has ContentType {ctype!r}; use application/x-recordio (.rec files or an augmented "
        "manifest), or application/x-image, image/jpeg, image/png (image files)"
    )


def _model_channel(paths: JobPaths) -> Path | None:
    folder = paths.channel("model")
    if not folder.exists():
        return None
    if folder.is_file():
        return folder
    found = sorted(p for p in folder.iterdir() if p.name.endswith((".tar.gz", ".tgz")))
    if len(found) != 1:
        raise ChannelError(f"the model channel {folder} must hold exactly one model.tar.gz, found {len(found)}")
    return found[0]


def run_training(root: Path, *, on_batch: BatchHook | None = None, workers: int | None = None,
                 entrypoint: bool = False, cpu_bf16: bool | None = None) -> int:
    """Train on the job folder ``root``; returns the exit status (0 success, 1 client error, 2 algorithm error)."""
    paths = JobPaths(root)
    setup_logging()
    if entrypoint:
        log.info("Docker entrypoint called with argument(s): train")
        # StopTrainingJob: SageMaker (and Roost's runner) send SIGTERM, then SIGKILL after a grace period
        signal.signal(signal.SIGTERM, lambda *_: STOP.set())
    paths.output.mkdir(parents=True, exist_ok=True)
    paths.failure.unlink(missing_ok=True)
    try:
        log.info("Reading default configuration from %s: %s", "roost/algorithm/hyperparameters.py", _defaults())
        provided = _read_json(paths.config / "hyperparameters.json", {})
        log.info("Merging with provided configuration from %s: %s", paths.config / "hyperparameters.json", provided)
        hp = parse_hyperparameters(provided)
        log.info("Final configuration: %s", {**_defaults(), **hp.to_strings()})
        data_config = _read_json(paths.config / "inputdataconfig.json", {})
        train_data = resolve_channel(paths, "train", data_config, hp)
        validation_data = resolve_channel(paths, "validation", data_config, hp)
        check_disjoint(train_data.samples, validation_data.samples)
        checkpoints = paths.root / "checkpoints"
        result = train(hp, train_data, validation_data, paths.model, paths.output_data,
                       model_channel=_model_channel(paths), checkpoint_dir=checkpoints if checkpoints.is_dir() else None,
                       on_batch=on_batch, workers=workers, cpu_bf16=cpu_bf16)
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
