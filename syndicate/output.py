"""Writing the output folder: atomic, only when bytes change, and pruning stale feeds.

A run killed at any point leaves every file either old or new, never half-written:
each file goes to a temporary sibling, is flushed to disk, then renamed over the old one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from syndicate.errors import OutputError

MANIFEST = ".syndicate-manifest.json"


def write_atomic(path: Path, data: bytes) -> bool:
    """Write `data` to `path` atomically; return False (and touch nothing) if unchanged."""
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise OutputError(f"{path}: is a folder, cannot write a file there") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).chmod(0o644)
            Path(tmp).replace(path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise OutputError(
            f"{path}: cannot write: {exc.strerror}", "check that the output folder is writable"
        ) from None
    return True


def write_outputs(out_dir: Path, files: Mapping[str, bytes]) -> tuple[list[str], list[str]]:
    """Write every file (relative path -> bytes); remove files a previous build wrote that
    this one no longer produces (a tag nobody uses any more). -> (written, removed)."""
    written = [name for name, data in sorted(files.items()) if write_atomic(out_dir / name, data)]
    previous = read_manifest(out_dir)
    removed = []
    for name in sorted(previous - set(files)):
        target = out_dir / name
        if _inside(out_dir, target) and target.is_file():
            target.unlink()
            removed.append(name)
            _remove_empty_parents(out_dir, target.parent)
    manifest = json.dumps(sorted(files), indent=0).encode() + b"\n"
    write_atomic(out_dir / MANIFEST, manifest)
    return written, removed


def read_manifest(out_dir: Path) -> set[str]:
    """The files the last build wrote (empty if there is no readable manifest)."""
    try:
        names = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return set()
    return {n for n in names if isinstance(n, str)} if isinstance(names, list) else set()


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _remove_empty_parents(root: Path, folder: Path) -> None:
    while folder != root and _inside(root, folder):
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent
