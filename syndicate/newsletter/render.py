"""Digest rendering: Jinja -> MJML -> email HTML (CSS inlined), plus the plain-text part.

The only module that imports mjml. Rendered once per digest; the unsubscribe token is a
placeholder that delivery fills in per recipient, so no template work is per person.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import css_inline
import jinja2
import nh3
from markupsafe import Markup
from mjml import mjml2html

from syndicate.config import Config
from syndicate.content.markup import is_svg, shorten
from syndicate.content.posts import render_post
from syndicate.errors import TemplateError
from syndicate.models import Digest, Post, RenderedEmail
from syndicate.resources import templates_dir

HTML_TEMPLATE = "digest.mjml.j2"
TEXT_TEMPLATE = "digest.txt.j2"
# Stands in for the per-recipient token; URL-safe, so it survives every escaping untouched.
TOKEN_PLACEHOLDER = "__syndicate_token__"  # noqa: S105 - a marker, not a secret
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=True)


def template_environment(config: Config) -> jinja2.Environment:
    """The user's template folder first, the shipped templates as the fallback."""
    return _environment(config.newsletter.templates, templates_dir())


@functools.lru_cache(maxsize=8)
def _environment(user_folder: Path | None, shipped: Path) -> jinja2.Environment:
    # One environment per folder pair, so templates are compiled once per process (Jinja
    # still reloads a template whose file changed), not once per digest.
    loaders: list[jinja2.BaseLoader] = []
    if user_folder is not None:
        loaders.append(jinja2.FileSystemLoader(user_folder))
    loaders.append(jinja2.FileSystemLoader(shipped))
    return jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        autoescape=jinja2.select_autoescape(
            enabled_extensions=("mjml.j2", "html.j2"), default_for_string=False
        ),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render_digest(digest: Digest, config: Config) -> RenderedEmail:
    """Render both parts; shorten summaries or drop images if Gmail would clip the HTML.

    Gmail clips messages over 102 KB, hiding the footer with the unsubscribe link, so the
    HTML must stay under `newsletter.max_html_bytes` (default 100,000).
    """
    env = template_environment(config)
    n = config.newsletter
    notes: list[str] = []
    short = min(n.summary_length, 140)
    attempts: list[tuple[int, bool, bool, str | None]] = [
        (n.summary_length, True, n.full_content, None)
    ]
    if n.full_content:
        attempts.append((n.summary_length, True, False, "full post content left out"))
    attempts.append((short, True, False, f"summaries shortened to {short} characters"))
    attempts.append((short, False, False, "images left out"))
    html = ""
    for summary_length, images, full, note in attempts:
        if note:
            notes.append(note)
        context = digest_context(digest, config, summary_length, images, full)
        html = compile_mjml(render_template(env, HTML_TEMPLATE, context), env)
        if len(html.encode()) <= n.max_html_bytes:
            break
    else:
        notes.append(f"still {len(html.encode()):,} bytes: Gmail will clip it")
    size = len(html.encode())
    if notes:
        notes.insert(0, f"digest HTML over {n.max_html_bytes:,} bytes (Gmail clips at 102 KB)")
        notes.append(f"final size {size:,} bytes")
    text_context = digest_context(digest, config, n.summary_length, False, False)
    text = render_template(env, TEXT_TEMPLATE, text_context)
    return RenderedEmail(
        subject=digest.subject,
        preheader=digest.preheader,
        html=html,
        text=text,
        notes=tuple(notes),
    )


def digest_context(
    digest: Digest, config: Config, summary_length: int, images: bool, full: bool
) -> dict[str, Any]:
    """Everything the templates see: plain values, URLs absolute and tagged with UTM."""
    site = config.site
    n = config.newsletter
    utm = dict(n.utm)
    posts = [_post_context(p, config, summary_length, images, full, utm) for p in digest.posts]
    return {
        "site": site_context(config, with_utm(site.url, utm, site.url)),
        "subject": digest.subject,
        "preheader": digest.preheader,
        "posts": posts,
        "count": len(posts),
        "archive_url": digest.archive_url,
        "unsubscribe_url": unsubscribe_url(config, TOKEN_PLACEHOLDER),
        "postal_address": n.postal_address,
    }


def site_context(config: Config, url: str | None = None) -> dict[str, Any]:
    """What every template knows of the site (`url` overrides the link, e.g. with UTM).
    An SVG logo is left out (the title shows instead): Gmail and Outlook show no SVG."""
    site = config.site
    return {
        "title": site.title,
        "url": url or site.url,
        "host": urlsplit(site.url).hostname or site.url,
        "logo": None if site.logo is None or is_svg(site.logo) else site.logo,
        "language": site.language,
    }


def unsubscribe_url(config: Config, token: str) -> str:
    """The unsubscribe link of one reader (in the email body and List-Unsubscribe alike)."""
    return link_with_token(config.newsletter.unsubscribe_url, token)


def link_with_token(base: str, token: str) -> str:
    """`base` with `token=...` added to its query (kept if it has one; before any #)."""
    parts = urlsplit(base)
    query = f"{parts.query}&token={token}" if parts.query else f"token={token}"
    return urlunsplit(parts._replace(query=query))


def _post_context(
    post: Post,
    config: Config,
    summary_length: int,
    images: bool,
    full: bool,
    utm: Mapping[str, str],
) -> dict[str, Any]:
    post = render_post(post)  # the summary may come from the first paragraph
    local = post.date.astimezone(config.site.tz)
    image = post.image if images and post.image and not is_svg(post.image.url) else None
    # Marked safe only here, after nh3: the one place post HTML enters a template unescaped.
    html = Markup(sanitize_html(post.html or "")) if full else None  # noqa: S704 - sanitised
    return {
        "title": post.title,
        "url": with_utm(post.url, utm, config.site.url),
        "date": local.strftime("%Y-%m-%d"),
        "date_text": f"{local:%B} {local.day}, {local.year}",
        "summary": shorten(post.summary, summary_length),
        "image_url": image.url if image else None,
        "image_alt": (image.alt or post.title) if image else None,
        "html": html,
        "tags": list(post.tags),
    }


def with_utm(url: str, utm: Mapping[str, str], site_url: str) -> str:
    """Add utm_* parameters to links into the site (never to other sites' links)."""
    if not utm or not url.startswith(site_url):
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in utm]
    query.extend(utm.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


_IMG = re.compile(r"<img\b[^>]*?\bsrc=\"([^\"]*)\"[^>]*>")


def sanitize_html(html: str) -> str:
    """Post HTML made safe for an inbox: no script, iframe, event handlers or javascript:;
    and no SVG images, which Gmail and Outlook do not display."""
    clean = str(nh3.clean(html, url_schemes={"http", "https", "mailto"}))
    return _IMG.sub(lambda m: "" if is_svg(m[1].replace("&amp;", "&")) else m[0], clean)


def render_template(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    """Render one template; any Jinja error becomes a TemplateError with file and line."""
    try:
        template = env.get_template(name)
        return template.render(context)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateError(
            _template_path(env, exc.name or name, exc.filename),
            exc.lineno,
            f"template syntax error: {exc.message}",
        ) from None
    except jinja2.TemplateNotFound as exc:
        raise TemplateError(str(exc.name), None, "template not found") from None
    except jinja2.UndefinedError as exc:
        where, line = _template_frame(exc.__traceback__, env, name)
        raise TemplateError(
            where,
            line,
            f"template uses an undefined variable: {exc.message}",
            "the variables are site, subject, preheader, posts, count, archive_url, "
            "unsubscribe_url and postal_address (see README)",
        ) from None
    except jinja2.TemplateError as exc:
        where, line = _template_frame(exc.__traceback__, env, name)
        raise TemplateError(where, line, f"template error: {exc}") from None


_MJ_TAG = re.compile(r"<(mj-[a-z-]+)")


def compile_mjml(source: str, env: jinja2.Environment, name: str = HTML_TEMPLATE) -> str:
    """MJML -> HTML with the inline styles applied. Rejects what mjml-python lets through."""
    shown = _template_path(env, name, None)
    try:
        html = str(mjml2html(source, disable_comments=True))
    except ValueError as exc:
        raise TemplateError(shown, None, f"MJML compiler rejected the template: {exc}") from None
    # mjml-python passes unknown tags through silently; an email with <mj-foo> is broken.
    unknown = _MJ_TAG.search(html)
    if unknown:
        line = source.count("\n", 0, source.find(f"<{unknown[1]}")) + 1
        raise TemplateError(
            shown,
            None,
            f"unknown MJML tag <{unknown[1]}> (line {line} of the rendered MJML)",
            "see https://documentation.mjml.io for the components",
        )
    # mjml-python leaves <mj-style inline="inline"> rules in a <style> tag; inline them
    # (many clients drop <style>), without fetching any remote stylesheet.
    return str(_INLINER.inline(html))


def _template_path(env: jinja2.Environment, name: str, filename: str | None) -> str:
    if filename:
        return filename
    loader = env.loader
    if isinstance(loader, jinja2.ChoiceLoader):
        for choice in loader.loaders:
            if isinstance(choice, jinja2.FileSystemLoader):
                for folder in choice.searchpath:
                    candidate = Path(folder) / name
                    if candidate.is_file():
                        return str(candidate)
    return name


def _template_frame(
    tb: TracebackType | None, env: jinja2.Environment, name: str
) -> tuple[str, int | None]:
    """The template file and line an error was raised at (Jinja maps its frames)."""
    found: tuple[str, int | None] = (_template_path(env, name, None), None)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def render_confirmation(config: Config, confirm_url: str) -> RenderedEmail:
    """The double opt-in email: one button, and the same link in the text part."""
    env = template_environment(config)
    subject = f"Confirm your subscription to {config.site.title}"
    context = {
        "site": site_context(config),
        "subject": subject,
        "confirm_url": confirm_url,
        "postal_address": config.newsletter.postal_address,
    }
    html = compile_mjml(render_template(env, "confirm.mjml.j2", context), env, "confirm.mjml.j2")
    text = render_template(env, "confirm.txt.j2", context)
    return RenderedEmail(subject=subject, preheader=subject, html=html, text=text)
