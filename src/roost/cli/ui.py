"""Terminal plumbing shared by the commands: one stderr console, progress bars, logging."""

from __future__ import annotations

import logging
import sys

import click
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

# stdout carries what MXNet's tools print (scripts parse it); everything Roost
# adds - progress, warnings, summaries - goes to stderr.
err = Console(stderr=True, highlight=False, soft_wrap=True)  # messages stay whole lines in logs and pipes

#: the width results are laid out in when stdout is not a terminal: wide enough that no row is ever cut
PIPE_WIDTH = 100_000


def out() -> Console:
    """The console results go to on stdout (tables, reports): a terminal's width on a terminal; through a pipe or
    into a file, whole rows, never a number cut to fit 80 columns (``--json`` stays the format for programs)."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else PIPE_WIDTH)


class RateColumn(ProgressColumn):
    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} {self.unit}" if speed else f"- {self.unit}", style="progress.data.speed")


def progress(unit: str = "img/s") -> Progress:
    """A progress bar with count, rate and ETA; silent when stderr is not a terminal."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err, show_time=False, show_path=False, markup=False)],
        force=True,
    )


def image_shape_option(ctx, param, value):
    """``--image-shape C,H,W`` checked by the hyperparameter schema's own rule."""
    if value is None:
        return None
    from roost.algorithm.hyperparameters import parse_image_shape

    try:
        return parse_image_shape(value)
    except ValueError as err:
        raise click.BadParameter(f"{value!r}: {err}") from None
