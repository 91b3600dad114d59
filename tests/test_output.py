"""syndicate.output: the output folder is written all at once or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from syndicate.output import read_manifest, write_outputs


def test_every_file_is_written_then_listed_in_the_manifest(tmp_path: Path) -> None:
    written, removed = write_outputs(tmp_path, iter([("feed.xml", b"<rss/>"), ("t/a.json", b"{}")]))
    assert (written, removed) == (["feed.xml", "t/a.json"], [])
    assert (tmp_path / "t" / "a.json").read_bytes() == b"{}"
    assert sorted(read_manifest(tmp_path)["files"]) == ["feed.xml", "t/a.json"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_stream_that_fails_midway_leaves_the_old_files_and_no_temporary_file(
    tmp_path: Path,
) -> None:
    """Files are staged beside their targets and renamed only once all are on disk: a
    feed that fails to build leaves the folder as the last build wrote it."""
    write_outputs(tmp_path, {"feed.xml": b"old", "atom.xml": b"old"})

    def failing() -> Iterator[tuple[str, bytes]]:
        yield "atom.xml", b"new"
        raise RuntimeError("a feed could not be built")

    with pytest.raises(RuntimeError):
        write_outputs(tmp_path, failing())
    assert (tmp_path / "atom.xml").read_bytes() == b"old"
    assert not list(tmp_path.rglob("*.tmp"))


def test_unchanged_files_are_not_written_again(tmp_path: Path) -> None:
    write_outputs(tmp_path, {"feed.xml": b"same"})
    inode = (tmp_path / "feed.xml").stat().st_ino
    written, _ = write_outputs(tmp_path, {"feed.xml": b"same", "new.xml": b"x"})
    assert written == ["new.xml"]
    assert (tmp_path / "feed.xml").stat().st_ino == inode


def test_meanwhile_runs_once_the_files_are_staged_and_before_any_is_renamed(
    tmp_path: Path,
) -> None:
    """The run records the posts' states while the staged feeds go to disk: at that
    moment the new bytes are beside their targets and the old files still in place."""
    write_outputs(tmp_path, {"feed.xml": b"old"})
    seen: list[tuple[bytes, list[str]]] = []

    def meanwhile() -> None:
        staged = sorted(p.name for p in tmp_path.glob(".*.tmp"))
        seen.append(((tmp_path / "feed.xml").read_bytes(), staged))

    write_outputs(tmp_path, {"feed.xml": b"new", "atom.xml": b"a"}, meanwhile=meanwhile)
    assert len(seen) == 1
    old, staged = seen[0]
    assert old == b"old" and len(staged) == 2
    assert (tmp_path / "feed.xml").read_bytes() == b"new"


def test_a_failure_meanwhile_renames_nothing(tmp_path: Path) -> None:
    """The run lock lost, the state database gone: the feeds stay as they were, so the
    feeds and the state never disagree about what was published."""
    write_outputs(tmp_path, {"feed.xml": b"old"})

    def meanwhile() -> None:
        raise RuntimeError("the run lock was lost")

    with pytest.raises(RuntimeError):
        write_outputs(tmp_path, {"feed.xml": b"new"}, meanwhile=meanwhile)
    assert (tmp_path / "feed.xml").read_bytes() == b"old"
    assert not list(tmp_path.rglob("*.tmp"))


def test_a_flush_that_fails_in_its_thread_fails_the_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from syndicate import output
    from syndicate.errors import OutputError

    def broken(folder: Path, staged: object) -> None:
        raise OutputError("cannot write public/feed.xml: no space left on device")

    monkeypatch.setattr(output, "_flush", broken)
    called: list[bool] = []
    with pytest.raises(OutputError, match="no space"):
        write_outputs(tmp_path, {"feed.xml": b"new"}, meanwhile=lambda: called.append(True))
    assert called == [True]
    assert not (tmp_path / "feed.xml").exists()
    assert not list(tmp_path.rglob("*.tmp"))
