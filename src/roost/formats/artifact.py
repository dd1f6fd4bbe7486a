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


def read_members(source: str | os.PathLike) -> dict[str, bytes]:
    """File name -> bytes for a ``model.tar.gz`` or an unpacked model folder."""
    source = Path(source)
    if source.is_dir():
        return {f.name: f.read_bytes() for f in source.iterdir() if f.is_file()}
    try:
        with tarfile.open(source, "r:*") as tar:
            out = {}
            for m in tar.getmembers():
                if m.isfile():
                    data = tar.extractfile(m)
                    out[os.path.basename(m.name)] = data.read() if data else b""
            return out
    except (tarfile.TarError, OSError) as err:
        raise ArtifactError(f"{source}: not a readable model.tar.gz ({err})") from None


def read_meta(members: dict[str, bytes], source: str | os.PathLike = "model") -> ModelMeta:
    """The description of a Roost artifact (``roost.models.artifact.load`` reads SageMaker's too)."""
    if META_FILE not in members:
        raise ArtifactError(f"{source}: no {META_FILE} inside; was it made by Roost?")
    return ModelMeta.from_json(members[META_FILE].decode("utf-8"))
