"""Where the shipped templates live (the top-level templates/ folder)."""

from __future__ import annotations

import sys
from pathlib import Path


def templates_dir() -> Path:
    """The shipped templates: beside the package in a checkout or editable install,
    else under the installation prefix (share/syndicate/templates) for a wheel."""
    candidates = (
        Path(__file__).resolve().parent.parent / "templates",
        Path(sys.prefix) / "share" / "syndicate" / "templates",
    )
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    return candidates[0]


def read_template(name: str) -> bytes:
    """The bytes of a shipped template file."""
    return (templates_dir() / name).read_bytes()
