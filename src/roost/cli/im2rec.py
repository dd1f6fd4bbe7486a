"""``roost im2rec``: MXNet's ``tools/im2rec.py`` command line, option for option.

It is parsed with argparse, as MXNet parses it, so that every existing script
keeps working when ``python im2rec.py`` becomes ``roost im2rec``: the same
``--exts .jpg .png`` lists, the same defaults, even the same abbreviations.
"""

from __future__ import annotations

import argparse
import os
import sys

from roost.cli import ui
from roost.data import im2rec as core
from roost.data.images import DEFAULT_EXTS
from roost.errors import UserError
from roost.system import available_cores


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roost im2rec",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        description=(
            "Create an image list or make a record database by reading from an image list. "
            "A drop-in replacement for MXNet's tools/im2rec.py: same options, same files. "
            "Roost skips unreadable images with a warning (and counts them) instead of crashing, "
            "writes .rec/.idx atomically, and keeps list order with any --num-thread."
        ),
    )
    parser.add_argument("prefix", help="prefix of input/output lst and rec files.")
    parser.add_argument("root", help="path to folder containing images.")

    cgroup = parser.add_argument_group("Options for creating image lists")
    cgroup.add_argument(
        "--list",
        action="store_true",
        help="If this is set im2rec will create image list(s) by traversing root folder "
        "and output to <prefix>.lst. Otherwise im2rec will read <prefix>.lst and create a database at <prefix>.rec",
    )
    cgroup.add_argument("--exts", nargs="+", default=list(DEFAULT_EXTS), help="list of acceptable image extensions.")
    cgroup.add_argument("--chunks", type=int, default=1, help="number of chunks.")
    cgroup.add_argument("--train-ratio", type=float, default=1.0, help="Ratio of images to use for training.")
    cgroup.add_argument("--test-ratio", type=float, default=0, help="Ratio of images to use for testing.")
    cgroup.add_argument(
        "--recursive",
        action="store_true",
        help="If true recursively walk through subdirs and assign an unique label to images in each folder. "
        "Otherwise only include images in the root folder and give them label 0.",
    )
    cgroup.add_argument(
        "--no-shuffle",
        dest="shuffle",
        action="store_false",
        help="If this is passed, im2rec will not randomize the image order in <prefix>.lst",
    )

    rgroup = parser.add_argument_group("Options for creating database")
    rgroup.add_argument(
        "--pass-through", action="store_true", help="whether to skip transformation and save image as is"
    )
    rgroup.add_argument(
        "--resize",
        type=int,
        default=0,
        help="resize the shorter edge of image to the newsize, original images will be packed by default.",
    )
    rgroup.add_argument(
        "--center-crop", action="store_true", help="specify whether to crop the center image to make it rectangular."
    )
    rgroup.add_argument(
        "--quality", type=int, default=95, help="JPEG quality for encoding, 1-100; or PNG compression for encoding, 1-9"
    )
    rgroup.add_argument(
        "--num-thread",
        type=int,
        default=available_cores(),
        help="number of worker processes for encoding (MXNet's default is 1; Roost uses every core). "
        "Output order always equals list order.",
    )
    rgroup.add_argument(
        "--color",
        type=int,
        default=1,
        choices=[-1, 0, 1],
        help="specify the color mode of the loaded image. 1: Loads a color image. Any transparency of image "
        "will be neglected. "
        "It is the default flag. 0: Loads image in grayscale mode. -1:Loads image as such including alpha channel.",
    )
    rgroup.add_argument(
        "--encoding", type=str, default=".jpg", choices=[".jpg", ".png"], help="specify the encoding of the images."
    )
    rgroup.add_argument(
        "--pack-label", action="store_true", help="Whether to also pack multi dimensional label in the record file"
    )

    xgroup = parser.add_argument_group("Roost additions")
    xgroup.add_argument(
        "--strict",
        action="store_true",
        help="exit with status 1 if any image could not be packed (the .rec is still written without it)",
    )
    return parser


def _check_ratios(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.chunks < 1:
        parser.error(f"--chunks must be at least 1, got {args.chunks}")
    if not 0 <= args.train_ratio <= 1 or not 0 <= args.test_ratio <= 1:
        parser.error(f"--train-ratio ({args.train_ratio}) and --test-ratio ({args.test_ratio}) must be between 0 and 1")
    if args.train_ratio + args.test_ratio > 1:
        parser.error(f"--train-ratio + --test-ratio is {args.train_ratio + args.test_ratio:g}; it must not exceed 1")
    if args.num_thread < 1:
        parser.error(f"--num-thread must be at least 1, got {args.num_thread}")
    if args.resize < 0:
        parser.error(f"--resize must be a positive number of pixels (or 0 for no resizing), got {args.resize}")


def run_list_mode(args: argparse.Namespace) -> int:
    listing, files = core.make_lists(
        args.prefix,
        args.root,
        recursive=args.recursive,
        exts=args.exts,
        chunks=args.chunks,
        train_ratio=args.train_ratio,
        test_ratio=args.test_ratio,
        shuffle=args.shuffle,
    )
    if args.recursive:
        for folder, label in listing.folders:
            print(folder, label)
    if not listing.entries:
        ui.err.print(
            f"[yellow]warning:[/] no images with extensions {' '.join(args.exts)} found in {args.root}"
            + ("" if args.recursive else " (add --recursive to walk class sub-folders)")
        )
    for name, entries in files.items():
        ui.err.print(f"wrote {os.path.relpath(name)} ({len(entries)} images)")
    return 0


def run_rec_mode(args: argparse.Namespace) -> int:
    opts = core.EncodeOptions(
        pass_through=args.pass_through,
        resize=args.resize,
        center_crop=args.center_crop,
        quality=args.quality,
        color=args.color,
        encoding=args.encoding,
        pack_label=args.pack_label,
    )
    working_dir, lists = core.find_lists(args.prefix)
    if not lists:
        ui.err.print(
            f"[red]error:[/] Did not find and list file with prefix {args.prefix} "
            f"(no .lst file in {working_dir} starts with that name). Create one first: "
            f"roost im2rec --list --recursive {args.prefix} {args.root}"
        )
        return 1
    any_skipped = False
    for lst in lists:
        print("Creating .rec file from", lst, "in", working_dir, flush=True)
        with ui.progress() as bar:
            task = bar.add_task(os.path.basename(lst), total=None)

            def on_progress(done: int, total: int, task=task) -> None:
                bar.update(task, completed=done, total=total)

            def on_skip(path: str, reason: str) -> None:
                bar.console.print(f"[yellow]skipped[/] {reason}")

            summary = core.pack_list(
                lst, args.root, opts, num_workers=args.num_thread, on_progress=on_progress, on_skip=on_skip
            )
        any_skipped |= bool(summary.skipped)
        _print_summary(summary)
    return 1 if (args.strict and any_skipped) else 0


def _print_summary(s: core.PackSummary) -> None:
    style = "yellow" if s.skipped or s.bad_lines else "green"
    ui.err.print(
        f"[{style}]{os.path.relpath(s.rec)}[/]: {s.written} of {s.total} images packed, "
        f"{len(s.skipped)} skipped, {s.bytes / 1e6:.1f} MB, {s.seconds:.1f} s ({s.images_per_second:,.0f} img/s)"
    )
    for path, _ in s.skipped:
        ui.err.print(f"  skipped: {path}")
    if s.bad_lines:
        ui.err.print(f"  {len(s.bad_lines)} malformed line(s) in {s.lst} were ignored")


def main(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_ratios(parser, args)
    args.prefix = os.path.abspath(args.prefix)
    args.root = os.path.abspath(args.root)
    if not os.path.isdir(args.root):
        parser.error(f"image folder {args.root} does not exist")
    ui.setup_logging()
    return run_list_mode(args) if args.list else run_rec_mode(args)


if __name__ == "__main__":  # pragma: no cover - `python -m roost.cli.im2rec`: a user's mistake is one line
    try:
        sys.exit(main(sys.argv[1:]))
    except UserError as err:
        sys.exit(f"Error: {err}")
