"""``roost train`` and ``roost container``: the algorithm from the command line."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from roost.cli import ui


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str]:
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep:
            raise click.BadParameter(f"{v!r} is not CHANNEL=VALUE", param_hint=option)
        out[key.strip()] = val.strip()
    return out


_existing = click.Path(exists=True, path_type=Path)


@click.command("train", short_help="Train the algorithm: SageMaker hyperparameters, log and model.tar.gz.")
@click.option(
    "--train",
    "train_path",
    required=True,
    type=_existing,
    help="train channel: .rec file(s), a folder of images (class folders, or the root of --train-lst), "
    "or an augmented manifest (.manifest/.jsonl).",
)
@click.option("--validation", "validation_path", required=True, type=_existing, help="validation channel, as --train.")
@click.option(
    "--train-lst", type=_existing, help="the .lst of an image-mode train channel (paths relative to --train)."
)
@click.option("--validation-lst", type=_existing, help="the .lst of an image-mode validation channel.")
@click.option(
    "--model",
    "model_path",
    type=_existing,
    help="model channel: a Roost model.tar.gz to continue training from (incremental training).",
)
@click.option(
    "--content-type",
    "content_types",
    multiple=True,
    metavar="CHANNEL=TYPE",
    help="a channel's ContentType where the files do not tell, e.g. "
    "'train=application/x-recordio; label-format=class-id'.",
)
@click.option("--attribute-names", help="augmented manifests: image attribute,label attribute (e.g. source-ref,class).")
@click.option(
    "--output",
    "job",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Job folder: laid out like /opt/ml, with model.tar.gz and training.log at its top.",
)
@click.option(
    "--hyperparameters",
    "hp_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A JSON object of hyperparameters (SageMaker's HyperParameters); key=value arguments override it.",
)
@click.option(
    "--resume",
    is_flag=True,
    help="Continue an interrupted run in --output from its last completed epoch (same hyperparameters).",
)
@click.option(
    "--workers",
    type=click.IntRange(min=0),
    default=None,
    help="Data-loading worker processes (default: one per core; 0 loads in the training process).",
)
@click.option(
    "--seed",
    type=click.IntRange(0, 2**32 - 1),
    default=0,
    show_default=True,
    help="Random seed of the weights, the shuffling and the augmentation (SageMaker has no such setting; jobs "
    "of a server take it from Environment ROOST_SEED).",
)
@click.argument("hyperparameters", nargs=-1, metavar="[KEY=VALUE]...")
def train_cmd(
    train_path,
    validation_path,
    train_lst,
    validation_lst,
    model_path,
    content_types,
    attribute_names,
    job,
    hp_file,
    resume,
    workers,
    seed,
    hyperparameters,
) -> None:
    """Train the image-classification algorithm.

    Channels are SageMaker's: RecordIO files, image files with an .lst (or just
    class folders), or augmented manifests; hyperparameters are SageMaker's, as
    key=value pairs, e.g.

    \b
      roost train --train data/train.rec --validation data/val.rec --output runs/birds \\
          num_classes=4 num_training_samples=322 epochs=25 mini_batch_size=24 \\
          num_layers=18 image_shape=3,224,224 top_k=2

    The log has SageMaker's lines (Epoch[N] Train-accuracy=..., Validation-accuracy=...).
    The job folder keeps the inputs, model/, output/data/metrics.csv, training.log,
    checkpoints/ (the state --resume continues from) and model.tar.gz.
    """
    from roost.algorithm.container import SEED_ENV, log_formatter, run_training
    from roost.algorithm.hyperparameters import HyperparameterError, load_json, parse_hyperparameters, parse_key_values
    from roost.algorithm.layout import JobLayout, prepare_local_job
    from roost.algorithm.state import STATE_FILE
    from roost.formats.artifact import pack_model_dir

    try:
        values = load_json(hp_file) if hp_file else {}
        values.update(parse_key_values(list(hyperparameters)))
        values = {k: str(v) for k, v in values.items()}
        parse_hyperparameters(values)  # fail before touching the job folder
    except HyperparameterError as err:
        raise click.UsageError("invalid hyperparameters:\n  " + "\n  ".join(err.problems)) from None
    layout = JobLayout(job)
    if resume and not (layout.checkpoints / STATE_FILE).is_file():
        raise click.UsageError(f"--resume: {job} holds no saved training state (checkpoints/{STATE_FILE})")
    channels = {"train": train_path, "validation": validation_path}
    for name, path in (("train_lst", train_lst), ("validation_lst", validation_lst), ("model", model_path)):
        if path is not None:
            channels[name] = path
    job.mkdir(parents=True, exist_ok=True)
    prepare_local_job(
        job,
        channels,
        values,
        content_types=_pairs(content_types, "--content-type"),
        attribute_names=[a.strip() for a in attribute_names.split(",")] if attribute_names else None,
        keep_state=resume,
    )

    file_log = logging.FileHandler(job / "training.log", mode="a" if resume else "w", encoding="utf-8")
    file_log.setFormatter(log_formatter())
    logging.getLogger("roost").addHandler(file_log)
    try:
        with ui.progress("batch/s") as bar:
            task = bar.add_task("", total=None)

            def on_batch(phase: str, epoch: int, done: int, total: int) -> None:
                bar.update(task, description=f"epoch {epoch} {phase}", completed=done, total=total)

            os.environ[SEED_ENV] = str(seed)  # read where the algorithm starts, in this process or its host processes
            status = run_training(job, on_batch=on_batch, workers=workers, confine=False)
    finally:
        logging.getLogger("roost").removeHandler(file_log)
        file_log.close()
    if status != 0:
        ui.err.print(f"[red]Training failed:[/] {layout.read_failure()}")
        sys.exit(status)
    tar = pack_model_dir(layout.model, job / "model.tar.gz")
    ui.err.print(
        f"[green]model:[/] {tar}   [green]metrics:[/] {layout.output_data / 'metrics.csv'}   "
        f"[green]log:[/] {job / 'training.log'}"
    )


@click.group("container", short_help="SageMaker container entry points: train, serve.")
def container_cmd() -> None:
    """SageMaker container entry points (docker run IMAGE train)."""


@container_cmd.command("serve")
@click.option(
    "--root",
    default="/opt/ml",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The /opt/ml folder (the model is unpacked in its model/).",
)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
def container_serve_cmd(root: Path, port: int) -> None:
    """Serve /opt/ml/model as SageMaker hosting expects (docker run IMAGE serve)."""
    from roost.cli.serving import container_serve

    container_serve(root, port)


@container_cmd.command("train")
@click.option(
    "--root",
    default="/opt/ml",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The /opt/ml folder.",
)
def container_train(root: Path) -> None:
    """Train on /opt/ml as SageMaker lays it out; exit status and output/failure as SageMaker expects."""
    from roost.system import die_with_parent_from_env, stop_on_sigterm

    die_with_parent_from_env()  # started by Roost's job runner: never outlive it
    stop_on_sigterm()  # before importing torch, which takes seconds
    from roost.algorithm.container import run_training

    sys.exit(run_training(root, entrypoint=True))
