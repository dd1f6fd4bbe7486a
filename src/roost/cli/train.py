"""``roost train`` and ``roost container``: the algorithm from the command line."""

from __future__ import annotations

import json
import logging
import shutil
import sys
from pathlib import Path

import click

from roost.cli import ui

CHANNELS = ("train", "validation")


def _link_channel(source: Path, dest: Path) -> None:
    """Fill ``input/data/<channel>`` with links to the given file(s), as SageMaker would download them."""
    if dest.exists() or dest.is_symlink():
        shutil.rmtree(dest) if dest.is_dir() and not dest.is_symlink() else dest.unlink()
    dest.mkdir(parents=True)
    files = [source] if source.is_file() else sorted(p for p in source.iterdir() if p.is_file())
    if source.is_file():
        # the .idx and a classes.json written by `roost pack` travel with a .rec
        files += [p for p in (source.with_suffix(".idx"), source.parent / "classes.json") if p.is_file()]
    for f in files:
        (dest / f.name).symlink_to(f.resolve())


def prepare_job(job: Path, channels: dict[str, Path], hyperparameters: dict[str, str]) -> None:
    config = job / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (config / "hyperparameters.json").write_text(json.dumps(hyperparameters, indent=2))
    (config / "inputdataconfig.json").write_text(json.dumps({
        name: {"ContentType": "application/x-recordio", "TrainingInputMode": "File",
               "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"}
        for name in channels}, indent=2))
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}, indent=2))
    for name, source in channels.items():
        _link_channel(source, job / "input" / "data" / name)
    for stale in ("model", "output"):
        shutil.rmtree(job / stale, ignore_errors=True)


@click.command("train", context_settings={"ignore_unknown_options": False})
@click.option("--train", "train_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="The train channel: a .rec file or a folder of .rec files.")
@click.option("--validation", "validation_path", required=True, type=click.Path(exists=True, path_type=Path),
              help="The validation channel: a .rec file or a folder of .rec files.")
@click.option("--output", "job", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Job folder: laid out like /opt/ml, with model.tar.gz and training.log at its top.")
@click.option("--hyperparameters", "hp_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JSON object of hyperparameters (SageMaker's HyperParameters); key=value arguments override it.")
@click.option("--workers", type=click.IntRange(min=0), default=None,
              help="Data-loading worker processes (default: one per core; 0 loads in the training process).")
@click.argument("hyperparameters", nargs=-1, metavar="[KEY=VALUE]...")
def train_cmd(train_path, validation_path, job, hp_file, workers, hyperparameters) -> None:
    """Train the image-classification algorithm on RecordIO channels.

    Hyperparameters are SageMaker's, as key=value pairs, e.g.

    \b
      roost train --train data/train.rec --validation data/val.rec --output runs/birds \\
          num_classes=4 num_training_samples=322 epochs=25 mini_batch_size=24 \\
          num_layers=18 image_shape=3,224,224 top_k=2

    The log has SageMaker's lines (Epoch[N] Train-accuracy=..., Validation-accuracy=...).
    The job folder keeps the inputs, model/, output/data/metrics.csv, training.log
    and model.tar.gz.
    """
    from roost.algorithm.container import log_formatter, run_training
    from roost.algorithm.hyperparameters import HyperparameterError, load_json, parse_hyperparameters, parse_key_values
    from roost.formats.artifact import pack_model_dir

    try:
        values = load_json(hp_file) if hp_file else {}
        values.update(parse_key_values(list(hyperparameters)))
        values = {k: str(v) for k, v in values.items()}
        parse_hyperparameters(values)  # fail before touching the job folder
    except HyperparameterError as err:
        raise click.UsageError("invalid hyperparameters:\n  " + "\n  ".join(err.problems)) from None
    job.mkdir(parents=True, exist_ok=True)
    prepare_job(job, {"train": train_path, "validation": validation_path}, values)

    file_log = logging.FileHandler(job / "training.log", mode="w", encoding="utf-8")
    file_log.setFormatter(log_formatter())
    logging.getLogger("roost").addHandler(file_log)
    try:
        with ui.progress("batch/s") as bar:
            task = bar.add_task("", total=None)

            def on_batch(phase: str, epoch: int, done: int, total: int) -> None:
                bar.update(task, description=f"epoch {epoch} {phase}", completed=done, total=total)

            status = run_training(job, on_batch=on_batch, workers=workers)
    finally:
        logging.getLogger("roost").removeHandler(file_log)
        file_log.close()
    if status != 0:
        reason = (job / "output" / "failure").read_text()
        ui.err.print(f"[red]Training failed:[/] {reason}")
        sys.exit(status)
    tar = pack_model_dir(job / "model", job / "model.tar.gz")
    ui.err.print(f"[green]model:[/] {tar}   [green]metrics:[/] {job / 'output' / 'data' / 'metrics.csv'}   "
                 f"[green]log:[/] {job / 'training.log'}")


@click.group("container")
def container_cmd() -> None:
    """SageMaker container entry points (docker run IMAGE train)."""


@container_cmd.command("train")
@click.option("--root", default="/opt/ml", show_default=True, type=click.Path(file_okay=False, path_type=Path),
              help="The /opt/ml folder.")
def container_train(root: Path) -> None:
    """Train on /opt/ml as SageMaker lays it out; exit status and output/failure as SageMaker expects."""
    from roost.algorithm.container import run_training

    sys.exit(run_training(root, entrypoint=True))
