"""The algorithm as a SageMaker training container, on a folder laid out like ``/opt/ml``.

Inputs (docs/sagemaker.md, "The training container"): ``input/config/hyperparameters.json``,
``input/config/inputdataconfig.json``, ``input/config/resourceconfig.json``,
``input/data/<channel>/``. Outputs: ``model/`` (SageMaker - or Roost's job
runner - packs it into ``model.tar.gz``), ``output/data/`` (metrics), and on
error ``output/failure``, whose text becomes the job's ``FailureReason``:
``ClientError: ...`` for the user's mistakes, ``AlgorithmError: ...`` for ours.
"""

from __future__ import annotations

import logging
import logging.handlers
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from pathlib import Path

import torch

from roost.algorithm.distributed import (
    PROCS_ENV,
    SINGLE,
    ProcessPlan,
    World,
    host_log,
    leave,
    process_plan,
    rendezvous,
    world_for,
)
from roost.algorithm.hyperparameters import HyperParameters, parse_hyperparameters
from roost.algorithm.layout import IMAGE, RECORDIO, SEED_ENV, ChannelConfig, JobLayout, ResourceConfig
from roost.algorithm.train import BatchHook, train
from roost.data.channels import (
    ChannelData,
    ChannelError,
    channel_class_names,
    check_disjoint,
    find_lst,
    find_rec_files,
    folder_samples,
    lst_samples,
    manifest_samples,
    recordio_samples,
)
from roost.errors import UserError
from roost.formats.manifest import find_manifest, guess_attribute_names
from roost.system import STOP_REQUESTED, THREADS_ENV, cpu_budget, die_with_parent, free_port, stop_on_sigterm

log = logging.getLogger("roost.algorithm")

#: the keys of the container's own default-input.json (docs/sagemaker.md, "Container defaults")
DEFAULT_KEYS = (
    "beta_1",
    "beta_2",
    "eps",
    "gamma",
    "optimizer",
    "momentum",
    "weight_decay",
    "learning_rate",
    "lr_scheduler_factor",
    "epochs",
    "num_layers",
    "image_shape",
    "precision_dtype",
    "mini_batch_size",
    "use_pretrained_model",
)
CLIENT_ERRORS = (UserError, FileNotFoundError)


def job_seed() -> int:
    """The run's seed from ``ROOST_SEED``; a value that is not a number from 0 to 2**32-1 is the user's error."""
    text = os.environ.get(SEED_ENV, "0").strip() or "0"
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if not 0 <= seed < 2**32:
        raise UserError(f"{SEED_ENV}={text!r} is not a seed: give a whole number from 0 to {2**32 - 1}")
    return seed


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


def _defaults() -> dict[str, str]:
    fields = HyperParameters.model_fields
    out = {}
    for k in DEFAULT_KEYS:
        v = fields[k].default
        out[k] = ",".join(map(str, v)) if isinstance(v, tuple) else str(v)
    return out


IMAGE_TYPES = {IMAGE, "image/jpeg", "image/png"}


def resolve_channel(
    layout: JobLayout, name: str, config: ChannelConfig, hp: HyperParameters, confine: bool = True
) -> ChannelData:
    """A ``train``/``validation`` channel, by its content type: RecordIO, images (+ ``<name>_lst``), or a manifest.

    ``confine``: lists and manifests may name only files of their own channel (always, in the container).
    """
    folder = layout.channel(name)
    if not folder.exists():
        raise ChannelError(
            f"no {name!r} channel: the algorithm needs a 'train' and a 'validation' channel ({folder} missing)"
        )
    ctype, params = config.media_type(folder)
    multi = bool(hp.multi_label)
    if ctype == RECORDIO and config.is_augmented_manifest:
        manifest = find_manifest(folder)
        attributes = list(config.attribute_names or guess_attribute_names(manifest))
        log.info("Reading the augmented manifest %s (attributes %s)", manifest, attributes)
        samples = manifest_samples(
            manifest,
            attributes,
            params.get("label-format", "multi-hot"),
            hp.num_classes,
            multi,
            confine_to=folder if confine else None,
        )
        return ChannelData(samples, [], channel_class_names(folder, hp.num_classes))
    if ctype == RECORDIO:
        log.info("Searching for .rec files in %s.", folder)
        files = find_rec_files(folder)
        return ChannelData(
            recordio_samples(files, hp.num_classes, multi), files, channel_class_names(folder, hp.num_classes)
        )
    if ctype in IMAGE_TYPES:
        lst_channel = layout.channel(f"{name}_lst")
        if lst_channel.exists():
            log.info("Searching for .lst files in %s.", lst_channel)
            lst = find_lst(lst_channel)
            samples = lst_samples(lst, folder, hp.num_classes, multi, confine)
            return ChannelData(samples, [], channel_class_names(folder, hp.num_classes))
        if multi:
            raise ChannelError(
                f"multi_label=1 with image files needs a {name}_lst channel with one 0/1 label per class"
            )
        samples, names = folder_samples(folder, confine=confine)
        if len(names) != hp.num_classes:
            raise ChannelError(
                f"{folder} has {len(names)} class folders ({', '.join(names[:8])}) but num_classes={hp.num_classes}"
            )
        log.info("%s: %d images in %d class folders, no .lst needed", folder, len(samples), len(names))
        return ChannelData(samples, [], names)
    raise ChannelError(
        f"channel {name!r} has ContentType {ctype!r}; use application/x-recordio (.rec files or an augmented "
        "manifest), or application/x-image, image/jpeg, image/png (image files)"
    )


def _model_channel(layout: JobLayout) -> Path | None:
    folder = layout.channel("model")
    if not folder.exists():
        return None
    if folder.is_file():
        return folder
    found = sorted(p for p in folder.iterdir() if p.name.endswith((".tar.gz", ".tgz")))
    if len(found) != 1:
        raise ChannelError(f"the model channel {folder} must hold exactly one model.tar.gz, found {len(found)}")
    return found[0]


def run_training(
    root: Path,
    *,
    on_batch: BatchHook | None = None,
    workers: int | None = None,
    entrypoint: bool = False,
    cpu_bf16: bool | None = None,
    confine: bool = True,
) -> int:
    """Train on the job folder ``root``; returns the exit status (0 success, 1 client error, 2 algorithm error).

    ``confine`` keeps every list and manifest entry inside its channel; ``roost train`` on the user's own files
    turns it off (and warns instead). The host trains as its process plan says
    (:func:`roost.algorithm.distributed.process_plan`): one process per GPU; on CPUs one process, or one
    single-thread process per core for small images. With several hosts in ``resourceconfig.json``, or several
    processes, it joins the job's process group (``roost.algorithm.distributed``).
    """
    layout = JobLayout(root)
    setup_logging()
    if entrypoint:
        # StopTrainingJob: SageMaker (and Roost's runner) send SIGTERM, then SIGKILL after a grace period
        stop_on_sigterm()
        log.info("Docker entrypoint called with argument(s): train")
    layout.output.mkdir(parents=True, exist_ok=True)
    layout.failure.unlink(missing_ok=True)
    try:
        resources = layout.read_resources()
        plan = _process_plan(layout)
    except CLIENT_ERRORS as err:
        return _client_error(layout, err)
    if len(resources.hosts) == 1 and plan.processes == 1:
        return _train_here(layout, SINGLE, resources, on_batch, workers, cpu_bf16, confine, plan)
    if plan.processes == 1:
        world = world_for(resources.hosts, resources.current_host, 0, 1)
        return _train_here(layout, world, resources, on_batch, workers, cpu_bf16, confine, plan)
    return _train_processes(layout, resources, plan, on_batch, workers, cpu_bf16, confine)


def _process_plan(layout: JobLayout) -> ProcessPlan:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    try:
        hp = parse_hyperparameters(layout.read_hyperparameters())
        shape, batch, images = hp.image_shape, hp.mini_batch_size, hp.num_training_samples * hp.epochs
    except CLIENT_ERRORS:  # reported where training starts, after SageMaker's configuration lines
        shape, batch, images = (3, 224, 224), 1, 0
    return process_plan(shape, batch, images, cpu_budget(), gpus, os.environ.get(PROCS_ENV))


def _train_processes(
    layout: JobLayout,
    resources: ResourceConfig,
    plan: ProcessPlan,
    on_batch: BatchHook | None,
    workers: int | None,
    cpu_bf16,
    confine: bool,
) -> int:
    """The host's processes (one per GPU, or one per core); the host's status is the first failure among them,
    else success. Their log records and the first one's progress come back here, to this process's handlers (a
    ``roost train`` log file, its progress bar) as if they had trained here."""
    context = multiprocessing.get_context("spawn")  # CUDA cannot be forked into
    if len(resources.hosts) == 1 and not os.environ.get("MASTER_ADDR"):  # alone: its processes meet on loopback
        os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port()))
    events = context.Queue()
    threads = None if torch.cuda.is_available() else plan.threads
    children = [
        context.Process(
            target=_host_process,
            args=(str(layout.root), resources, rank, plan, threads, workers, cpu_bf16, confine),
            kwargs={"parent": os.getpid(), "events": events, "progress": on_batch is not None and rank == 0},
            name=f"roost-{resources.current_host}-{rank}",
        )
        for rank in range(plan.processes)
    ]
    relay = threading.Thread(target=_relay, args=(events, on_batch), daemon=True)
    relay.start()
    for child in children:
        child.start()
    forwarded = False
    try:
        while any(c.is_alive() for c in children):
            failed = [c for c in children if c.exitcode not in (None, 0)]
            if failed:  # the rest would wait for it in their next all-reduce: end them
                for c in children:
                    if c.is_alive():
                        c.terminate()
            if STOP_REQUESTED.is_set() and not forwarded:  # StopTrainingJob reached this host: pass it on once
                forwarded = True
                for c in children:
                    if c.is_alive() and c.pid:
                        os.kill(c.pid, signal.SIGTERM)
            for c in children:
                c.join(timeout=0.5)
    finally:
        for c in children:
            if c.is_alive():
                c.kill()
                c.join()
        events.put(None)
        relay.join(timeout=10)
    codes = [c.exitcode or 0 for c in children]
    return next((code for code in codes if code not in (0, -signal.SIGTERM)), 0)


def _relay(events, on_batch: BatchHook | None) -> None:
    """Log records and progress from the host's processes, handed to this process's loggers and hook."""
    while (event := events.get()) is not None:
        if isinstance(event, logging.LogRecord):
            logging.getLogger(event.name).handle(event)
        elif on_batch is not None:
            on_batch(*event)


def _host_process(
    root: str,
    resources,
    local_rank,
    plan: ProcessPlan,
    threads: int | None,
    workers,
    cpu_bf16,
    confine,
    *,
    parent: int,
    events,
    progress: bool,
) -> None:
    die_with_parent(parent)
    stop_on_sigterm()
    if threads is not None:  # this process's share of the host's cores (its loader workers too)
        os.environ[THREADS_ENV] = str(threads)
    logger = logging.getLogger("roost")
    logger.handlers = [logging.handlers.QueueHandler(events)]
    logger.setLevel(logging.INFO)
    world = world_for(resources.hosts, resources.current_host, local_rank, plan.processes)

    def on_batch(phase: str, epoch: int, done: int, total: int) -> None:
        events.put((phase, epoch, done, total))

    hook = on_batch if progress else None
    sys.exit(_train_here(JobLayout(Path(root)), world, resources, hook, workers, cpu_bf16, confine, plan))


def _client_error(layout: JobLayout, err: Exception) -> int:
    message = str(err)
    log.error("Customer Error: %s", message)
    layout.write_failure(f"ClientError: {message}")
    return 1


def _train_here(
    layout: JobLayout,
    world: World,
    resources: ResourceConfig,
    on_batch: BatchHook | None,
    workers: int | None,
    cpu_bf16: bool | None,
    confine: bool,
    plan: ProcessPlan,
) -> int:
    main = world.is_main
    finished = False
    try:
        if world.distributed:
            rendezvous(world, resources.network_interface_name)
        if not main:  # SageMaker's lines once, from the first host; the others say who they are and what fails
            logging.getLogger("roost.algorithm").setLevel(logging.WARNING)
        log.info("Reading default configuration from %s: %s", "roost/algorithm/hyperparameters.py", _defaults())
        provided = layout.read_hyperparameters()
        log.info("Merging with provided configuration from %s: %s", layout.hyperparameters_file, provided)
        hp = parse_hyperparameters(provided)
        log.info("Final configuration: %s", {**_defaults(), **hp.to_strings()})
        log.info("Process plan: %s", plan)
        channels = layout.read_channels()
        train_data = resolve_channel(layout, "train", channels.get("train", ChannelConfig()), hp, confine)
        validation_data = resolve_channel(
            layout, "validation", channels.get("validation", ChannelConfig()), hp, confine
        )
        for data, name in ((train_data, "train"), (validation_data, "validation")):
            data.sharded_by_host = channels.get(name, ChannelConfig()).s3_distribution_type == "ShardedByS3Key"
        check_disjoint(train_data.samples, validation_data.samples)
        seed = job_seed()
        if seed:
            log.info("Random seed %d (%s)", seed, SEED_ENV)
        result = train(
            hp,
            train_data,
            validation_data,
            layout.model,
            layout.output_data,
            model_channel=_model_channel(layout),
            checkpoint_dir=layout.checkpoints if layout.checkpoints.is_dir() else None,
            on_batch=on_batch,
            workers=workers,
            cpu_bf16=cpu_bf16,
            world=world,
            seed=seed,
        )
        if main:
            log.info("Training finished after %d epochs; the model is %s", result.epochs_run, result.model_file)
        else:
            host_log.info("%s (rank %d) finished its share of %d epochs", world.host, world.rank, result.epochs_run)
        finished = True
        return 0
    except CLIENT_ERRORS as err:
        return _client_error(layout, err)
    except Exception as err:  # noqa: BLE001 - every failure must leave a FailureReason
        log.error("Algorithm error:\n%s", traceback.format_exc())
        layout.write_failure(f"AlgorithmError: {type(err).__name__}: {err}")
        return 2
    finally:
        leave(world, finished)
