"""The layout of Roost's ``model.tar.gz`` (what ``/opt/ml/model`` holds after training).

At the tar root, like SageMaker's artifact:

* ``image-classification-NNNN.safetensors`` - one per saved checkpoint, NNNN the
  1-based epoch (SageMaker names its MXNet files ``image-classification-NNNN.params``);
  PyTorch state-dict names, no pickle.
* ``model-shapes.json`` - ``[{"shape": [mini_batch_size, C, H, W], "name": "data"}]``
  exactly as SageMaker writes it.
* ``roost-model.json`` - everything needed to rebuild and serve the model: the
  resolved hyperparameters, network, class names when known, which checkpoint is
  the model, and the preprocessing serving must apply.
"""

from __future__ import annotations

import json
import os
import tarfile
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from roost.errors import UserError

PREFIX = "image-classification"
META_FILE = "roost-model.json"
SHAPES_FILE = "model-shapes.json"
FORMAT = "roost-image-classification"
FORMAT_VERSION = 1


class ArtifactError(UserError):
    """A model.tar.gz (or model folder) that cannot be read as a model."""


def checkpoint_name(epoch_index: int) -> str:
    """0-based epoch index -> ``image-classification-0001.safetensors`` (SageMaker's numbering)."""
    return f"{PREFIX}-{epoch_index + 1:04d}.safetensors"


@dataclass
class Checkpoint:
    file: str
    epoch: int  # 1-based, as in the file name
    validation_accuracy: float | None = None


@dataclass
class ModelMeta:
    num_classes: int
    num_layers: int
    image_shape: list[int]
    hyperparameters: dict[str, str]
    checkpoints: list[Checkpoint]
    model: str  # the checkpoint file serving loads
    head: str = "fc1"
    multi_label: bool = False
    class_names: list[str] | None = None
    preprocessing: dict = field(default_factory=dict)
    roost_version: str = ""
    format: str = FORMAT
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> ModelMeta:
        d = json.loads(text)
        if d.get("format") != FORMAT:
            raise ArtifactError(f"not a Roost model description (format {d.get('format')!r}, expected {FORMAT!r})")
        if d.get("format_version", 0) > FORMAT_VERSION:
            raise ArtifactError(
                f"model format version {d['format_version']} is newer than this Roost understands "
                f"({FORMAT_VERSION}); upgrade Roost"
            )
        d["checkpoints"] = [Checkpoint(**c) for c in d["checkpoints"]]
        return cls(**d)


def serving_preprocessing(image_shape: list[int] | tuple[int, ...]) -> dict:
    """What the endpoint does to a request image (docs/sagemaker.md, "Inference"), recorded with the model."""
    c, h, w = image_shape
    return {
        "decode": "RGB" if c == 3 else "greyscale",
        "resize": {"height": h, "width": w, "keep_aspect_ratio": False, "interpolation": "bilinear"},
        "crop": None,
        "layout": "NCHW",
        "dtype": "float32",
        "scale": "0..255",
        "mean": None,
        "std": None,
    }


def write_model_shapes(model_dir: str | os.PathLike, batch_size: int, image_shape) -> None:
    shapes = [{"shape": [batch_size, *image_shape], "name": "data"}]
    Path(model_dir, SHAPES_FILE).write_text(json.dumps(shapes), encoding="utf-8")


def pack_model_dir(model_dir: str | os.PathLike, tar_path: str | os.PathLike) -> Path:
    """``model/`` -> ``model.tar.gz`` with its files at the tar root, as SageMaker packs it."""
    tar_path = Path(tar_path)
    tar_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tar_path.with_name(tar_path.name + ".partial")
    with tarfile.open(tmp, "w:gz") as tar:
        for f in sorted(Path(model_dir).iterdir()):
            if f.is_file():
                tar.add(f, arcname=f.name)
    os.replace(tmp, tar_path)
    return tar_path


#: what a model.tar.gz may hold: a file of the archive is read only when asked for, and none beyond these limits
#: (the deepest ResNet's weights are about 410 MB; a SageMaker artifact with checkpoint_frequency=1 holds one per epoch)
MAX_MEMBER_BYTES = 1 << 30
MAX_TOTAL_BYTES = 32 << 30
MAX_MEMBERS = 10_000
#: the description files are small; one of megabytes is not a description
MAX_JSON_BYTES = 16 << 20


class Members(Mapping[str, bytes]):
    """File name -> bytes of a ``model.tar.gz`` (or an unpacked model folder), read lazily and within limits.

    Listing the archive reads headers only (``tarfile`` skips over the data); a file's bytes are read when
    indexed, so an artifact with a multi-gigabyte member nobody asks for costs no memory, and one that is
    asked for is refused above :data:`MAX_MEMBER_BYTES`.
    """

    def __init__(self, source: str | os.PathLike) -> None:
        self.source = Path(source)
        self.sizes: dict[str, int] = {}
        self._paths: dict[str, Path] = {}
        if self.source.is_dir():
            for f in sorted(self.source.iterdir()):
                if f.is_file():
                    self.sizes[f.name], self._paths[f.name] = f.stat().st_size, f
            return
        total = 0
        try:
            with tarfile.open(self.source, "r:*") as tar:
                for count, m in enumerate(tar, 1):
                    if count > MAX_MEMBERS:
                        raise ArtifactError(f"{self.source}: more than {MAX_MEMBERS} files in the archive")
                    if not m.isfile():
                        continue
                    total += m.size
                    if total > MAX_TOTAL_BYTES:
                        raise ArtifactError(
                            f"{self.source}: the archive unpacks to more than {MAX_TOTAL_BYTES:,} bytes"
                        )
                    self.sizes.setdefault(os.path.basename(m.name), m.size)  # the first of a name is the one read
        except (tarfile.TarError, OSError, EOFError) as err:
            raise ArtifactError(f"{self.source}: not a readable model.tar.gz ({err})") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.sizes)

    def __len__(self) -> int:
        return len(self.sizes)

    def __contains__(self, name: object) -> bool:
        return name in self.sizes

    def __getitem__(self, name: str) -> bytes:
        return self.read(name)

    def read(self, name: str, limit: int | None = None) -> bytes:
        limit = MAX_MEMBER_BYTES if limit is None else limit
        if name not in self.sizes:
            raise KeyError(name)
        if self.sizes[name] > limit:
            raise ArtifactError(
                f"{self.source}: {name} is {self.sizes[name]:,} bytes, more than the {limit:,} a model file may have"
            )
        if name in self._paths:
            return self._paths[name].read_bytes()
        try:
            with tarfile.open(self.source, "r:*") as tar:
                for m in tar:
                    if m.isfile() and os.path.basename(m.name) == name:
                        data = tar.extractfile(m)
                        return data.read(limit + 1)[:limit] if data else b""
        except (tarfile.TarError, OSError, EOFError) as err:
            raise ArtifactError(f"{self.source}: not a readable model.tar.gz ({err})") from None
        raise KeyError(name)


def read_members(source: str | os.PathLike) -> Members:
    """The files of a ``model.tar.gz`` or an unpacked model folder (see :class:`Members`)."""
    return Members(source)


def read_json_member(members: Mapping[str, bytes], name: str, source: str | os.PathLike) -> object:
    """A small JSON file of the artifact, parsed; :class:`ArtifactError` when it is too large or not JSON."""
    data = members.read(name, MAX_JSON_BYTES) if isinstance(members, Members) else members[name]
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as err:
        raise ArtifactError(f"{source}: {name} is not valid JSON ({err})") from None


def input_shape(members: Mapping[str, bytes], source: str | os.PathLike) -> tuple[int, int, int]:
    """``(C, H, W)`` from ``model-shapes.json``: ``[{"shape": [batch, C, H, W], "name": "data"}]``."""
    shapes = read_json_member(members, SHAPES_FILE, source)
    shape = shapes[0].get("shape") if isinstance(shapes, list) and shapes and isinstance(shapes[0], dict) else None
    if (
        not isinstance(shape, list)
        or len(shape) != 4
        or not all(isinstance(x, int) and x >= 1 for x in shape)
        or shape[1] not in (1, 3)
    ):
        raise ArtifactError(
            f'{source}: {SHAPES_FILE} must be [{{"shape": [batch, channels, height, width], "name": "data"}}] '
            f"with 1 or 3 channels; it holds {json.dumps(shapes)[:200]}"
        )
    return shape[1], shape[2], shape[3]


def read_meta(members: Mapping[str, bytes], source: str | os.PathLike = "model") -> ModelMeta:
    """The description of a Roost artifact (``roost.models.artifact.load`` reads SageMaker's too)."""
    if META_FILE not in members:
        raise ArtifactError(f"{source}: no {META_FILE} inside; was it made by Roost?")
    data = members.read(META_FILE, MAX_JSON_BYTES) if isinstance(members, Members) else members[META_FILE]
    try:
        return ModelMeta.from_json(data.decode("utf-8"))
    except ArtifactError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise ArtifactError(f"{source}: {META_FILE} is not a Roost model description ({err})") from None
