"""What a training run leaves, looked at: ``roost plot`` (accuracy by epoch), ``roost report`` (per-class metrics
and the confusion matrix) and ``roost convert-weights`` (pretrained weights for ``use_pretrained_model=1``)."""

from __future__ import annotations

from pathlib import Path

import click

from roost.cli import ui


@click.command("plot", short_help="Plot train/validation accuracy by epoch to a PNG.")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="PNG to write (default: accuracy.png in the job folder, or beside the log).",
)
@click.option("--title", help="Title of the chart.")
def plot_cmd(source: Path, output: Path | None, title: str | None) -> None:
    """Draw accuracy by epoch from a job folder, a metrics.csv, or a log saved as text.

    The log may be Roost's, or SageMaker's as CloudWatch shows it (lines like
    "16:12:54 [10/21/2018 16:12:53 INFO 1397...] Epoch[0] Validation-accuracy=0.302083").
    """
    from roost.algorithm.metrics import load_curves, plot_accuracy

    try:
        curves = load_curves(source)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    if output is None:
        output = (source if source.is_dir() else source.parent) / "accuracy.png"
    plot_accuracy(curves, output, title)
    val = curves.series.get("Validation-accuracy", {})
    if val:
        best = max(val, key=lambda e: (val[e], -e))
        click.echo(f"{len(val)} epochs; best Validation-accuracy={val[best]:f} at epoch {best}")
    click.echo(f"wrote {output}")


@click.command("report", short_help="Per-class precision/recall/F1 and confusion matrix of a job.")
@click.argument("job", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def report_cmd(job: Path, as_json: bool) -> None:
    """Validation results of the model a job ships: per class, and the confusion matrix."""
    import json

    from rich.table import Table

    from roost.algorithm.metrics import validation_report

    try:
        rep = validation_report(job)
    except (OSError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    if as_json:
        click.echo(json.dumps(rep, indent=2))
        return
    console = ui.out()
    console.print(
        f"[bold]{rep['model']}[/] (epoch {rep['epoch']}): validation accuracy {rep['validation_accuracy']:.4f}"
    )
    table = Table(show_edge=False, pad_edge=False)
    for col in ("id", "class", "precision", "recall", "F1", "images"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for row in rep["validation_per_class"]:
        table.add_row(
            str(row["class"]),
            row.get("name", ""),
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        )
    console.print(table)
    confusion = rep["validation_confusion"]
    matrix = Table(
        title="Confusion matrix (rows: truth, columns: predicted)",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    matrix.add_column("")
    for j in range(len(confusion)):
        matrix.add_column(str(j), justify="right")
    for i, row in enumerate(confusion):
        matrix.add_row(
            str(i), *(f"[bold]{v}[/]" if i == j else (str(v) if v else "[dim]·[/]") for j, v in enumerate(row))
        )
    console.print(matrix)


@click.command("convert-weights", short_help="Pretrained weights for use_pretrained_model=1.")
@click.argument("source", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--num-layers", required=True, type=int, help="ResNet depth of the weights (18, 34, 50, 101, 152, 200).")
@click.option(
    "--image-shape",
    default="3,224,224",
    show_default=True,
    callback=ui.image_shape_option,
    metavar="C,H,W",
    help="Shape the weights were trained for (only the stem depends on it).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write (default: resnet-<num_layers>.safetensors in the pretrained-weights folder).",
)
def convert_weights_cmd(source: Path, num_layers: int, image_shape, output: Path | None) -> None:
    """Convert weights into Roost's pretrained format (resnet-<num_layers>.safetensors).

    SOURCE may be MXNet .params (e.g. the model zoo's resnet-50-0000.params, which
    SageMaker's transfer learning starts from), a SageMaker or Roost model.tar.gz,
    a .safetensors file, or a PyTorch state dict (.pt/.pth) with Roost's or
    MXNet's parameter names. The pretrained-weights folder is $ROOST_PRETRAINED_DIR,
    else ~/.cache/roost/pretrained.
    """
    from roost.models.weights import WeightsError, convert_weights, pretrained_file

    out = output or pretrained_file(num_layers)
    try:
        convert_weights(source, num_layers, out, image_shape)
    except (WeightsError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {out} (ResNet-{num_layers}); train with use_pretrained_model=1 num_layers={num_layers}")
