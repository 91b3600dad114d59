"""Markdown to HTML, links made absolute, and the text helpers posts need.

Pure functions over strings; the Markdown instance itself comes from engine.py.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urljoin, urlparse, urlsplit

import lxml.html
import nh3
from lxml import etree

from syndicate.content.engine import new_markdown

# XML 1.0 forbids C0 controls other than tab, LF and CR, and U+FFFE/U+FFFF.
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ufffe\uffff]")
_SPACES = re.compile(r"\s+")
_URL_ATTRS = ("href", "src", "poster", "cite")
_XML_NAME = re.compile(r"[A-Za-z_][\w.-]*")

# What feed readers show of a post's own HTML: nh3's defaults (tables, code, images,
# figure, details, ...) plus media and the attributes Markdown writes (footnote ids,
# code classes). No script, style, iframe, object, embed, form, event handler or style
# attribute; URLs only http(s), mailto and relative (data: images are dropped too).
_FEED_TAGS = nh3.ALLOWED_TAGS | {"picture", "source", "video", "audio", "track", "section"}
_FEED_ATTRIBUTES = {
    **{tag: set(attrs) for tag, attrs in nh3.ALLOWED_ATTRIBUTES.items()},
    "*": {"id", "class", "title", "lang", "dir"},
    "a": {"href", "hreflang", "title"},
    "img": {"src", "srcset", "sizes", "alt", "width", "height", "loading", "align"},
    "source": {"src", "srcset", "sizes", "type", "media"},
    "video": {"src", "poster", "controls", "width", "height", "loop", "muted", "preload"},
    "audio": {"src", "controls", "loop", "preload"},
    "track": {"src", "kind", "srclang", "label", "default"},
    "time": {"datetime"},
    "details": {"open"},
    "ol": {"start", "type", "reversed"},
}
_FEED_URL_SCHEMES = {"http", "https", "mailto"}
_TAG = re.compile(r"<[A-Za-z/!?][^<>]*>")


_md = new_markdown()


@dataclass(frozen=True, slots=True)
class Rendered:
    """A post body rendered once: HTML for RSS/JSON/email, XHTML for Atom, and the lead."""

    html: str
    xhtml: str | None  # None when the HTML cannot be expressed as XHTML
    lead: str  # the first prose paragraph as plain text


def render_markdown(body: str, base_url: str, sanitize: bool = True) -> Rendered:
    """Markdown -> HTML with every relative href/src/srcset made absolute against `base_url`,
    plus its XHTML form and first paragraph, all from one parse of the HTML.

    With `sanitize` (the default; feeds.allow_raw_html turns it off), the author's raw
    HTML is cleaned by `sanitize_feed_html` before anything else sees it."""
    global _md
    _md.reset()
    try:
        html = _md.convert(body)
    except BaseException:
        # A failed conversion (RecursionError on absurd nesting) leaves the shared
        # instance's parser state half-unwound, and reset() does not clear it: every later
        # post would come out as escaped text. Start again from a fresh instance.
        _md = new_markdown()
        raise
    check_nesting(html)
    # The sanitiser is for the author's raw HTML. Where Markdown wrote all of it, the tree
    # is checked instead for what the sanitiser would drop (~0.1 ms a post less).
    checked = sanitize and _markdown_only(html, _md.author_html())
    rendered = _rendered(
        html if checked or not sanitize else sanitize_feed_html(html), base_url, checked, sanitize
    )
    if rendered is None:  # Markdown wrote something the sanitiser drops: let it
        rendered = _rendered(sanitize_feed_html(html), base_url, False, True)
    assert rendered is not None
    return rendered


def _rendered(html: str, base_url: str, checked: bool, sanitized: bool) -> Rendered | None:
    """The parts, from the HTML to publish; None when `checked` (the HTML is Markdown's
    own, not sanitised) and the sanitiser would change something. `sanitized`: every
    element and attribute is one the sanitiser allows, or is `checked` to be."""
    if not checked:  # else `_markdown_only` found no character XML forbids
        html = strip_xml_forbidden(html)
    if not html.strip():
        return Rendered("", "", "")
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    not_xml = _absolutize_tree(root, base_url, checked)
    if not_xml is None:
        return None
    html = _inner(etree.tostring(root, encoding="unicode", method="html"))
    lead = next(
        (text for p in root.iterchildren("p") if (text := clean_line(p.text_content()))), ""
    )
    return Rendered(html, _xhtml_of(root, not_xml, sanitized), lead)


# In the HTML Markdown writes itself: its escapes (and the footnotes' `&#160;&#8617;`);
# a `&` before anything else is an entity of the author's, in a URL or a title, which
# the sanitiser's HTML5 parser may read otherwise than lxml's.
_NOT_MARKDOWNS_ESCAPE = re.compile(r"&(?!(?:amp|lt|gt|quot|#160|#8617);)")
_OPENING_TAG = re.compile(r"<([A-Za-z][A-Za-z0-9]*)")
_LINK_TAG = re.compile(r"<(/?)a[\s>]")


def _markdown_only(html: str, author_html: bool) -> bool:
    """Is `html` all Markdown's own writing (no raw HTML or entity of the author's, no
    character XML forbids), its elements all allowed, no link in a link (which an HTML5
    parser takes apart)? Its attributes are checked by `_absolutize_tree`. In Markdown's
    HTML every `<` in text is escaped: each one left opens or closes an element."""
    if author_html or _NOT_MARKDOWNS_ESCAPE.search(html) or has_xml_forbidden(html):
        return False
    if not set(_OPENING_TAG.findall(html)) <= _FEED_TAGS:
        return False
    depth = 0
    for closing in _LINK_TAG.findall(html):
        depth += -1 if closing else 1
        if depth > 1:
            return False
    return True


_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
# An http(s) URL whose host the URL parser takes as it is: DNS labels, the last one not
# a number (then it would be read as an IPv4 address), no punycode to check, a port.
_PLAIN_WEB_URL = re.compile(
    r"https?://(?:[A-Za-z0-9-]+\.)*[A-Za-z][A-Za-z0-9-]*(?::[0-9]{1,4})?(?:[/?#]|$)", re.I
)


def _kept_url(url: str) -> bool:
    """Does the sanitiser keep this URL (ammonia: relative, or absolute http, https or
    mailto that the URL parser accepts)? False when unsure: the sanitiser then decides."""
    if not url.isprintable() or " " in url:
        return False
    scheme = _SCHEME.match(url)
    if scheme is None:
        return True  # relative (no scheme): kept as it is
    name = scheme.group(1).lower()
    if name == "mailto":
        return True
    return name in ("http", "https") and "xn--" not in url and bool(_PLAIN_WEB_URL.match(url))


# Every attribute of every element under the wrapper <div> (which has none), found by
# libxml2: walking the elements in Python, once for the URLs and once more for the XHTML,
# cost ~0.1 ms of a post's ~3.5 ms render.
_ATTRIBUTES = etree.XPath("descendant::*/@*")
_GENERIC_ATTRIBUTES = _FEED_ATTRIBUTES["*"]
NotXML = list[tuple[etree._Element, str]]  # (element, attribute name XML cannot carry)


def _absolutize_tree(root: lxml.html.HtmlElement, base_url: str, checked: bool) -> NotXML | None:
    """Make every URL attribute absolute; -> the attributes `_xhtml_of` must drop. With
    `checked`, None if the sanitiser would drop an attribute (or its URL)."""
    found = _ATTRIBUTES(root)
    not_xml: NotXML = []
    for value in found if isinstance(found, list) else ():
        if not isinstance(value, etree._ElementUnicodeResult):
            continue
        element, name = value.getparent(), value.attrname
        if element is None or not isinstance(name, str):
            continue
        if checked and name not in _GENERIC_ATTRIBUTES:
            if name not in _FEED_ATTRIBUTES.get(element.tag, ()):
                return None
            if (name == "href" or name == "src") and not _kept_url(value):
                return None
        if name in _URL_ATTRS:
            element.set(name, _join(base_url, value))
        elif name == "srcset":
            element.set(name, _absolute_srcset(value, base_url))
        elif not _XML_NAME.fullmatch(name):
            not_xml.append((element, name))
    return not_xml


def _inner(serialised: str) -> str:
    """The children of the wrapper <div> that fragment_fromstring added."""
    return serialised[len("<div>") : -len("</div>")]


def _join(base_url: str, value: str) -> str:
    value = value.strip()
    if value.lower().startswith(("javascript:", "data:", "mailto:", "tel:")):
        return value
    colon = base_url.find(":")
    if colon > 0 and _ABSOLUTE.match(value):  # what urljoin makes of it: not the page's
        return _absolute(base_url[:colon], value)
    if _PLAIN_PATH.fullmatch(value) and (base := _base_of(base_url)) is not None:
        return _joined_path(base[0], base[1], value)
    return urljoin(base_url, value)


# A reference that is only a path: no scheme or host (no ':', no leading '//'), no query,
# fragment or parameters, nothing urlsplit strips. Most links between posts are such
# (`../other-post/`, `/images/1.png`): ~6 a post, at ~6 µs each through urljoin.
_PLAIN_PATH = re.compile(r"(?!//)[A-Za-z0-9._~!$&'()*+,=@/%-]+")


@functools.lru_cache(maxsize=64)
def _base_of(base_url: str) -> tuple[str, tuple[str, ...]] | None:
    """An http(s) page's `scheme://host` and the segments of its folder, as urljoin
    splits them; None for any other base (urljoin then does it all)."""
    parts = urlparse(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    folder = parts.path.split("/")
    if folder[-1] != "":
        del folder[-1]  # the page itself: not part of the folder
    return f"{parts.scheme}://{parts.netloc}", tuple(folder)


def _joined_path(origin: str, folder: tuple[str, ...], path: str) -> str:
    """`urljoin(page, path)` for a `_PLAIN_PATH` against a page `_base_of` split: the
    same steps (RFC 3986 dot segments as Python resolves them), without parsing again."""
    if path[:1] == "/":
        segments = path.split("/")
    else:
        segments = [*folder, *path.split("/")]
        segments[1:-1] = filter(None, segments[1:-1])
    resolved: list[str] = []
    for segment in segments:
        if segment == "..":
            if resolved:
                resolved.pop()
        elif segment != ".":
            resolved.append(segment)
    if segments[-1] in (".", ".."):
        resolved.append("")
    joined = "/".join(resolved) or "/"
    return f"{origin}{joined}" if joined[:1] == "/" else f"{origin}/{joined}"


# A URL with its own scheme and host: urljoin gives it back as it is (another scheme than
# the page's) or rebuilt from its own parts (the same scheme), never from the page's URL.
_ABSOLUTE = re.compile(r"https?://[^/?#]")


@functools.lru_cache(maxsize=4096)
def _absolute(scheme: str, value: str) -> str:
    """urljoin(a page of `scheme`, value) for an absolute URL (the same links recur in
    post after post: ~6 µs each, ~10 a post)."""
    return urljoin(f"{scheme}://example.invalid/", value)


def _absolute_srcset(srcset: str, base_url: str) -> str:
    candidates = []
    for candidate in srcset.split(","):
        parts = candidate.strip().split(None, 1)
        if not parts:
            continue
        parts[0] = _join(base_url, parts[0])
        candidates.append(" ".join(parts))
    return ", ".join(candidates)


MAX_NESTING = 512
_TAG_TOKEN = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9-]*)(?:[^>]*?(/))?[^>]*>")
# Elements that never nest (void) or that HTML closes by itself (optional end tags):
# a table of 10,000 unclosed <tr><td> is long, not deep.
_FLAT_TAGS = frozenset(
    [
        "area",
        "base",
        "br",
        "col",
        "embed",
        "hr",
        "img",
        "input",
        "link",
        "meta",
        "source",
        "track",
        "wbr",
        "p",
        "li",
        "dt",
        "dd",
        "tr",
        "td",
        "th",
        "thead",
        "tbody",
        "tfoot",
        "option",
        "optgroup",
        "colgroup",
        "caption",
        "rt",
        "rp",
        "html",
        "head",
        "body",
    ]
)
_HTML_CONTAINERS = frozenset(
    [
        "div",
        "span",
        "a",
        "b",
        "i",
        "u",
        "s",
        "em",
        "strong",
        "small",
        "big",
        "sub",
        "sup",
        "code",
        "pre",
        "blockquote",
        "section",
        "article",
        "aside",
        "nav",
        "header",
        "footer",
        "main",
        "figure",
        "figcaption",
        "details",
        "summary",
        "table",
        "ul",
        "ol",
        "dl",
        "font",
        "center",
        "label",
        "form",
        "button",
        "select",
        "textarea",
        "object",
        "iframe",
        "video",
        "audio",
        "picture",
        "q",
        "cite",
        "abbr",
        "mark",
        "del",
        "ins",
        "kbd",
        "samp",
        "var",
        "time",
        "nobr",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    ]
)


def check_nesting(html: str) -> None:
    """RecursionError when raw HTML nests deeper than MAX_NESTING. html5ever (under nh3)
    and lxml slow down quadratically with depth: 150,000 nested <div> (750 KB) keep nh3
    busy for minutes, inside Rust where no time limit can stop it."""
    if html.count("<") <= MAX_NESTING:
        return  # each level opens with a '<': too few of them to nest that deep
    depth = 0
    for match in _TAG_TOKEN.finditer(html):
        closing, name, self_closing = match.groups()
        name = name.lower()
        if name in _FLAT_TAGS or (self_closing and name not in _HTML_CONTAINERS):
            continue  # `<path/>` closes itself in SVG; `<div/>` opens a div all the same
        if closing:
            depth = max(0, depth - 1)
        elif (depth := depth + 1) > MAX_NESTING:
            raise RecursionError(f"HTML nested more than {MAX_NESTING} levels deep")


def sanitize_feed_html(html: str) -> str:
    """HTML a feed reader can show safely: what readers display is kept, anything that
    runs code or loads another page in place (script, iframe, on*=, javascript:) goes."""
    return str(_feed_cleaner()(html))


_FEED_RULES: dict[str, Any] = {
    "tags": _FEED_TAGS,
    "attributes": _FEED_ATTRIBUTES,
    "url_schemes": _FEED_URL_SCHEMES,
    "link_rel": None,
    "strip_comments": True,
}


@functools.cache
def _feed_cleaner() -> Callable[[str], str]:
    """nh3's sanitiser with these rules built once (nh3.Cleaner, nh3 >= 0.2.18): handing
    the sets to nh3.clean for every post made it build them again each time, a third of
    its ~80 µs a post."""
    cleaner = getattr(nh3, "Cleaner", None)
    if cleaner is not None:
        return cast(Callable[[str], str], cleaner(**_FEED_RULES).clean)
    return functools.partial(nh3.clean, **_FEED_RULES)


@functools.lru_cache(maxsize=4096)  # each post's title and description, in ~12 feed files
def plain_text(text: str) -> str:
    """Text for a title or summary, which feeds carry as plain text: tags are removed (as
    jekyll-feed's strip_html does: `<b>bold</b> writers` -> `bold writers`), the rest,
    entities and `&` included, stays as written."""
    return clean_line(_TAG.sub("", text))


def title_text(title: str) -> str:
    """A post's title as feeds carry it: plain text, never empty (Atom requires a title,
    and feedgen refuses an entry without one). A title that is nothing but markup-like
    text (`<?>`, `<b></b>`) keeps that text as written rather than becoming empty."""
    return plain_text(title) or clean_line(title) or "(untitled)"


def strip_xml_forbidden(text: str) -> str:
    """Remove the characters XML 1.0 cannot carry, so one bad byte never breaks a feed."""
    return XML_FORBIDDEN.sub("", text) if has_xml_forbidden(text) else text


# Every byte but the C0 controls XML 1.0 forbids: in UTF-8 those bytes are those
# characters, never part of another's encoding.
_XML_BYTES = bytes(c for c in range(256) if c >= 0x20 or c in (0x09, 0x0A, 0x0D))


def has_xml_forbidden(text: str) -> bool:
    """Does `text` hold a character XML 1.0 forbids? The question a post's body and HTML
    are asked every run: bytes.translate answers it at ~4 GB/s, where the regular
    expression went at ~0.4 GB/s."""
    if text.encode("utf-8", "surrogatepass").translate(None, _XML_BYTES):
        return True
    return "\ufffe" in text or "\uffff" in text


def clean_line(text: str) -> str:
    """One line of plain text: control characters dropped, runs of white space folded.
    Most texts (titles, tags, summaries, again in every feed) are one already: printable
    (no control character, no white space but the space) with no two spaces together
    and none at either end, which `isprintable` and two finds tell in C."""
    if text.isprintable() and "  " not in text and text[:1] != " " and text[-1:] != " ":
        return text
    return _SPACES.sub(" ", _CONTROL.sub(" ", text)).strip()


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


def _xhtml_of(root: lxml.html.HtmlElement, not_xml: NotXML, sanitized: bool) -> str | None:
    """The fragment as well-formed XHTML for Atom `type="xhtml"` content, or None.

    In XHTML the text is escaped once, as XML; `type="html"` would escape HTML entities a
    second time (`&amp;amp;`), which is valid but trips readers and reviewers alike.
    Mutates `root` (drops the attributes `not_xml` names, e.g. Vue's '@click'), so it
    runs last.

    ASCII, with character references for the rest: the Atom writer parses it again, so the
    feed's bytes are the same, and one `é` no longer makes Python store every character
    of the post in two or four bytes (feeds hold thousands of posts in memory).
    """
    for element, name in not_xml:
        del element.attrib[name]
    data = etree.tostring(root, method="xml")  # ASCII: no declaration
    if not data.startswith(b"<div>"):
        return None
    if not sanitized:  # raw HTML may name an element `svg:rect` or hold `<!-- -- -->`
        try:
            etree.fromstring(data)
        except etree.XMLSyntaxError:
            return None
    return _inner(data.decode("ascii"))


def is_svg(url: str) -> bool:
    """An SVG image, which Gmail and Outlook do not display (by extension or data: type)."""
    if url[:15].lower().startswith("data:image/svg"):
        return True
    return urlsplit(url).path.lower().endswith((".svg", ".svgz"))
