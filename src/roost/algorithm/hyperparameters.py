"""The algorithm's hyperparameters: one typed schema for the CLI, the API and the web form.

Names, defaults and valid values are SageMaker's (docs/sagemaker.md, "Hyperparameters"). Values
arrive as strings, the way SageMaker passes them (``"0.1"``, ``"True"``,
``"10, 20"``, ``"3,224,224"``), or as native values from Python. Everything
is checked before any work starts; an error names the hyperparameter, the
value given and what is allowed.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from roost.errors import UserError
from roost.models.recipes import resnet_spec


class HyperparameterError(UserError):
    """One or more hyperparameters are invalid; ``problems`` lists one message per problem and ``fields`` the
    same messages by the hyperparameter each concerns (a rule between two names goes to the first)."""

    def __init__(self, problems: list[str], fields: dict[str, list[str]] | None = None) -> None:
        self.problems = problems
        self.fields = fields or {}
        super().__init__("; ".join(problems))


def _text(v: Any) -> str:
    return v.strip() if isinstance(v, str) else str(v)


#: upper bounds where SageMaker documents none: beyond them a job cannot run (memory) or never ends
MAX_EPOCHS = 100_000
MAX_CLASSES = 100_000
MAX_BATCH = 8192
MAX_LAYERS = 1001  # the deepest network MXNet's resnet.py has a recipe for in its examples
MAX_IMAGE_SIDE = 4096
MAX_RESIZE = 8192
MAX_SAMPLES = 2**31 - 1


def _int(lo: int = 1, hi: int | None = None):
    def parse(v: Any) -> int:
        if isinstance(v, bool):
            raise ValueError(f"expected an integer >= {lo}")
        if isinstance(v, int):
            n = v
        else:
            s = _text(v)
            try:
                n = int(s)
            except ValueError:
                # "10.0" comes out of some tuners; accept it only when integral
                try:
                    f = float(s)
                except ValueError:
                    raise ValueError(f"expected an integer >= {lo}") from None
                if not f.is_integer():
                    raise ValueError(f"expected an integer >= {lo}") from None
                n = int(f)
        if n < lo:
            raise ValueError(f"expected an integer >= {lo}")
        if hi is not None and n > hi:
            raise ValueError(f"expected an integer <= {hi}")
        return n

    return parse


def _float(lo: float = 0.0, hi: float = 1.0):
    def parse(v: Any) -> float:
        try:
            f = float(_text(v)) if not isinstance(v, bool) else None
        except ValueError:
            f = None
        if f is None or not (lo <= f <= hi):
            raise ValueError(f"expected a number between {lo:g} and {hi:g}")
        return f

    return parse


def _bool(v: Any) -> bool:
    s = _text(v).lower()
    if s in ("true", "1"):
        return True
    if s in ("false", "0"):
        return False
    raise ValueError("expected True or False")


def _flag(v: Any) -> int:
    s = _text(v).lower()
    if s in ("1", "true"):
        return 1
    if s in ("0", "false"):
        return 0
    raise ValueError("expected 0 or 1")


def parse_image_shape(v: Any) -> tuple[int, int, int]:
    """``channels,height,width`` (``image_shape``, and every command's ``--image-shape``)."""
    parts = v if isinstance(v, (list, tuple)) else _text(v).split(",")
    try:
        dims = tuple(int(_text(p)) for p in parts)
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise ValueError("expected 'channels,height,width', e.g. '3,224,224'")
    if max(dims[1:]) > MAX_IMAGE_SIDE:
        raise ValueError(f"expected a height and width of at most {MAX_IMAGE_SIDE} pixels")
    if dims[0] not in (1, 3):
        raise ValueError("expected 1 (greyscale) or 3 (colour) channels, e.g. '3,224,224' or '1,28,28'")
    return dims


def _steps(v: Any) -> tuple[int, ...]:
    parts = v if isinstance(v, (list, tuple)) else [p for p in _text(v).split(",") if p.strip()]
    try:
        steps = tuple(int(_text(p)) for p in parts)
    except ValueError:
        steps = ()
    if not steps or min(steps) < 1 or max(steps) > MAX_EPOCHS:
        raise ValueError(f"expected comma-separated epoch numbers from 1 to {MAX_EPOCHS}, e.g. '10, 20'")
    if any(b <= a for a, b in zip(steps, steps[1:], strict=False)):
        raise ValueError("epoch numbers must be strictly increasing, e.g. '10, 20'")
    return steps


def _choice(*allowed: str):
    def parse(v: Any) -> str:
        s = _text(v)
        if s not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return s

    return parse


EpochCount = Annotated[int, BeforeValidator(_int(1, MAX_EPOCHS))]
ClassCount = Annotated[int, BeforeValidator(_int(1, MAX_CLASSES))]
SampleCount = Annotated[int, BeforeValidator(_int(1, MAX_SAMPLES))]
BatchSize = Annotated[int, BeforeValidator(_int(1, MAX_BATCH))]
Depth = Annotated[int, BeforeValidator(_int(1, MAX_LAYERS))]
Pixels = Annotated[int, BeforeValidator(_int(1, MAX_RESIZE))]
Unit = Annotated[float, BeforeValidator(_float(0.0, 1.0))]
Flag = Annotated[int, BeforeValidator(_flag)]


class HyperParameters(BaseModel):
    """SageMaker image-classification hyperparameters (docs/hyperparameters.md is generated from this)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    num_classes: ClassCount = Field(description="Number of output classes (for multi-label: all classes).")
    num_training_samples: SampleCount = Field(
        description="Number of training images; sets the update counts of lr_scheduler_step."
    )
    augmentation_type: Annotated[
        Literal["crop", "crop_color", "crop_color_transform"] | None,
        BeforeValidator(lambda v: None if v is None else _choice("crop", "crop_color", "crop_color_transform")(v)),
    ] = Field(
        None,
        description="crop: random crop + mirror; crop_color: + HSL jitter; crop_color_transform: + rotation, "
        "shear, aspect.",
    )
    beta_1: Unit = Field(0.9, description="Adam's first-moment decay.")
    beta_2: Unit = Field(0.999, description="Adam's second-moment decay.")
    checkpoint_frequency: EpochCount | None = Field(
        None, description="Save every Nth epoch (all go into model.tar.gz); unset keeps the best epoch only."
    )
    early_stopping: Annotated[bool, BeforeValidator(_bool)] = Field(
        False, description="Stop when validation accuracy stops improving."
    )
    early_stopping_min_epochs: EpochCount = Field(10, description="Epochs before early stopping may trigger.")
    early_stopping_patience: EpochCount = Field(5, description="Epochs without improvement before stopping.")
    early_stopping_tolerance: Unit = Field(
        0.0, description="Relative improvement below which an epoch counts as no improvement."
    )
    epochs: EpochCount = Field(30, description="Passes over the training data.")
    eps: Unit = Field(1e-8, description="Epsilon of adam and rmsprop.")
    gamma: Unit = Field(0.9, description="Decay of rmsprop's squared-gradient average.")
    image_shape: Annotated[tuple[int, int, int], BeforeValidator(parse_image_shape)] = Field(
        (3, 224, 224), description="Network input 'channels,height,width'."
    )
    kv_store: Annotated[
        Literal["dist_sync", "dist_async"] | None,
        BeforeValidator(lambda v: None if v is None else _choice("dist_sync", "dist_async")(v)),
    ] = Field(None, description="Distributed update mode; one machine trains the same either way.")
    learning_rate: Unit = Field(0.1, description="Initial learning rate.")
    lr_scheduler_factor: Unit = Field(0.1, description="Factor applied to the learning rate at each step epoch.")
    lr_scheduler_step: Annotated[
        tuple[int, ...] | None, BeforeValidator(lambda v: None if v is None else _steps(v))
    ] = Field(
        None, description="Epochs after which the learning rate is multiplied by lr_scheduler_factor, e.g. '10, 20'."
    )
    mini_batch_size: BatchSize = Field(32, description="Images per batch.")
    model_prefix: str | None = Field(None, description="Accepted for compatibility (seen in AWS examples); unused.")
    momentum: Unit = Field(0.9, description="Momentum of sgd and nag.")
    multi_label: Flag = Field(0, description="1: every image may have several labels.")
    num_layers: Depth = Field(
        152, description="ResNet depth: 18, 34, 50, 101, 152, 200 for large images; 20, 32, 44, 56, 110 for small."
    )
    optimizer: Annotated[
        Literal["sgd", "adam", "rmsprop", "nag"], BeforeValidator(_choice("sgd", "adam", "rmsprop", "nag"))
    ] = Field("sgd", description="sgd, adam, rmsprop or nag.")
    precision_dtype: Annotated[Literal["float32", "float16"], BeforeValidator(_choice("float32", "float16"))] = Field(
        "float32", description="float16 trains with mixed precision."
    )
    resize: Pixels | None = Field(None, description="Resize the shorter image side to this before cropping.")
    top_k: Annotated[int | None, BeforeValidator(lambda v: None if v is None else _int(2)(v))] = Field(
        None, description="Also report top-k accuracy (k > 1)."
    )
    use_pretrained_model: Flag = Field(0, description="1: start from ImageNet weights of the same depth.")
    use_weighted_loss: Flag = Field(0, description="Multi-label: weight the loss by class frequency.")
    weight_decay: Unit = Field(0.0001, description="L2 weight decay of sgd and nag.")

    @model_validator(mode="after")
    def _cross_field(self) -> HyperParameters:
        problems: list[tuple[str, str]] = []  # (the hyperparameter the message belongs beside, message)
        if self.checkpoint_frequency is not None and self.checkpoint_frequency > self.epochs:
            problems.append(
                (
                    "checkpoint_frequency",
                    f"checkpoint_frequency={self.checkpoint_frequency} is larger than epochs={self.epochs}; it "
                    "must be <= epochs",
                )
            )
        if self.top_k is not None and self.top_k > self.num_classes:
            problems.append(
                (
                    "top_k",
                    f"top_k={self.top_k} is larger than num_classes={self.num_classes}; choose 2..{self.num_classes}",
                )
            )
        if self.mini_batch_size > self.num_training_samples:
            problems.append(
                (
                    "mini_batch_size",
                    f"mini_batch_size={self.mini_batch_size} is larger than "
                    f"num_training_samples={self.num_training_samples}; "
                    "the number of input images must be bigger or equal to the mini_batch_size",
                )
            )
        _, h, w = self.image_shape
        try:
            resnet_spec(self.num_layers, h)
        except ValueError as err:
            problems.append(
                (
                    "num_layers",
                    f"num_layers={self.num_layers} with image_shape={','.join(map(str, self.image_shape))}: {err}",
                )
            )
        if self.resize is not None and self.resize < max(h, w):
            # SageMaker's docs say "must exceed"; a real SageMaker log trains with resize equal to the shape
            problems.append(
                (
                    "resize",
                    f"resize={self.resize} is smaller than the image_shape {h}x{w}; it must be at least {max(h, w)}",
                )
            )
        if problems:
            raise PydanticCustomError(
                "cross_field", "{summary}", {"summary": " | ".join(m for _, m in problems), "problems": problems}
            )
        return self

    # ------------------------------------------------------------------ helpers

    def to_strings(self) -> dict[str, str]:
        """The SageMaker form: every set value as a string (``hyperparameters.json``)."""
        out = {}
        for name, value in self.model_dump(exclude_none=True).items():
            if isinstance(value, tuple):
                value = ",".join(map(str, value))
            elif isinstance(value, bool):
                value = str(value)
            out[name] = str(value)
        return out


#: keys SageMaker itself adds to the hyperparameters of tuning and SDK jobs
_IGNORED_PREFIXES = ("sagemaker_", "_tuning_objective_metric")


def parse_hyperparameters(values: Mapping[str, Any]) -> HyperParameters:
    """Validate a SageMaker-style hyperparameter map; :class:`HyperparameterError` on any problem."""
    known = set(HyperParameters.model_fields)
    problems: list[tuple[str, str]] = []
    clean = {}
    for key, value in values.items():
        if key.startswith(_IGNORED_PREFIXES):
            continue
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(sorted(known))}"
            problems.append((key, f"unknown hyperparameter {key!r}{hint}"))
        else:
            clean[key] = value
    try:
        hp: HyperParameters | None = HyperParameters(**clean)
    except ValidationError as err:
        hp = None
        for e in err.errors():
            if e["type"] == "missing":
                problems.append((str(e["loc"][0]), f"{e['loc'][0]} is required"))
            elif e["loc"]:
                name = str(e["loc"][0])
                msg = str(e.get("ctx", {}).get("error", e["msg"]))
                problems.append((name, f"{name}={_text(clean.get(name))!r} is not valid: {msg}"))
            else:  # the rules between hyperparameters
                problems.extend(e.get("ctx", {}).get("problems", [("", e["msg"])]))
    if problems or hp is None:
        fields: dict[str, list[str]] = {}
        for name, message in problems:
            fields.setdefault(name, []).append(message)
        raise HyperparameterError([m for _, m in problems], fields)
    return hp


def parse_key_values(pairs: list[str]) -> dict[str, str]:
    """``["epochs=3", "image_shape=3,28,28"]`` -> dict, for the command line."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise HyperparameterError([f"{pair!r} is not key=value (e.g. epochs=10)"])
        out[key.strip()] = value.strip()
    return out


def load_json(path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise HyperparameterError([f"{path}: expected a JSON object of hyperparameters"])
    return data


def markdown_table() -> str:
    """The hyperparameter table of the docs, rendered from the schema."""
    rows = ["| name | default | description |", "| --- | --- | --- |"]
    for name, f in HyperParameters.model_fields.items():
        default = "**required**" if f.is_required() else ("-" if f.default is None else f"`{_show(f.default)}`")
        rows.append(f"| `{name}` | {default} | {f.description or ''} |")
    return "\n".join(rows)


def _show(v: Any) -> str:
    return ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
