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
