"""The data commands: ``roost im2rec`` (MXNet's, same options), ``roost pack``, ``roost explore`` and ``roost
sample-data`` (Lab 1)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from roost.cli import ui


@click.command(
    "im2rec",
    short_help="Make .lst lists and pack .rec files (MXNet's im2rec.py).",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []},
    add_help_option=False,
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def im2rec_cmd(args: tuple[str, ...]) -> None:
    """Make .lst image lists and pack them into .rec files (MXNet's im2rec.py, same options)."""
    from roost.cli.im2rec import main

    sys.exit(main(list(args)))


@click.command("pack", short_help="Class folders to train/val .rec files and classes.json.")
@click.argument("images", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--val-ratio",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Share of each class's images that goes to val.rec.",
)
@click.option(
    "--test-ratio",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Share of each class's images that goes to test.rec (none by default).",
)
@click.option(
    "--resize",
    default=0,
    show_default=True,
    type=click.IntRange(min=0),
    help="Resize the shorter side to this many pixels (0 keeps the size).",
)
@click.option("--center-crop", is_flag=True, help="Crop the centre square before resizing.")
@click.option("--quality", default=95, show_default=True, type=click.IntRange(1, 100), help="JPEG quality.")
@click.option("--encoding", default=".jpg", show_default=True, type=click.Choice([".jpg", ".png"]))
@click.option(
    "--color",
    default=1,
    show_default=True,
    type=click.Choice(["-1", "0", "1"]),
    help="1 colour, 0 greyscale, -1 unchanged (as im2rec --color).",
)
@click.option("--pass-through", is_flag=True, help="Store the original file bytes, no re-encoding.")
@click.option(
    "--num-thread",
    "num_workers",
    default=None,
    type=click.IntRange(min=1),
    help="Worker processes (default: every core).",
)
@click.option("--seed", default=100, show_default=True, help="Seed of the shuffle and split.")
def pack_cmd(
    images: Path,
    out_dir: Path,
    val_ratio,
    test_ratio,
    resize,
    center_crop,
    quality,
    encoding,
    color,
    pass_through,
    num_workers,
    seed,
) -> None:
    """One step from a folder of class folders to train/val .rec files and classes.json.

    IMAGES holds one sub-folder per class (images may sit at any depth below
    it; hidden files are ignored). OUT_DIR receives train.lst/.rec/.idx,
    val.lst/.rec/.idx (and test.* with --test-ratio) and classes.json, the
    class names by id. The split is stratified: every class gives the same
    share of its images to validation.
    """
    from roost.data import im2rec as core
    from roost.formats import classes
    from roost.formats.lst import write_list
    from roost.system import available_cores

    ui.setup_logging()
    try:
        split = core.split_class_folders(images, val_ratio=val_ratio, test_ratio=test_ratio, seed=seed)
    except (core.DatasetLayoutError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    for label, name in enumerate(split.classes):
        click.echo(f"{name} {label}")
    classes.write(out_dir / classes.FILE, split.classes)
    opts = core.EncodeOptions(
        pass_through=pass_through,
        resize=resize,
        center_crop=center_crop,
        quality=quality,
        color=int(color),
        encoding=encoding,
    )
    workers = num_workers or available_cores()
    total_skipped = train_written = 0
    for part, entries in (("train", split.train), ("val", split.val), ("test", split.test)):
        if not entries:
            continue
        lst = out_dir / f"{part}.lst"
        write_list(lst, entries)
        with ui.progress() as bar:
            task = bar.add_task(f"{part}.rec", total=len(entries))
            summary = core.pack_list(
                lst,
                images,
                opts,
                num_workers=workers,
                on_progress=lambda done, total: bar.update(task, completed=done),  # noqa: B023 - used at once
                on_skip=lambda path, reason: bar.console.print(f"[yellow]skipped[/] {reason}"),
            )
        total_skipped += len(summary.skipped)
        if part == "train":
            train_written = summary.written
        ui.err.print(
            f"{os.path.relpath(summary.rec)}: {summary.written} images "
            f"({len(summary.skipped)} skipped), {summary.bytes / 1e6:.1f} MB, {summary.images_per_second:,.0f} img/s"
        )
    ui.err.print(
        f"{len(split.classes)} classes -> {os.path.relpath(out_dir / 'classes.json')}; "
        f"use num_classes={len(split.classes)} num_training_samples={train_written}"
        + (f"; [yellow]{total_skipped} unreadable image(s) skipped[/]" if total_skipped else "")
    )


@click.command("explore", short_help="Classes, sizes, samples and warnings of a data set.")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--root",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Image folder an .lst's paths are relative to (default: the .lst's folder).",
)
@click.option(
    "--image-shape",
    callback=ui.image_shape_option,
    metavar="C,H,W",
    help="Warn about images smaller than this training shape, e.g. 3,224,224.",
)
@click.option(
    "--min-per-class",
    default=10,
    show_default=True,
    type=click.IntRange(min=1),
    help="Warn about classes with fewer images.",
)
@click.option(
    "--imbalance-ratio",
    default=3.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Warn when the largest class is this many times the smallest.",
)
@click.option(
    "--grid",
    "grid_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write a PNG grid of sample images per class here.",
)
@click.option(
    "--samples", default=6, show_default=True, type=click.IntRange(1, 8), help="Samples per class in the grid."
)
@click.option(
    "--size-plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a PNG histogram of image sizes here."
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@click.option(
    "--num-thread",
    "num_workers",
    default=None,
    type=click.IntRange(min=1),
    help="Worker processes for decoding (default: every core).",
)
def explore_cmd(
    source, root, image_shape, min_per_class, imbalance_ratio, grid_path, samples, size_plot, as_json, num_workers
) -> None:
    """Explore a data set: images per class, sizes, sample grid and warnings.

    SOURCE is a folder of class folders, an .lst (with --root) or a .rec file.
    Class names come from the folder names, or from a classes.json beside the
    .lst/.rec (as written by roost pack).
    """
    from roost.cli.explore import render
    from roost.data import explore as ex
    from roost.system import available_cores

    with ui.progress() as bar:
        task = bar.add_task("decoding", total=None)
        try:
            report, picks = ex.explore(
                source,
                root=root,
                image_shape=image_shape,
                min_per_class=min_per_class,
                imbalance_ratio=imbalance_ratio,
                num_workers=num_workers or available_cores(),
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except (ValueError, OSError) as err:
            raise click.ClickException(str(err)) from None
    if grid_path:
        ex.save_sample_grid(report, picks, grid_path, per_class=samples)
    if size_plot:
        ex.save_size_plot(report, size_plot)
    if as_json:
        click.echo(report.to_json())
    else:
        render(report, ui.out())
        for label, path in (("sample grid", grid_path), ("size histogram", size_plot)):
            if path:
                click.echo(f"{label}: {path}")


@click.command("sample-data", short_help="Real sample images (animal silhouettes) as class folders.")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--per-class", default=60, show_default=True, type=click.IntRange(1, 1000), help="Images per class.")
@click.option("--classes", default=None, help="Comma-separated subset, e.g. bird,cat,dog (default: all ten).")
def sample_data_cmd(out: Path, per_class: int, classes: str | None) -> None:
    """Write the animal-mnist silhouettes (bear, bird, cat, ... zebra; 28x28) to OUT/<class>/.

    Real images that ship inside the animal-mnist package, for trying Roost
    without a data set of your own.
    """
    from roost.data.samples import ANIMAL_CLASSES, export_animal_shapes

    names = [c.strip() for c in classes.split(",")] if classes else list(ANIMAL_CLASSES)
    try:
        export_animal_shapes(out, per_class, names)
    except (ModuleNotFoundError, ValueError) as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"wrote {len(names)} classes x {per_class} images to {out}")
