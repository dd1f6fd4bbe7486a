#!/usr/bin/env python3
"""Rewrite the generated parts of docs/: the hyperparameter table and the API operations table.

Each part sits between ``<!-- generated: NAME -->`` and ``<!-- end generated -->``;
the tests fail when one is out of date. Run after changing the schema or an operation:
``.venv/bin/python scripts/generate-docs.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from roost.algorithm.hyperparameters import markdown_table
from roost.api.compatibility import operations_table

DOCS = Path(__file__).resolve().parent.parent / "docs"
PARTS = {
    ("hyperparameters.md", "hyperparameters"): markdown_table,
    ("compatibility.md", "operations"): operations_table,
}


def main() -> int:
    for (doc, name), generate in PARTS.items():
        path = DOCS / doc
        text = path.read_text()
        start, end = f"<!-- generated: {name} -->\n", "<!-- end generated -->"
        if start not in text:
            print(f"{path}: no '{start.strip()}' marker", file=sys.stderr)
            return 1
        head, rest = text.split(start, 1)
        tail = rest.split(end, 1)[1]
        path.write_text(head + start + generate().strip() + "\n" + end + tail)
        print(f"wrote {path} ({name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
