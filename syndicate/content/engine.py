"""The Python-Markdown instance syndicate renders with (the only module that imports
`markdown`), and three shortcuts around its slowest Python loops.

Rendering a post is ~85% Python-Markdown. Each shortcut below replaces a loop of its
internals, on our own instance only, with one that gives the same result with less
Python; tests/test_properties.py checks each against the library's own. When a release
renames what a shortcut replaces, the shortcut is simply not installed.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from typing import Any, cast

import markdown
from markdown.inlinepatterns import InlineProcessor as InlinePattern
from markdown.inlinepatterns import LinkInlineProcessor
from markdown.treeprocessors import InlineProcessor
from markdown.util import AtomicString, Registry


# No "smarty": it runs a second inline pass and more than doubles the cost of rendering
# (Python-Markdown#1103, closed wontfix); authors' own typography is kept as written.
def new_markdown() -> markdown.Markdown:
    """A Markdown instance with the extensions posts are written for, and the shortcuts."""
    md = markdown.Markdown(extensions=["extra", "sane_lists"], output_format="html")
    for pattern in md.inlinePatterns:
        if isinstance(pattern, LinkInlineProcessor) and hasattr(pattern, "_findBracketEnds"):
            pattern._findBracketEnds = bracket_ends
    registries = (md.preprocessors, md.parser.blockprocessors, md.treeprocessors)
    for registry in (*registries, md.inlinePatterns, md.postprocessors):
        if type(registry) is Registry:
            registry.__class__ = ListedRegistry
    if "inline" in md.treeprocessors:
        _ask_patterns_first(md.treeprocessors["inline"])
    return md


def _ask_patterns_first(inline: Any) -> None:
    """Install `handle_inline` in the inline treeprocessor, if it is the one it mirrors."""
    if (
        isinstance(inline, InlineProcessor)
        and isinstance(inline.inlinePatterns, ListedRegistry)
        and hasattr(inline, "_InlineProcessor__applyPattern")
        and hasattr(inline, "_InlineProcessor__handleInline")
    ):
        inline._InlineProcessor__handleInline = functools.partial(handle_inline, inline)


class ListedRegistry(Registry[Any]):
    """Python-Markdown's Registry, keeping its items in a list until the next change: the
    inline patterns are taken by index ~900 times a post and the block processors listed
    once a block, each time sorting again (a no-op) and looking the item up by name."""

    _listed: list[Any] | None = None

    def listed(self) -> list[Any]:
        """The items, highest priority first (the list is shared: do not change it)."""
        if self._listed is None:
            self._listed = list(super().__iter__())  # sorted by priority
        return self._listed

    def __iter__(self) -> Iterator[Any]:
        return iter(self.listed())

    def __getitem__(self, key: Any) -> Any:
        return self.listed()[key] if isinstance(key, int) else super().__getitem__(key)

    def register(self, item: Any, name: str, priority: float) -> None:
        self._listed = None
        super().register(item, name, priority)

    def deregister(self, name: str, strict: bool = True) -> None:
        self._listed = None
        super().deregister(name, strict)


def handle_inline(processor: InlineProcessor, data: str, index: int = 0) -> str:
    """`InlineProcessor.__handleInline` (the loop that tries each inline pattern on a text
    in turn), asking each pattern's regular expression first: a text that it cannot
    match is left as it is without the call to `__applyPattern`, which would find no
    match either and return the same. Most of the ~900 calls a post made were those.
    `index`: the first pattern to try."""
    if isinstance(data, AtomicString):
        return data
    apply = processor._InlineProcessor__applyPattern  # type: ignore[attr-defined]  # mangled
    patterns = cast(ListedRegistry, processor.inlinePatterns).listed()
    start = 0
    while index < len(patterns):
        pattern = patterns[index]
        if isinstance(pattern, InlinePattern) and not _can_match(pattern, data, start):
            index, start = index + 1, 0  # what __applyPattern returns then
            continue
        data, matched, start = apply(pattern, data, index, start)
        if not matched:
            index += 1
    return data


# Patterns (by their exact regular expression) that only match where a character follows
# at or after the start: `find` says "no" in C at memchr speed, where the code span's
# pattern, which opens with look-behinds, is tried at every position (0.2 ms a post).
_NEEDS = {
    r"(?:(?<!\\)((?:\\{2})+)(?=`+)|(?<!\\)`)": "`",  # code spans
    r"(?<!\!)\[": "[",  # links and references
}


def _can_match(pattern: InlinePattern, data: str, start: int) -> bool:
    regex = pattern.getCompiledRegExp()
    needs = _NEEDS.get(regex.pattern)
    if needs is not None and data.find(needs, start) < 0:
        return False
    return regex.search(data, start) is not None


_BRACKET = re.compile(r"[\[\]]")


def bracket_ends(data: str) -> list[int | None]:
    """What Python-Markdown's `LinkInlineProcessor._findBracketEnds` returns (for each
    index of `data`, the index just past the `]` closing a bracket opened before it, or
    None), computed per run of text between brackets instead of per character: that
    character loop was a fifth of the time of rendering a post with links.

    Every index between two brackets is at the same depth, so it has the same end; the
    stack walk of the original runs over those runs (`starts`, `depths`) instead."""
    starts, depths, depth = [0], [0], 0
    for match in _BRACKET.finditer(data):
        depth += 1 if match.group() == "[" else -1
        starts.append(match.end())
        depths.append(depth)
    run_ends: list[int | None] = [None] * len(starts)
    stack: list[int] = []
    for run, run_depth in enumerate(depths):
        while stack and run_depth < depths[stack[-1]]:
            run_ends[stack.pop()] = starts[run]
        stack.append(run)
    starts.append(len(data) + 1)
    ends: list[int | None] = []
    for run, end in enumerate(run_ends):
        ends += [end] * (starts[run + 1] - starts[run])
    return ends
