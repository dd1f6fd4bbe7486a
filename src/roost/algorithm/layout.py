"""The ``/opt/ml`` folder of a training job: its paths, its config files, and how a channel is described.

SageMaker starts a training container on this layout (docs/sagemaker.md,
"The training container"); ``roost train`` and the server's job runner lay out
the same folder, so the algorithm reads one thing however it was started::

    input/config/hyperparameters.json     {"epochs": "10", ...}        (strings only)
    input/config/inputdataconfig.json     {"train": {"ContentType": ..., ...}, ...}
    input/config/resourceconfig.json      {"current_host": "algo-1", "hosts": [...], ...}
    input/data/<channel>/                 the channel's files
    checkpoints/                          kept across restarts (CheckpointConfig)
    model/                                packed into model.tar.gz after training
    output/data/                          metrics; output/failure: the FailureReason
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from roost.errors import UserError
from roost.formats import recordio
from roost.formats.manifest import is_manifest

RECORDIO = "application/x-recordio"
IMAGE = "application/x-image"
SAGEMAKER_MODEL = "application/x-sagemaker-model"
AUGMENTED_MANIFEST = "AugmentedManifestFile"
#: the random seed of a run (weights, shuffling, augmentation). SageMaker has no such hyperparameter, so it is
#: not one: ``roost train --seed N`` sets it, and a server's job takes it from its Environment. Default 0.
SEED_ENV = "ROOST_SEED"
#: the process plan's override (roost.algorithm.distributed.process_plan): a number of processes per host, or
#: "cores"; and the opt-in bfloat16 math for float32 (roost.algorithm.runtime.float32_math). Like the seed, they
#: change how a run trains, not what: settings of the environment, which a job's Environment may carry
PROCS_ENV = "ROOST_PROCESSES_PER_HOST"
FLOAT32_MATH_ENV = "ROOST_FLOAT32_MATH"
FLOAT32_MATH = ("ieee", "bf16")
#: the largest number PROCS_ENV may give (a host starts at most one process per core or GPU whatever it says)
MAX_PROCESSES = 1024


def parse_processes(value: str) -> int | None:
    """PROCS_ENV's value: a number of processes per host, or None for ``cores`` (one per core). The server checks
    a job's Environment with it, and the container reads it with it; a ValueError says what it takes."""
    text = value.strip().lower()
    if text == "cores":
        return None
    if text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_PROCESSES:
        return int(text)
    raise ValueError(
        f"{PROCS_ENV}={value!r}: give a number of processes per host (1 to {MAX_PROCESSES}; never more than the "
        "host's cores or GPUs are started) or cores (one per core)"
    )


def parse_float32_math(value: str) -> str:
    """FLOAT32_MATH_ENV's value, one of FLOAT32_MATH (empty is ``ieee``); a ValueError says what it takes."""
    text = value.strip().lower() or "ieee"
    if text not in FLOAT32_MATH:
        raise ValueError(f"{FLOAT32_MATH_ENV}={value!r}: give one of {', '.join(FLOAT32_MATH)}")
    return text


#: the characters of a FailureReason SageMaker keeps (of ``output/failure``, and of every reason Roost writes)
FAILURE_LIMIT = 1024


class ConfigError(UserError):
    """A config file of the job folder cannot be read."""


@dataclass
class ResourceConfig:
    """``resourceconfig.json``: this container's host and all hosts of the job, as SageMaker writes it."""

    current_host: str = "algo-1"
    hosts: list[str] = field(default_factory=lambda: ["algo-1"])
    network_interface_name: str = "eth0"
    current_instance_type: str = "local"
    current_group_name: str = "homogeneousCluster"
    instance_groups: list[dict] = field(default_factory=list)

    @property
    def is_rendezvous(self) -> bool:
        """Whether this is the first of the sorted hosts: rank 0, where the others meet (as SageMaker's containers
        do; roost.algorithm.distributed.world_for ranks them in the same order)."""
        return self.current_host == min(self.hosts, default=self.current_host)

    @classmethod
    def for_host(cls, index: int, count: int, instance_type: str = "local") -> ResourceConfig:
        """Host ``index`` (0-based) of a ``count``-host job: ``algo-1`` ... ``algo-<count>``, sorted as "
        "SageMaker sorts."""
        hosts = sorted(f"algo-{i + 1}" for i in range(count))
        return cls(
            current_host=f"algo-{index + 1}",
            hosts=hosts,
            current_instance_type=instance_type,
            instance_groups=[
                {"instance_group_name": "homogeneousCluster", "instance_type": instance_type, "hosts": hosts}
            ],
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ResourceConfig:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class ChannelConfig:
    """One channel's entry of ``inputdataconfig.json``."""

    content_type: str | None = None
    training_input_mode: str = "File"
    s3_distribution_type: str = "FullyReplicated"
    record_wrapper_type: str = "None"
    s3_data_type: str | None = None
    attribute_names: list[str] | None = None

    _KEYS = {
        "content_type": "ContentType",
        "training_input_mode": "TrainingInputMode",
        "s3_distribution_type": "S3DistributionType",
        "record_wrapper_type": "RecordWrapperType",
        "s3_data_type": "S3DataType",
        "attribute_names": "AttributeNames",
    }

    def to_json(self) -> dict[str, Any]:
        return {self._KEYS[k]: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChannelConfig:
        return cls(**{k: data[key] for k, key in cls._KEYS.items() if data.get(key) is not None})

    @classmethod
    def from_request(cls, channel: Mapping[str, Any], input_mode: str) -> ChannelConfig:
        """What SageMaker writes for one ``InputDataConfig`` member of a ``CreateTrainingJob`` request."""
        src = (channel.get("DataSource") or {}).get("S3DataSource") or {}
        return cls(
            content_type=channel.get("ContentType"),
            training_input_mode=channel.get("InputMode") or input_mode,
            s3_distribution_type=src.get("S3DataDistributionType", "FullyReplicated"),
            record_wrapper_type=channel.get("RecordWrapperType", "None"),
            s3_data_type=src.get("S3DataType"),
            attribute_names=src.get("AttributeNames"),
        )

    @property
    def is_augmented_manifest(self) -> bool:
        return self.s3_data_type == AUGMENTED_MANIFEST or bool(self.attribute_names)

    def media_type(self, files: Path) -> tuple[str, dict[str, str]]:
        """The content type split into type and parameters (``label-format=class-id``); the files tell when unset."""
        raw = self.content_type
        if raw is None:
            raw = RECORDIO if self.is_augmented_manifest else guess_content_type(files)
        base, *params = [p.strip() for p in raw.split(";")]
        pairs = (p.split("=", 1) for p in params if "=" in p)
        return base.lower(), {k.strip().lower(): v.strip() for k, v in pairs}


def guess_content_type(source: Path) -> str:
    """RecordIO for ``.rec`` files, manifests and folders holding ``.rec`` files; images otherwise."""
    if source.is_file() or not source.is_dir():
        return RECORDIO
    return RECORDIO if any(source.rglob("*.rec")) else IMAGE


def describe_local_channel(
    name: str, source: Path, content_type: str | None = None, attribute_names: list[str] | None = None
) -> ChannelConfig:
    """The entry for a channel given as a local path: the content type guessed from the files when not given."""
    if name == "model":
        return ChannelConfig(content_type or SAGEMAKER_MODEL)
    if name.endswith("_lst"):
        return ChannelConfig(content_type or IMAGE)
    if source.is_file() and is_manifest(source):
        return ChannelConfig(
            content_type or RECORDIO,
            s3_data_type=AUGMENTED_MANIFEST,
            record_wrapper_type="RecordIO",
            attribute_names=attribute_names or None,
        )
    return ChannelConfig(content_type or guess_content_type(source))


class JobLayout:
    """Paths of one ``/opt/ml`` folder, and reading and writing its config files."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "input" / "config"
        self.data = self.root / "input" / "data"
        self.checkpoints = self.root / "checkpoints"
        self.model = self.root / "model"
        self.output = self.root / "output"
        self.output_data = self.output / "data"
        self.failure = self.output / "failure"
        self.hyperparameters_file = self.config / "hyperparameters.json"
        self.input_data_config_file = self.config / "inputdataconfig.json"
        self.resource_config_file = self.config / "resourceconfig.json"

    def channel(self, name: str) -> Path:
        return self.data / name

    # ------------------------------------------------------------------ writing

    def write_config(
        self,
        hyperparameters: Mapping[str, str],
        channels: Mapping[str, ChannelConfig],
        resources: ResourceConfig | None = None,
    ) -> None:
        self.config.mkdir(parents=True, exist_ok=True)
        _write_json(self.hyperparameters_file, dict(hyperparameters))
        _write_json(self.input_data_config_file, {name: c.to_json() for name, c in channels.items()})
        _write_json(self.resource_config_file, asdict(resources or ResourceConfig()))

    def link_channel(self, name: str, source: Path) -> None:
        """``input/data/<name>``: a link to a folder channel, or a folder of links to a file and its companions."""
        dest = self.channel(name)
        _remove(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            dest.symlink_to(source.resolve(), target_is_directory=True)
            return
        dest.mkdir()
        for f in [source, *recordio.companions(source)]:
            (dest / f.name).symlink_to(f.resolve())

    def write_failure(self, text: str, limit: int = FAILURE_LIMIT) -> None:
        """``output/failure``; SageMaker keeps its first ``limit`` characters as the FailureReason."""
        self.output.mkdir(parents=True, exist_ok=True)
        self.failure.write_text(text[:limit], encoding="utf-8")

    def read_failure(self) -> str:
        if not self.failure.is_file():
            return ""
        return self.failure.read_text(encoding="utf-8", errors="replace").strip()

    # ------------------------------------------------------------------ reading

    def read_hyperparameters(self) -> dict[str, Any]:
        return _read_json(self.hyperparameters_file, {})

    def read_channels(self) -> dict[str, ChannelConfig]:
        return {
            name: ChannelConfig.from_json(entry or {})
            for name, entry in _read_json(self.input_data_config_file, {}).items()
        }

    def read_resources(self) -> ResourceConfig:
        return ResourceConfig.from_json(_read_json(self.resource_config_file, {}))


def prepare_local_job(
    job: Path,
    channels: Mapping[str, Path],
    hyperparameters: Mapping[str, str],
    *,
    content_types: Mapping[str, str] | None = None,
    attribute_names: list[str] | None = None,
    keep_state: bool = False,
) -> JobLayout:
    """Lay ``job`` out for channels given as local paths (``roost train``); ``keep_state`` keeps checkpoints/."""
    layout = JobLayout(job)
    layout.write_config(
        hyperparameters,
        {
            name: describe_local_channel(name, source, (content_types or {}).get(name), attribute_names)
            for name, source in channels.items()
        },
    )
    if layout.data.exists():
        for old in layout.data.iterdir():
            if old.name not in channels:
                _remove(old)
    for name, source in channels.items():
        layout.link_channel(name, source)
    for stale in (layout.model, layout.output) + (() if keep_state else (layout.checkpoints,)):
        shutil.rmtree(stale, ignore_errors=True)
    layout.checkpoints.mkdir(exist_ok=True)
    return layout


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _read_json(path: Path, default: Any) -> Any:
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path} is not valid JSON: {err}") from None
