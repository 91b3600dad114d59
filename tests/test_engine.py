"""syndicate.content.engine: our Markdown instance renders exactly as a stock one does.

Its shortcuts replace loops inside Python-Markdown; each is checked against the library's
own code, and whole documents against a plain `markdown.Markdown` with the same
extensions, so a Markdown release that changes what a shortcut assumes fails here."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import markdown
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown.inlinepatterns import LinkInlineProcessor
from markdown.util import Registry

from syndicate.content import engine

SETTINGS = settings(
    max_examples=int(os.environ.get("SYNDICATE_PROPERTY_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=bool(os.environ.get("CI")),
)
CORPUS = Path(__file__).parent / "corpus"


def stock_markdown() -> markdown.Markdown:
    return markdown.Markdown(extensions=["extra", "sane_lists"], output_format="html")


def both(text: str) -> tuple[str, str]:
    ours, stock = engine.new_markdown(), stock_markdown()
    return ours.convert(text), stock.convert(text)


def test_every_shortcut_is_installed() -> None:
    """If a Python-Markdown release renames what a shortcut replaces, it is not installed
    (output never depends on it), and this test says so."""
    md = engine.new_markdown()
    links = [p for p in md.inlinePatterns if isinstance(p, LinkInlineProcessor)]
    assert links and all(p._findBracketEnds is engine.bracket_ends for p in links)
    assert isinstance(md.inlinePatterns, engine.ListedRegistry)
    assert isinstance(md.parser.blockprocessors, engine.ListedRegistry)
    handle = md.treeprocessors["inline"]._InlineProcessor__handleInline
    assert getattr(handle, "func", None) is engine.handle_inline
    regexes = {p.getCompiledRegExp().pattern for p in md.inlinePatterns}
    assert set(engine._NEEDS) <= regexes


@SETTINGS
@given(
    st.lists(
        st.sampled_from([*"\\`[]!a <>@:/&;#*_^\n-?x1", "  \n", "://", "<!--", "-->", "&#"]),
        max_size=30,
    ).map("".join),
    st.integers(0, 30),
)
def test_a_pattern_needing_a_string_never_matches_without_it(text: str, start: int) -> None:
    """_NEEDS says which strings a pattern cannot match without one of, at or after the
    start: where they are all missing, the regular expression finds nothing either."""
    import re

    for regex, needs in engine._NEEDS.items():
        if not any(needed in text[start:] for needed in needs):
            assert re.compile(regex, re.DOTALL | re.UNICODE).search(text, start) is None


def test_every_needed_string_is_one_a_match_holds() -> None:
    """A string in _NEEDS that a match may lack would leave text unrendered: each
    pattern's own examples match, and each holds one of the strings named for it."""
    import re

    examples = ["`code`", "\\*", "[^1]", "[a](b)", "![a](b)", "<https://x.org>", "<a@b.c>"]
    examples += ["a  \nb", "<b>", "<!-- c -->", "<?p?>", "<![CDATA[x]]>", "&amp;", "&#1;"]
    examples += ["*a*", "_a_"]
    for regex, needs in engine._NEEDS.items():
        compiled = re.compile(regex, re.DOTALL | re.UNICODE)
        matching = [e for e in examples if compiled.search(e)]
        assert matching, regex
        assert all(any(needed in e for needed in needs) for e in matching), regex


def test_the_corpus_renders_as_with_a_stock_instance() -> None:
    files = sorted(CORPUS.rglob("*.md"))
    assert files
    for path in files:
        ours, stock = both(path.read_bytes().decode("utf-8", "replace"))
        assert ours == stock, path


markdownish = st.lists(
    st.sampled_from([*"ab \n\t*_`[]()!<>&#\\-+.:|~^=\"'/1{}", "](", "![", "[^1]", "\n\n", "    "])
    | st.sampled_from(
        ["\n---", "\n===", "- - -", "*[ab]: x", "[^1]: x", "[a]: /b", "> q", "{: .c}"]
    )
    | st.sampled_from(["| a | b |\n|---|---|\n", "a | b\n- | -\n", ": def", "\nterm\n:   d"])
    | st.sampled_from(["\n```\nx\n```\n", "\n~~~ {.py}\n", " \n", "  \n", "\t", "\r\n"])
    | st.sampled_from(["<div>", "</div>", "<b>", "&amp;", "&", "\x02", "\x03"]),
    max_size=60,
).map("".join)


@SETTINGS
@given(markdownish)
def test_any_text_renders_as_with_a_stock_instance(text: str) -> None:
    ours, stock = both(text)
    assert ours == stock


@SETTINGS
@given(st.text(st.sampled_from("[]]![(x) \n"), max_size=60))
def test_bracket_ends_agree_with_python_markdowns_own(text: str) -> None:
    ours, stock = engine.bracket_ends(text), LinkInlineProcessor._findBracketEnds(text)
    assert list(ours) == stock and len(ours) == len(stock)
    assert [ours[i] for i in range(-len(stock), 0)] == stock
    assert ours[1::2] == stock[1::2]
    for outside in (len(stock), -len(stock) - 1):
        with pytest.raises(IndexError):
            ours[outside]


registry_operations = st.lists(
    st.tuples(
        st.sampled_from(["register", "deregister", "index", "iterate", "name"]),
        st.sampled_from("abcde"),
        st.integers(min_value=-3, max_value=6),
    ),
    max_size=30,
)


@SETTINGS
@given(registry_operations)
def test_the_listed_registry_answers_as_python_markdowns_own(
    operations: list[tuple[str, str, int]],
) -> None:
    """Whatever is registered or removed, it answers as Python-Markdown's Registry does."""

    def answers(registry: Registry[str]) -> list[object]:
        seen: list[object] = []
        for operation, name, number in operations:
            try:
                if operation == "register":
                    registry.register(f"{name}{number}", name, number)
                elif operation == "deregister":
                    registry.deregister(name, strict=number > 0)
                elif operation == "index":
                    seen.append(registry[number])
                elif operation == "iterate":
                    seen.append(list(registry))
                else:
                    seen.append(registry[name])
            except (IndexError, KeyError, ValueError) as exc:
                seen.append(type(exc))
        return seen

    assert answers(engine.ListedRegistry()) == answers(Registry())


def _apply(elements: list[str], operation: str, name: str, number: int) -> None:
    changes = {
        "append": lambda: elements.append(name),
        "remove": lambda: elements.remove(name),
        "extend": lambda: elements.extend([name, name.upper()]),
        "insert": lambda: elements.insert(number, name),
        "pop": lambda: elements.pop(number),
        "clear": elements.clear,
        "setitem": lambda: elements.__setitem__(number, name),
        "delitem": lambda: elements.__delitem__(number),
        "iadd": lambda: elements.__iadd__([name]),
        "imul": lambda: elements.__imul__(1 + number % 2),
        "sort": elements.sort,
        "reverse": elements.reverse,
    }
    with contextlib.suppress(IndexError, ValueError):
        changes[operation]()


list_operations = st.lists(
    st.tuples(
        st.sampled_from(["append", "remove", "extend", "insert", "pop", "clear", "setitem"])
        | st.sampled_from(["delitem", "iadd", "imul", "sort", "reverse"]),
        st.sampled_from(["div", "p", "x-card", "Table", "svg"]),
        st.integers(min_value=-3, max_value=3),
    ),
    max_size=25,
)


@SETTINGS
@given(list_operations, st.sampled_from(["div", "DIV", "p/", "x-card", "svg", "span"]))
def test_block_level_names_answer_as_the_list_does(
    operations: list[tuple[str, str, int]], tag: str
) -> None:
    """However an extension changes md.block_level_elements, is_block_level answers as
    Python-Markdown's own method does on the same list: asked after every change, so an
    answer remembered from before a change is caught."""
    md, stock = engine.new_markdown(), stock_markdown()
    assert isinstance(md.block_level_elements, engine.BlockLevelElements)
    tags = (tag, "div", "x-card", "SVG", "p")
    for operation, name, number in operations:
        for elements in (md.block_level_elements, stock.block_level_elements):
            _apply(elements, operation, name, number)
            lowered = tag.lower().rstrip("/")
            assert (lowered in elements) == (lowered in list(elements))
        assert list(md.block_level_elements) == stock.block_level_elements
        assert [md.is_block_level(t) for t in tags] == [stock.is_block_level(t) for t in tags]
    assert md.is_block_level(None) is stock.is_block_level(None) is False
    replacement, again = ["svg"], ["svg"]  # replaced outright: a plain list is asked
    md.block_level_elements, stock.block_level_elements = replacement, again
    assert md.is_block_level(tag) == stock.is_block_level(tag)
    replacement.append(tag.lower().rstrip("/"))  # and seen to change, as the library sees it
    again.append(tag.lower().rstrip("/"))
    assert md.is_block_level(tag) == stock.is_block_level(tag) is True


def test_block_level_verdicts_stay_bounded() -> None:
    """Raw HTML can name any tag: the remembered verdicts are dropped at their limit."""
    md = engine.new_markdown()
    for number in range(engine.BlockLevelVerdicts.LIMIT * 2):
        assert md.is_block_level(f"x-{number}") is False
    assert len(md.block_level_elements.verdicts) <= engine.BlockLevelVerdicts.LIMIT  # type: ignore[attr-defined]
    assert md.is_block_level("DIV") is True


@SETTINGS
@given(markdownish)
def test_a_block_without_the_marks_a_processor_needs_is_one_it_passes_by(block: str) -> None:
    """_BLOCK_NEEDS: where none of a block processor's strings is in the block, the
    library's own test says no, or (for those whose test always says yes) its run puts
    the block back and says no."""
    import xml.etree.ElementTree as etree

    stock = stock_markdown()
    for processor in stock.parser.blockprocessors:
        needles = engine.block_needs(processor)
        if needles is None or any(n in block for n in needles):
            continue
        parent = etree.Element("div")
        if processor.test(parent, block):
            blocks = [block]
            assert processor.run(parent, blocks) is False, type(processor)
            assert blocks == [block] and len(parent) == 0


def test_every_block_shortcut_is_installed() -> None:
    md = engine.new_markdown()
    named = {type(p).__name__ for p in md.parser.blockprocessors if engine.block_needs(p)}
    assert len(named) == len(engine._BLOCK_NEEDS)
    assert md.treeprocessors["attr_list"].run.__name__ == "braced"
