"""The Python-Markdown instance syndicate renders with (the only module that imports
`markdown`), and shortcuts around its slowest Python loops.

Rendering a post is ~80% Python-Markdown. Each shortcut below replaces a loop of its
internals, on our own instance only, with one that gives the same result with less
Python: the bracket scan of links, listed registries, inline patterns and block
processors asked only about text holding what they need, preprocessors and attr_list
skipped when the text gives them nothing to do, block-level names in a set (2.3 -> 1.7 ms
a post on the bench corpus, and 3.2 before the first ones). tests/test_engine.py checks
each against the library's own code, and whole documents against a stock instance. When
a release renames what a shortcut replaces, the shortcut is simply not installed.
"""

from __future__ import annotations

import bisect
import functools
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar, cast, overload

import markdown
from markdown.inlinepatterns import InlineProcessor as InlinePattern
from markdown.inlinepatterns import LinkInlineProcessor
from markdown.treeprocessors import InlineProcessor
from markdown.util import AtomicString, Registry

R = TypeVar("R")


# No "smarty": it runs a second inline pass and more than doubles the cost of rendering
# (Python-Markdown#1103, closed wontfix); authors' own typography is kept as written.
def new_markdown() -> SourceMarkdown:
    """A Markdown instance with the extensions posts are written for, and the shortcuts."""
    md = SourceMarkdown(extensions=["extra", "sane_lists"], output_format="html")
    for pattern in md.inlinePatterns:
        if isinstance(pattern, LinkInlineProcessor) and hasattr(pattern, "_findBracketEnds"):
            pattern._findBracketEnds = bracket_ends
    registries = (md.preprocessors, md.parser.blockprocessors, md.treeprocessors)
    for registry in (*registries, md.inlinePatterns, md.postprocessors):
        if type(registry) is Registry:
            registry.__class__ = ListedRegistry
    if "inline" in md.treeprocessors:
        _ask_patterns_first(md.treeprocessors["inline"])
    _look_up_block_level(md)
    _pass_by_blocks_without_their_marks(md)
    _skip_attribute_lists_without_braces(md)
    _quicker_preprocessors(md)
    return md


class SourceMarkdown(markdown.Markdown):
    """Markdown that keeps the text it is converting, for the shortcuts that ask it."""

    source = ""
    code_blocks = 0  # of the raw HTML pieces stashed, those fenced code wrote (escaped)
    _block_level_elements: list[str]

    def convert(self, source: str) -> str:
        self.source, self.code_blocks = source, 0
        return super().convert(source)

    def author_html(self) -> bool:
        """Did the last conversion carry raw HTML (or an entity) the author wrote? Every
        piece of raw HTML is stashed; fenced code stashes its own, escaped."""
        return len(self.htmlStash.rawHtmlBlocks) > self.code_blocks

    @property
    def block_level_elements(self) -> list[str]:
        return self._block_level_elements

    @block_level_elements.setter
    def block_level_elements(self, elements: list[str]) -> None:
        """Our own list answers `is_block_level` from its dict of verdicts (one C call);
        a list an extension puts in its place is asked as the library asks it."""
        self._block_level_elements = elements
        if type(elements) is BlockLevelElements:
            self.is_block_level = elements.verdicts.__getitem__  # type: ignore[method-assign,assignment]
        elif "is_block_level" in vars(self):
            del self.is_block_level  # the library's method again


# Block processors (by class and regular expression) and the strings one of which every
# block they take holds: the Markdown they stand for (`|` of a table, `>` of a quote, the
# `[^` of a footnote). Each test or run looks at the first block only, and a block
# without any of them is one it passes by (their `run`s put the block back and return
# False), so the test is not asked. About a tenth of the time of a post went on asking.
_BLOCK_NEEDS: dict[tuple[str, str | None], tuple[str, ...]] = {
    ("markdown.extensions.tables.TableProcessor", None): ("|",),
    ("markdown.blockprocessors.SetextHeaderProcessor", r"^.*?\n(?:=+|-+)[ ]*(\n|$)"): (
        "\n=",
        "\n-",
    ),
    (
        "markdown.blockprocessors.HRProcessor",
        r"^[ ]{0,3}(?=(?P<atomicgroup>(-+[ ]{0,2}){3,}|(_+[ ]{0,2}){3,}|(\*+[ ]{0,2}){3,}))"
        r"(?P=atomicgroup)[ ]*$",
    ): ("---", "___", "***", "- -", "_ _", "* *", "-  -", "_  _", "*  *"),
    ("markdown.extensions.def_list.DefListProcessor", r"(^|\n)[ ]{0,3}:[ ]{1,3}(.*?)(\n|$)"): (
        ":",
    ),
    ("markdown.blockprocessors.BlockQuoteProcessor", r"(^|\n)[ ]{0,3}>[ ]?(.*)"): (">",),
    (
        "markdown.extensions.footnotes.FootnoteBlockProcessor",
        r"^[ ]{0,3}\[\^([^\]]*)\]:[ ]*(.*)$",
    ): ("[^",),
    (
        "markdown.extensions.abbr.AbbrBlockprocessor",
        r"^[*]\[(?P<abbr>[^\\\n]*?)\][ ]?:[ ]*\n?[ ]*(?P<title>.*)$",
    ): ("*[",),
    (
        "markdown.blockprocessors.ReferenceProcessor",
        r"^[ ]{0,3}\[([^\[\]]*)\]:[ ]*(?:\n[ ]*)?([^\s]+)[ ]*(?:\n[ ]*)?"
        r"""((["\'])(.*)\4[ ]*|\((.*)\)[ ]*)?$""",
    ): ("]:",),
}


def block_needs(processor: Any) -> tuple[str, ...] | None:
    """The strings a block must hold for this block processor to take it (None: any)."""
    regex = getattr(processor, "RE", None)
    pattern = regex if isinstance(regex, str) or regex is None else regex.pattern
    name = f"{type(processor).__module__}.{type(processor).__qualname__}"
    return _BLOCK_NEEDS.get((name, pattern))


def _pass_by_blocks_without_their_marks(md: markdown.Markdown) -> None:
    """Give each block processor of `_BLOCK_NEEDS` a test that first looks for them."""
    for processor in md.parser.blockprocessors:
        needles = block_needs(processor)
        if needles is not None and hasattr(processor, "test"):
            processor.test = _needling(processor.test, needles)  # type: ignore[method-assign]


def _needling(test: Callable[[Any, str], bool], needles: tuple[str, ...]) -> Any:
    def needled(parent: Any, block: str) -> bool:
        for needle in needles:
            if needle in block:
                return test(parent, block)
        return False

    return needled


_ATTRIBUTE_LIST = r"\{\:?[ ]*([^\}\n ][^\n]*)\}"  # every form of `{: #id .class }`


def _registered(registry: Registry[Any], name: str) -> Any:
    """The item registered as `name`, or None (a Registry has no `get`)."""
    return registry[name] if name in registry else None  # noqa: SIM401


def _skip_attribute_lists_without_braces(md: SourceMarkdown) -> None:
    """The attr_list treeprocessor walks every element of the post for `{...}`: a post
    whose Markdown has no `{` at all has none (raw HTML and entities are stashed away
    until after the treeprocessors, so no `{` comes from them)."""
    from markdown.extensions.attr_list import AttrListTreeprocessor

    processor = _registered(md.treeprocessors, "attr_list")
    if type(processor) is not AttrListTreeprocessor or processor.BASE_RE != _ATTRIBUTE_LIST:
        return
    run = processor.run

    def braced(doc: Any) -> None:
        if "{" in md.source:
            run(doc)

    processor.run = braced  # type: ignore[method-assign]


class BlockLevelElements(list[str]):
    """`Markdown.block_level_elements`, a list asked ~300 times a post whether it holds a
    tag name (59 comparisons each time): the same list, with a set of its items for that
    question and the verdicts `is_block_level` gave, both dropped after any change."""

    _names: frozenset[str] | None = None

    def __init__(self, items: Iterable[str] = ()) -> None:
        super().__init__(items)
        self.verdicts = BlockLevelVerdicts(self)

    @property
    def names(self) -> frozenset[str]:
        if self._names is None:
            self._names = frozenset(self)
        return self._names

    def __contains__(self, item: object) -> bool:
        return item in self.names


class BlockLevelVerdicts(dict[Any, bool]):
    """tag -> `Markdown.is_block_level(tag)` for a BlockLevelElements: asked as a dict, an
    answer known is one C call instead of a Python one (~180 -> 25 ns, ~240 times a post).
    Tags are element tags (names, or the Comment factory) and names matched in raw HTML:
    all hashable."""

    LIMIT = 4096  # raw HTML may name any tag: dropped when this many are known

    def __init__(self, elements: BlockLevelElements) -> None:
        super().__init__()
        self.elements = elements

    def __missing__(self, tag: Any) -> bool:
        verdict = isinstance(tag, str) and tag.lower().rstrip("/") in self.elements.names
        if len(self) >= self.LIMIT:
            self.clear()
        self[tag] = verdict
        return verdict


def _changes(name: str) -> Any:
    def changed(self: BlockLevelElements, *args: Any) -> Any:
        self._names = None
        self.verdicts.clear()
        return getattr(list, name)(self, *args)

    changed.__name__ = name
    return changed


_CHANGING = ("__setitem__", "__delitem__", "__iadd__", "__imul__", "append", "extend")
for _name in (*_CHANGING, "insert", "remove", "pop", "clear", "sort", "reverse"):
    setattr(BlockLevelElements, _name, _changes(_name))


def _look_up_block_level(md: SourceMarkdown) -> None:
    """`Markdown.is_block_level` as a dict lookup, if it is the method it mirrors."""
    if type(md.block_level_elements) is not list or not hasattr(md, "is_block_level"):
        return
    md.block_level_elements = BlockLevelElements(md.block_level_elements)


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
    _derived: tuple[Callable[[list[Any]], Any], Any] | None = None

    def listed(self) -> list[Any]:
        """The items, highest priority first (the list is shared: do not change it)."""
        if self._listed is None:
            self._listed = list(super().__iter__())  # sorted by priority
            self._derived = None
        return self._listed

    def derived(self, make: Callable[[list[Any]], R]) -> R:
        """`make(self.listed())`, made once until the next change (one `make` at a time)."""
        listed = self.listed()
        if self._derived is None or self._derived[0] is not make:
            self._derived = (make, make(listed))
        return cast(R, self._derived[1])

    def __iter__(self) -> Iterator[Any]:
        return iter(self.listed())

    def __getitem__(self, key: Any) -> Any:
        return self.listed()[key] if isinstance(key, int) else super().__getitem__(key)

    def register(self, item: Any, name: str, priority: float) -> None:
        self._listed = self._derived = None
        super().register(item, name, priority)

    def deregister(self, name: str, strict: bool = True) -> None:
        self._listed = self._derived = None
        super().deregister(name, strict)


def handle_inline(processor: InlineProcessor, data: str, index: int = 0) -> str:
    """`InlineProcessor.__handleInline` (the loop that tries each inline pattern on a text
    in turn), asking first whether the pattern can match at all: a text without the
    strings it needs (a `[` for a link), or that its regular expression does not match,
    is left as it is without the call to `__applyPattern`, which would find no match
    either and return the same. Most of the ~900 calls a post made were those: most
    texts (plain prose) hold none of the strings any pattern needs, and the others only
    some. `index`: the first pattern to try."""
    if isinstance(data, AtomicString):
        return data
    registry = cast(ListedRegistry, processor.inlinePatterns)
    patterns = registry.listed()
    plan = registry.derived(InlinePlan)
    order = plan.candidates(data)
    if not order:
        return data  # nothing any pattern needs: every pattern would pass it by
    apply = processor._InlineProcessor__applyPattern  # type: ignore[attr-defined]  # mangled
    position, start = bisect.bisect_left(order, index), 0
    while position < len(order):
        index = order[position]
        needles, regex = plan.checks[index]
        if regex is not None and (
            (needles is not None and not _holds_one(data, needles, start))
            or regex.search(data, start) is None
        ):
            position, start = position + 1, 0  # what __applyPattern returns then
            continue
        data, matched, start = apply(patterns[index], data, index, start)
        if not matched:
            position += 1  # (a pattern passed by returns start 0, as here)
    return data


def _holds_one(data: str, needles: tuple[str, ...], start: int) -> bool:
    for needle in needles:  # noqa: SIM110 (any(...)'s generator cost more than the finds)
        if data.find(needle, start) >= 0:
            return True
    return False


# Patterns (by their exact regular expression) and the strings one of which every match
# holds, at or after where the search starts: `find` says "no" in C at memchr speed, where
# a pattern that opens with look-behinds (the code span's) is tried at every position.
# A pattern not named here is always asked.
_NEEDS: dict[str, tuple[str, ...]] = {
    r"(?:(?<!\\)((?:\\{2})+)(?=`+)|(?<!\\)`)": ("`",),  # code spans
    r"\\(.)": ("\\",),  # backslash escapes
    r"\[\^([^\]]*)\]": ("[^",),  # footnote references
    r"(?<!\!)\[": ("[",),  # links and references
    r"\!\[": ("![",),  # images
    r"<([A-Za-z][A-Za-z0-9+.-]*://[^<>]*)>": ("://",),  # <https://...>
    r"<([^<> !]+@[^@<> ]+)>": ("@",),  # <someone@example.org>
    r"  \n": ("  \n",),  # hard line breaks
    (  # raw HTML: tags, comments, processing instructions, CDATA
        r"""(<(\/?+[a-zA-Z][^\s"'<>@]*+(?:\s+[^\s"'=<>]++(?:\s*+=\s*+(?:"[^"]*+"|'[^']*+'"""
        r"""|[^\s"'=<>]++))?+)*+\s*+/?|!--(?:(?!<!--|-->).)*--|[?](?:(?!<[?]|[?]>).)*[?]|"""
        r"""!\[CDATA\[(?:(?!<!\[CDATA\[|\]\]>).)*\]\])>)"""
    ): ("<",),
    r"(&(?:\#[0-9]+|\#x[0-9a-fA-F]+|[a-zA-Z0-9]+);)": ("&",),  # entities
    r"\*|_": ("*", "_"),  # emphasis
}


class InlinePlan:
    """What `handle_inline` knows of a listing of inline patterns: per pattern, the
    strings it needs (or None) and its regular expression (None for an old-style
    pattern, always applied); and, per set of needed strings a text holds, the patterns
    that might match it (the others would not), made as texts come."""

    def __init__(self, patterns: list[Any]) -> None:
        self.checks: list[tuple[tuple[str, ...] | None, re.Pattern[str] | None]] = []
        for pattern in patterns:
            regex = pattern.getCompiledRegExp() if isinstance(pattern, InlinePattern) else None
            self.checks.append((None if regex is None else _NEEDS.get(regex.pattern), regex))
        self.needles = tuple(sorted({n for needed, _ in self.checks for n in needed or ()}))
        everything = (1 << len(self.needles)) - 1
        self.masks = [  # the bits of the needles each pattern is asked for
            everything + 1
            if needed is None or regex is None
            else sum(1 << self.needles.index(n) for n in needed)
            for needed, regex in self.checks
        ]
        self.always = everything + 1  # the bit of the patterns asked whatever the text
        self._orders: dict[int, list[int]] = {}

    def candidates(self, data: str) -> list[int]:
        """The indexes of the patterns that might match `data`, in order."""
        found, bit = self.always, 1
        for needle in self.needles:
            if needle in data:
                found |= bit
            bit <<= 1
        order = self._orders.get(found)
        if order is None:
            order = self._orders[found] = [i for i, m in enumerate(self.masks) if m & found]
        return order


_BRACKET = re.compile(r"[\[\]]")


def bracket_ends(data: str) -> BracketEnds:
    """What Python-Markdown's `LinkInlineProcessor._findBracketEnds` returns (for each
    index of `data`, the index just past the `]` closing a bracket opened before it, or
    None), computed per run of text between brackets instead of per character: that
    character loop was a fifth of the time of rendering a post with links.

    Every index between two brackets is at the same depth, so it has the same end; the
    stack walk of the original runs over those runs (`starts`, `depths`) instead, and the
    answer is kept per run (the library asks it for one index per link)."""
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
    return BracketEnds(starts, run_ends, len(data) + 1)


class BracketEnds(Sequence[int | None]):
    """The list `_findBracketEnds` makes (one item per index of the text and one past
    it), as runs: `starts[r]` is the first index of run r, every index of which has the
    end `ends[r]`. The library reads one item per link; building the whole list cost as
    much as finding the runs."""

    __slots__ = ("_ends", "_length", "_starts")

    def __init__(self, starts: list[int], ends: list[int | None], length: int) -> None:
        self._starts, self._ends, self._length = starts, ends, length

    def __len__(self) -> int:
        return self._length

    @overload
    def __getitem__(self, index: int) -> int | None: ...
    @overload
    def __getitem__(self, index: slice) -> list[int | None]: ...
    def __getitem__(self, index: int | slice) -> int | list[int | None] | None:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._length))]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("bracket end index out of range")
        return self._ends[bisect.bisect_right(self._starts, index) - 1]


def _quicker_preprocessors(md: markdown.Markdown) -> None:
    """The three preprocessors, each passing over text that gives it nothing to do:
    whitespace normalisation without its line-by-line regular expression where no line
    ends in a space, fenced code where there is no fence, and the raw HTML block
    extractor (an HTMLParser over the whole post) where there is no `<` or `&`."""
    from markdown.extensions.fenced_code import FencedBlockPreprocessor
    from markdown.extensions.md_in_html import HtmlBlockPreprocessor
    from markdown.preprocessors import NormalizeWhitespace

    for name, kind, run in (
        ("normalize_whitespace", NormalizeWhitespace, _normalize_whitespace),
        ("fenced_code_block", FencedBlockPreprocessor, _unless_fenced),
        ("html_block", HtmlBlockPreprocessor, _unless_marked_up),
    ):
        processor = _registered(md.preprocessors, name)
        if type(processor) is kind:
            processor.run = functools.partial(run, processor, processor.run)  # type: ignore[method-assign]


_TRAILING_SPACES = re.compile(r"(?<=\n) +\n")


def _normalize_whitespace(processor: Any, run: Any, lines: list[str]) -> list[str]:
    """NormalizeWhitespace.run, its regular expression (which tries a look-behind at
    every character) asked only where a line ends in a space."""
    source = "\n".join(lines)
    source = source.replace(markdown.util.STX, "").replace(markdown.util.ETX, "")
    source = source.replace("\r\n", "\n").replace("\r", "\n") + "\n\n"
    source = source.expandtabs(processor.md.tab_length)
    if " \n" in source:
        source = _TRAILING_SPACES.sub("\n", source)
    return source.split("\n")


def _unless_fenced(processor: Any, run: Any, lines: list[str]) -> list[str]:
    """FencedBlockPreprocessor.run, where a fence (``` or ~~~) may open."""
    md = processor.md
    if "```" not in md.source and "~~~" not in md.source:
        return lines
    stashed = len(md.htmlStash.rawHtmlBlocks)
    lines = run(lines)
    md.code_blocks += len(md.htmlStash.rawHtmlBlocks) - stashed
    return lines


def _unless_marked_up(processor: Any, run: Any, lines: list[str]) -> list[str]:
    """md_in_html's HtmlBlockPreprocessor.run, where there may be a tag or an entity: in
    text without `<` or `&` its HTMLParser finds nothing but data, given back as it is."""
    text = "\n".join(lines)
    return run(lines) if "<" in text or "&" in text else lines
