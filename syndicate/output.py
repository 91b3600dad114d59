"""Writing the output folder: atomic, only when bytes change, and pruning stale feeds.

A run killed at any point leaves every file either old or new, never half-written:
each file goes to a temporary sibling, is flushed to disk, then renamed over the old one.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from syndicate.errors import OutputError

MANIFEST = ".syndicate-manifest.json"


@dataclass(frozen=True, slots=True)
class Staged:
    """A file `stage_file` has already written beside its target, and the hash of its
    bytes: `write_outputs` only renames it into place. `path` is None when the target
    already holds these bytes."""

    path: Path | None
    sha256: str


def stage_file(out_dir: Path, name: str, data: bytes) -> Staged:
    """Write one output file for `write_outputs` where its bytes are made (a worker
    process), so they are never sent to the process that writes the others."""
    return Staged(_stage(out_dir / name, data, sync=False), _sha256(data))


def write_atomic(path: Path, data: bytes) -> bool:
    """Write `data` to `path` atomically; return False (and touch nothing) if unchanged."""
    staged = _stage(path, data, sync=True)
    if staged is None:
        return False
    _rename(staged, path)
    return True


def _stage(path: Path, data: bytes, sync: bool) -> Path | None:
    """`data` in a new temporary sibling of `path` (flushed to disk with `sync`), or None
    when `path` already holds exactly these bytes."""
    try:
        if path.read_bytes() == data:
            return None
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
                if sync:
                    os.fsync(handle.fileno())
                else:
                    _start_writeback(handle.fileno())
            Path(tmp).chmod(0o644)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    return Path(tmp)


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        import ctypes

        call = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint)
    return cast(Callable[[int, int, int, int], int], call)


def _start_writeback(fd: int) -> None:
    """Have the kernel begin writing a staged file to disk now (Linux's sync_file_range,
    SYNC_FILE_RANGE_WRITE: it does not wait), so the one `_flush` before the renames finds
    the feeds on their way already, as git's batched fsync does."""
    call = _sync_file_range()
    if call is not None:
        call(fd, 0, 0, 2)


def _rename(staged: Path, path: Path) -> None:
    try:
        staged.replace(path)
    except OSError as exc:
        staged.unlink(missing_ok=True)
        raise _cannot_write(path, exc) from None


def _cannot_write(path: Path, exc: OSError) -> OutputError:
    return OutputError(
        f"{path}: cannot write: {exc.strerror}", "check that the output folder is writable"
    )


def _flush(folder: Path, staged: Collection[Path]) -> None:
    """Put the `staged` files on disk before any is renamed into place: one syncfs(2) of
    the output folder's file system where there is one (Linux), else an fsync per file.
    An fsync each made the cold build wait ~1.2 ms per feed file (0.6 s for 485 files on
    a quiet disk, 2.5 s on a busy one); syncfs writes the same data in one commit."""
    if not staged:
        return
    try:
        import ctypes

        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
        fd = os.open(folder, os.O_RDONLY)
        try:
            if syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    for path in staged:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise _cannot_write(path, exc) from None


def _flush_meanwhile(
    folder: Path, staged: list[Path], meanwhile: Callable[[], None] | None
) -> None:
    """`_flush`, in a thread while `meanwhile()` runs here (syncfs waits for the disk
    with the GIL released: ~0.25 s after a cold build, which the run spent idle)."""
    if meanwhile is None or not staged:
        _flush(folder, staged)
        if meanwhile is not None:
            meanwhile()
        return
    failed: list[BaseException] = []

    def flush() -> None:
        try:
            _flush(folder, staged)
        except BaseException as exc:  # re-raised in the caller's thread
            failed.append(exc)

    thread = threading.Thread(target=flush, name="syndicate-flush")
    thread.start()
    try:
        meanwhile()
    finally:
        thread.join()
    if failed:
        raise failed[0]


def write_outputs(
    out_dir: Path,
    files: Mapping[str, bytes] | Iterable[tuple[str, bytes | Staged]],
    fingerprint: str = "",
    kept: Collection[str] = (),
    feeds: Mapping[str, str] | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> tuple[list[str], list[str]]:
    """Write every file (relative path -> bytes); remove files a previous build wrote that
    this one no longer produces (a tag nobody uses any more). -> (written, removed).
    `meanwhile()` is called once every file is staged, while they go to disk, before any
    is renamed into place (if it raises, none is).
    The `kept` files are left as a previous build wrote them (their inputs are the same).
    `files` may be a stream of (path, bytes): each is written (to a temporary sibling) as
    it comes and let go, so 80 MB of feeds are never all in memory at once; or of (path,
    Staged): written already, by `stage_file`. Once all are on disk, each is renamed into
    place (a run stopped before leaves the old files).

    The manifest, written last, records each file's hash and stat, the `fingerprint` of
    all the inputs and each feed's own fingerprint (`feeds`), so `outputs_intact` and
    `current_feeds` can tell later whether the folder still holds what this build wrote.
    """
    sweep_temporary_files(out_dir)
    written: list[str] = []
    hashes: dict[str, str] = {}
    staged: dict[str, Path] = {}
    try:
        for name, data in sorted(files.items()) if isinstance(files, Mapping) else files:
            if name in staged:  # the same name twice: the last bytes win, as they would
                staged.pop(name).unlink(missing_ok=True)
            if not isinstance(data, Staged):
                data = stage_file(out_dir, name, data)
            if data.path is not None:
                staged[name] = data.path
            hashes[name] = data.sha256
        _flush_meanwhile(out_dir, list(staged.values()), meanwhile)
        for name in list(staged):
            _rename(staged.pop(name), out_dir / name)
            written.append(name)
    except BaseException:
        _stop(files, out_dir)
        raise
    finally:
        for temporary in staged.values():  # not renamed: a failure or an interruption
            temporary.unlink(missing_ok=True)
    written.sort()
    previous = read_manifest(out_dir)
    hashes.update({name: previous["files"][name] for name in kept})
    removed = []
    for name in sorted(set(previous.get("files", {})) - set(hashes)):
        target = out_dir / name
        if _inside(out_dir, target) and target.is_file():
            target.unlink()
            removed.append(name)
            _remove_empty_parents(out_dir, target.parent)
    _write_manifest(out_dir, fingerprint, hashes, feeds or {})
    return written, removed


def _write_manifest(
    out_dir: Path, fingerprint: str, hashes: Mapping[str, str], feeds: Mapping[str, str]
) -> None:
    manifest = {
        "fingerprint": fingerprint,
        "files": dict(sorted(hashes.items())),
        "stats": {name: _stat(out_dir / name) for name in sorted(hashes)},
        "feeds": dict(sorted(feeds.items())),
    }
    write_atomic(out_dir / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())


def _stop(files: object, out_dir: Path) -> None:
    """After a failure: a stream's workers stopped (closing it stops them), and the files
    they wrote that were never taken swept: a failed run leaves no temporary file."""
    close = getattr(files, "close", None)
    if close is not None:
        close()
    sweep_temporary_files(out_dir)


def sweep_temporary_files(out_dir: Path) -> None:
    """Remove temporary files a killed run left behind (only ours: `.<name>.<rand>.tmp`)."""
    if not out_dir.is_dir():
        return
    for leftover in out_dir.rglob(".*.tmp"):
        if leftover.is_file():
            leftover.unlink(missing_ok=True)


def outputs_intact(out_dir: Path, fingerprint: str) -> bool:
    """True when every file of the last build is there, unchanged, built from these inputs.

    Unchanged: the same size, mtime and inode as just after it was written (reading and
    hashing 80 MB of feeds would cost more than the rest of a run that changes nothing)."""
    manifest = read_manifest(out_dir)
    files = manifest.get("files")
    if manifest.get("fingerprint") != fingerprint or not isinstance(files, dict) or not files:
        return False
    return len(_intact(out_dir, manifest)) == len(files)


def current_feeds(out_dir: Path) -> dict[str, str]:
    """file -> fingerprint of the feeds the last build wrote that are still intact."""
    manifest = read_manifest(out_dir)
    feeds = manifest.get("feeds")
    if not isinstance(feeds, dict):
        return {}
    intact = _intact(out_dir, manifest)
    return {name: fp for name, fp in feeds.items() if name in intact and isinstance(fp, str)}


def _intact(out_dir: Path, manifest: Mapping[str, Any]) -> set[str]:
    stats = manifest.get("stats")
    if not isinstance(stats, dict):
        return set()
    return {
        name
        for name in manifest["files"]
        if isinstance(stats.get(name), list) and _stat(out_dir / name) == stats[name]
    }


def _stat(path: Path) -> list[int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return [info.st_size, info.st_mtime_ns, info.st_ino]


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
