"""``roost explore``: the report on the terminal (or as JSON) and its pictures."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from roost.data.explore import Report


def _fmt(v) -> str:
    return "-" if v is None else f"{v:g}"


def render(report: Report, console: Console) -> None:
    what = {"folder": "folder of class folders", "lst": "image list", "rec": "RecordIO file"}[report.kind]
    console.print(
        f"[bold]{report.source}[/] ({what}): {report.images} images, {len(report.classes)} classes"
        + (", multi-label" if report.multi_label else "")
    )
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("id", justify="right")
    table.add_column("class")
    table.add_column("images", justify="right")
    table.add_column("unreadable", justify="right")
    table.add_column("share")
    top = max((c.images for c in report.classes), default=0) or 1
    for c in report.classes:
        bar = "█" * max(0, round(24 * c.images / top))
        table.add_row(str(c.id), c.name, str(c.images), str(c.unreadable or ""), f"[cyan]{bar}[/]")
    console.print(table)

    s = report.sizes
    if s["width"]:
        sizes = Table(title="Image sizes (px)", show_edge=False, pad_edge=False, title_justify="left")
        for col in ("", "min", "median", "max"):
            sizes.add_column(col, justify="right")
        for key, label in (("width", "width"), ("height", "height"), ("short_side", "shorter side")):
            sizes.add_row(label, *(_fmt(s[key][k]) for k in ("min", "median", "max")))
        console.print(sizes)
        hist = s["histogram"]
        top = max(hist["counts"]) or 1
        console.print(f"Histogram of the {hist['of']}:")
        edges = hist["edges"]
        for lo, hi, n in zip(edges, edges[1:], hist["counts"], strict=False):
            console.print(f"  {lo:>7.0f} - {hi:<7.0f} {n:>6}  [cyan]{'█' * round(30 * n / top)}[/]")
    if report.image_shape is not None and report.smaller_than_shape == 0:
        console.print(f"All images are at least {report.image_shape[1]}x{report.image_shape[2]}.")
    use = " ".join(f"{k}={v}" for k, v in report.hyperparameters().items())
    console.print(f"To train on it: [bold]{use}[/]")
    if report.warnings:
        console.print("[bold yellow]Warnings[/]")
        for w in report.warnings:
            console.print(f"  [yellow]![/] {w}")
    else:
        console.print("[green]No warnings.[/]")
