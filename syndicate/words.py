"""Counting things in messages: "1 post", "3 posts"."""

from __future__ import annotations


def plural(count: int, noun: str) -> str:
    """The noun as `count` of it is written (English: an -s for anything but one)."""
    return noun if count == 1 else noun + "s"


def counted(count: int, noun: str) -> str:
    """`count` and its noun: counted(1, "post") == "1 post", counted(0, "error") == "0 errors"."""
    return f"{count} {plural(count, noun)}"
