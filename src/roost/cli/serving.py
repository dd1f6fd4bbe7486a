"""``roost predict``, ``roost serve``, ``roost import-sagemaker`` and ``roost container serve``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from roost.cli import ui


def _load(model: str):
    from roost.serving.predictor import Predictor

    if not Path(model).exists():
        model = _artifact_of_job(model)
    try:
        return Predictor.load(model)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err)) from None


def _artifact_of_job(name: str) -> str:
    """MODEL given as a training job's name: its model.tar.gz, found through the Roost server."""
    import tempfile

    from roost.cli.jobs import call, clients
    from roost.storage.uri import StorageError, download

    sm, _ = clients(
        os.environ.get("ROOST_ENDPOINT_URL", "http://127.0.0.1:8080"),
        os.environ.get("ROOST_DATA_DIR", "roost-data"),
        "us-east-1",
    )
    d = call(sm.describe_training_job, TrainingJobName=name)
    url = (d.get("ModelArtifacts") or {}).get("S3ModelArtifacts")
    if not url:
        raise click.ClickException(f"training job {name} has no model yet (status {d['TrainingJobStatus']})")
    try:
        return str(download(url, Path(tempfile.mkdtemp(prefix="roost-model-")))[0])
    except StorageError as err:
        raise click.ClickException(str(err)) from None


@click.command("predict", short_help="Classify images with a model, a job folder or a job name.")
@click.argument("model")
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--top-k", default=3, show_default=True, type=click.IntRange(min=1), help="Classes shown per image.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON object per image and line: image, probabilities (all, in class order), top classes.",
)
def predict_cmd(model: str, images: tuple[Path, ...], top_k: int, as_json: bool) -> None:
    """Classify images with MODEL: a model.tar.gz (Roost's or SageMaker's), a model or job folder, or the name
    of a training job on a Roost server (ROOST_ENDPOINT_URL, default http://127.0.0.1:8080)."""
    from roost.serving.invocations import InputError

    predictor = _load(model)
    names = predictor.class_names
    rows = []
    for path in images:
        try:
            (pred,) = predictor.predict([path.read_bytes()])
        except InputError as err:
            ui.err.print(f"[yellow]skipped[/] {path}: {err}")
            continue
        rows.append((path, pred))
        if as_json:
            click.echo(
                json.dumps({"image": str(path), "probabilities": pred.probabilities, "top_k": pred.top(top_k, names)})
            )
    if as_json:
        return
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    table.add_column("image", no_wrap=True)
    for i in range(min(top_k, predictor.meta.num_classes)):
        table.add_column(f"#{i + 1}", no_wrap=True)
    for path, pred in rows:
        table.add_row(str(path), *(f"{t['label']} {t['probability']:.3f}" for t in pred.top(top_k, names)))
    ui.out().print(table)


@click.command("serve", short_help="Serve a model: GET /ping, POST /invocations.")
@click.argument("model")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--max-batch",
    default=8,
    show_default=True,
    type=click.IntRange(min=1),
    help="Images that concurrent requests may share in one forward pass (1: no batching).",
)
def serve_cmd(model: str, host: str, port: int, max_batch: int) -> None:
    """Serve a model as SageMaker's container does: GET /ping, POST /invocations."""
    _serve(_load(model), host, port, max_batch)


def _serve(predictor, host: str, port: int, max_batch: int = 8) -> None:
    import uvicorn

    from roost.serving.app import create_serving_app

    click.echo(
        f"serving {predictor.meta.num_layers}-layer ResNet ({predictor.meta.num_classes} classes) "
        f"at http://{host}:{port}/invocations",
        err=True,
    )
    uvicorn.run(create_serving_app(predictor, max_batch), host=host, port=port, log_level="warning")


@click.command("import-sagemaker", short_help="Convert a SageMaker (MXNet) model.tar.gz to Roost's format.")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The Roost model.tar.gz to write.",
)
def import_sagemaker_cmd(source: Path, output: Path) -> None:
    """Convert a model.tar.gz made by SageMaker's built-in algorithm (MXNet) into Roost's format."""
    from roost.models.artifact import import_sagemaker, load

    try:
        import_sagemaker(source, output)
        _, meta = load(output)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(
        f"wrote {output}: ResNet-{meta.num_layers}, image_shape {','.join(map(str, meta.image_shape))}, "
        f"{meta.num_classes} classes, head {meta.head}"
    )


def container_serve(root: Path, port: int = 8080) -> None:
    """SageMaker hosting: the model is unpacked in /opt/ml/model; listen on 8080 on every interface."""
    _serve(_load(str(root / "model")), "0.0.0.0", port)


@click.command("export", short_help="Export to ONNX or TorchScript with a parity check.")
@click.argument("model")
@click.option("--format", "fmt", type=click.Choice(["onnx", "torchscript"]), default="onnx", show_default=True)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: model.onnx / model.pt in the current folder).",
)
@click.option(
    "--check-images",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Images for the parity check (default: 8 random images of the model's shape). Repeatable.",
)
def export_cmd(model: str, fmt: str, output: Path | None, check_images: tuple[Path, ...]) -> None:
    """Export a model to ONNX or TorchScript and check it against PyTorch.

    The exported model takes float32 [N, C, H, W] pixels (0..255, RGB) and returns
    probabilities; OUTPUT.json beside it records the preprocessing and class names.
    The command fails unless the exported model agrees with PyTorch on the top-1
    class of every check image and within 1e-4 on every probability.
    """
    from roost.serving.export import TOLERANCE, export

    predictor = _load(model)
    out = output or Path("model.onnx" if fmt == "onnx" else "model.pt")
    arrays = [predictor.preprocess(p.read_bytes()) for p in check_images] or None
    try:
        report = export(predictor.model.cpu(), predictor.meta, out, fmt, arrays)
    except ModuleNotFoundError as err:
        raise click.ClickException(f"{err}; install the exporters with pip install 'roost[export]'") from None
    verdict = "[green]parity ok[/]" if report.ok else "[red]PARITY FAILED[/]"
    ui.err.print(
        f"{out} ({fmt}): {verdict}: top-1 agrees on {report.top1_agree}/{report.images} images, "
        f"max |probability difference| {report.max_abs_diff:.2e} (tolerance {TOLERANCE:g}); "
        f"details in {out}.json"
    )
    if not report.ok:
        raise SystemExit(1)
