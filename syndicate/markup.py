"""Markdown to HTML, links made absolute, and the text helpers posts need.

The only module that imports `markdown`; pure functions over strings.
"""

from __future__ import annotations

import html as html_lib
import re
from urllib.parse import urljoin

import lxml.html
import markdown
from lxml import etree

# XML 1.0 forbids C0 controls other than tab, LF and CR, and U+FFFE/U+FFFF.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff]")
_SPACES = re.compile(r"\s+")
_URL_ATTRS = ("href", "src", "poster", "cite")
_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_BLOCK_START = re.compile(r"^\s{0,3}([#>|*+-]|\d+[.)]\s|!\[|<|\[\^|\[[^\]]*\]:)")

# Smarty punctuation as characters rather than named entities (&rsquo;), which XML
# does not know and which would otherwise leak into JSON Feed and email text.
_SMARTY = {
    "left-single-quote": "‘",
    "right-single-quote": "’",
    "left-double-quote": "“",
    "right-double-quote": "”",
    "left-angle-quote": "«",
    "right-angle-quote": "»",
    "ellipsis": "…",
    "ndash": "–",
    "mdash": "—",
}
_md = markdown.Markdown(
    extensions=["extra", "sane_lists", "smarty"],
    extension_configs={"smarty": {"substitutions": _SMARTY}},
    output_format="html",
)


def render_markdown(body: str, base_url: str) -> str:
    """Markdown -> HTML with every relative href/src/srcset made absolute against `base_url`."""
    _md.reset()
    return absolutize(strip_xml_forbidden(_md.convert(body)), base_url)


def inline_text(markdown_text: str) -> str:
    """Plain text of a Markdown fragment: markup removed, entities decoded, spaces folded."""
    _md.reset()
    rendered = _md.convert(markdown_text)
    if not rendered.strip():
        return ""
    root = lxml.html.fragment_fromstring(rendered, create_parent="div")
    return clean_line(root.text_content())


def absolutize(fragment: str, base_url: str) -> str:
    """Rewrite relative URLs in an HTML fragment so it reads correctly inside a feed reader."""
    if "=" not in fragment:
        return fragment
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    for element in root.iter():
        if not isinstance(element.tag, str):
            continue
        for attr in _URL_ATTRS:
            value = element.get(attr)
            if value is not None:
                element.set(attr, _join(base_url, value))
        srcset = element.get("srcset")
        if srcset is not None:
            element.set("srcset", _absolute_srcset(srcset, base_url))
    text = etree.tostring(root, encoding="unicode", method="html")
    return text[len("<div>") : -len("</div>")]


def _join(base_url: str, value: str) -> str:
    value = value.strip()
    if value.lower().startswith(("javascript:", "data:", "mailto:", "tel:")):
        return value
    return urljoin(base_url, value)


def _absolute_srcset(srcset: str, base_url: str) -> str:
    candidates = []
    for candidate in srcset.split(","):
        parts = candidate.strip().split(None, 1)
        if not parts:
            continue
        parts[0] = _join(base_url, parts[0])
        candidates.append(" ".join(parts))
    return ", ".join(candidates)


def strip_xml_forbidden(text: str) -> str:
    """Remove the characters XML 1.0 cannot carry, so one bad byte never breaks a feed."""
    return XML_FORBIDDEN.sub("", text)


def clean_line(text: str) -> str:
    """One line of plain text: control characters dropped, runs of white space folded."""
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()


def first_paragraph(body: str) -> str:
    """The first prose paragraph of a Markdown body as plain text ("" if there is none).

    Headings, lists, quotes, tables, images, HTML blocks and code fences are skipped:
    a summary is the author's first sentences, not the page furniture around them.
    """
    lines: list[str] = []
    in_fence = False
    for line in body.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            if lines:
                break
            continue
        if in_fence:
            continue
        if not line.strip():
            if lines:
                break
            continue
        if not lines and (_BLOCK_START.match(line) or line.startswith(("    ", "\t"))):
            continue
        if lines and re.match(r"^\s{0,3}(=+|-+)\s*$", line):
            # A setext heading underline: what we collected was a heading.
            lines = []
            continue
        lines.append(line)
    return inline_text("\n".join(lines)) if lines else ""


def shorten(text: str, limit: int) -> str:
    """Cut plain text at a word boundary to at most `limit` characters, adding an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:.-–—") + "…"


def html_escape(text: str) -> str:
    """Escape text for HTML content and attribute values (quotes too)."""
    return html_lib.escape(text, quote=True)


def to_xhtml(fragment: str) -> str | None:
    """The fragment as well-formed XHTML for Atom `type="xhtml"` content, or None.

    In XHTML the text is escaped once, as XML; `type="html"` would escape HTML entities a
    second time (`&amp;amp;`), which is valid but trips readers and reviewers alike.
    """
    if not fragment.strip():
        return ""
    root = lxml.html.fragment_fromstring(fragment, create_parent="div")
    for element in root.iter():
        if isinstance(element.tag, str) and element is not root:
            for name in list(element.attrib):
                if not re.fullmatch(r"[A-Za-z_][\w.-]*", name):
                    del element.attrib[name]  # not an XML name, e.g. Vue's '@click'
    text = etree.tostring(root, encoding="unicode", method="xml")
    if not text.startswith("<div>"):
        return None
    body = text[len("<div>") : -len("</div>")]
    try:
        etree.fromstring(f"<div>{body}</div>")
    except etree.XMLSyntaxError:
        return None
    return body
