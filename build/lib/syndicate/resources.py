"""Where the shipped templates live.

In the repository they are the top-level templates/ folder; pyproject.toml ships that
folder inside the package as `syndicate/templates`, so an installed wheel finds them
through importlib.resources wherever it is installed and whatever the working directory.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

CHECKOUT_TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


@functools.cache
def templates_dir() -> Path:
    """The shipped templates as a real folder (Jinja's FileSystemLoader needs one)."""
    # `syndicate` is a regular package on disk, so files() is a real path (no zip imports).
    packaged = Path(str(resources.files("syndicate") / "templates"))
    for candidate in (packaged, CHECKOUT_TEMPLATES):
        if (candidate / "digest.mjml.j2").is_file():
            return candidate
    return packaged


def read_template(name: str) -> bytes:
    """The bytes of a shipped template file."""
    return (templates_dir() / name).read_bytes()
