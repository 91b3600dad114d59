"""Writing the output folder: atomic, only when bytes change, and pruning stale feeds.

A run killed at any point leaves every file either old or new, never half-written:
each file goes to a temporary sibling, is flushed to disk, then renamed over the old one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    except OSError as exc:
        raise OutputError(
            f"{path}: cannot read the existing file: {exc.strerror}",
            "check that the output folder is a folder and writable (output.dir)",
        ) from None
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


def write_outputs(
    out_dir: Path, files: Mapping[str, bytes], fingerprint: str = ""
) -> tuple[list[str], list[str]]:
    """Write every file (relative path -> bytes); remove files a previous build wrote that
    this one no longer produces (a tag nobody uses any more). -> (written, removed).

    The manifest, written last, records each file's hash and the `fingerprint` of the
    inputs that are not posts (config, templates), so `outputs_intact` can tell later
    whether the folder still holds exactly what this build wrote.
    """
    sweep_temporary_files(out_dir)
    written = [name for name, data in sorted(files.items()) if write_atomic(out_dir / name, data)]
    previous = read_manifest(out_dir)
    removed = []
    for name in sorted(set(previous.get("files", {})) - set(files)):
        target = out_dir / name
        if _inside(out_dir, target) and target.is_file():
            target.unlink()
            removed.append(name)
            _remove_empty_parents(out_dir, target.parent)
    manifest = {
        "fingerprint": fingerprint,
        "files": {name: _sha256(data) for name, data in sorted(files.items())},
    }
    write_atomic(out_dir / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    return written, removed


def sweep_temporary_files(out_dir: Path) -> None:
    """Remove temporary files a killed run left behind (only ours: `.<name>.<rand>.tmp`)."""
    if not out_dir.is_dir():
        return
    for leftover in out_dir.rglob(".*.tmp"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)


def outputs_intact(out_dir: Path, fingerprint: str) -> bool:
    """True when every file of the last build is there, unchanged, built from these inputs."""
    manifest = read_manifest(out_dir)
    files = manifest.get("files")
    if manifest.get("fingerprint") != fingerprint or not isinstance(files, dict) or not files:
        return False
    for name, digest in files.items():
        try:
            if _sha256((out_dir / name).read_bytes()) != digest:
                return False
        except OSError:
            return False
    return True


def read_manifest(out_dir: Path) -> dict[str, Any]:
    """The last build's manifest ({} if there is none or it is unreadable)."""
    try:
        manifest = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        return {}
    return manifest


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


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
