"""Lab 1 in the console: the exploration of a data location, by the code of ``roost explore``."""

from __future__ import annotations

import base64
import tempfile
from pathlib import Path

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from roost.data.explore import Report, explore, save_sample_grid
from roost.errors import UserError
from roost.storage.uri import Location
from roost.web.common import console_of, require_user

router = APIRouter()


def _explore(location: Path, root: Path | None) -> tuple[Report, str]:
    report, picks = explore(location, root=root, refuse_outside=True)
    with tempfile.TemporaryDirectory() as tmp:
        grid = save_sample_grid(report, picks, Path(tmp) / "samples.png")
        png = base64.b64encode(grid.read_bytes()).decode()
    return report, png


def _local(text: str) -> Path:
    loc = Location.parse(text.strip())
    if loc.scheme != "file":
        raise UserError(f"{text}: the console explores local folders and files (a path or file:// URI)")
    return Path(loc.key)


@router.get("/data")
async def data_page(request: Request, location: str = "", root: str = "", user: str = Depends(require_user)):
    console = console_of(request)
    report = grid = error = None
    if location:
        try:
            path = console.roots.check(_local(location), "The location")
            root_path = console.roots.check(_local(root), "The image root") if root else None
            if not path.exists():
                raise UserError(f"{location} does not exist")
            report, grid = await run_in_threadpool(_explore, path, root_path)
        except (UserError, OSError, ValueError) as err:
            error = str(err)
    status = 400 if error else 200
    return console.page(
        request, "data.html", status, location=location, root=root, report=report, grid=grid, error=error
    )
