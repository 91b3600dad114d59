"""config.yaml -> a frozen, validated Config.

Every problem is collected (not just the first) and named by its key path and line,
with a suggestion for a misspelt key. Paths in the file are relative to the file.
"""

from __future__ import annotations

import dataclasses
import difflib
import ipaddress
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from syndicate.errors import ConfigError, Diagnostic
from syndicate.errors import shown as show_value
from syndicate.feeds.registry import FORMATS
from syndicate.models import Author

_Section = TypeVar("_Section")

FEED_FORMATS = tuple(FORMATS)
MAX_CONFIG_BYTES = 1024 * 1024  # a real config.yaml is a few KB
MAX_ALIAS_VALUES = 10_000  # values that YAML aliases may add by expansion ("billion laughs")
MAX_YAML_DEPTH = 100  # nesting of lists and mappings; real config and front matter use 2-4
POST_URL_FIELDS = frozenset({"slug", "year", "month", "day"})


@dataclass(frozen=True, slots=True)
class SiteConfig:
    title: str
    url: str  # absolute, always ending in "/"
    description: str
    language: str
    timezone: str
    author: Author | None
    logo: str | None = None  # absolute URL
    static_dir: Path | None = None  # where the files behind site.url live (image sizes)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


@dataclass(frozen=True, slots=True)
class ContentConfig:
    paths: tuple[Path, ...]
    patterns: tuple[str, ...]
    post_url: str


@dataclass(frozen=True, slots=True)
class FeedsConfig:
    formats: tuple[str, ...]
    limit: int
    full_content: bool
    per_tag: bool
    per_category: bool
    stylesheet: bool
    websub_hub: str | None = None
    allow_raw_html: bool = False  # True: post HTML reaches the feeds unsanitised
    archive: bool = False  # RFC 5005 archived feeds: archive/<n>.xml and .atom
    archive_page_size: int = 50
    archive_per_tag: bool = False  # archives for tag and category feeds too


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    build: str  # crontab: 5 fields, or 6 with seconds first
    newsletter: str | None
    misfire_grace_seconds: int
    lock_timeout_seconds: float


@dataclass(frozen=True, slots=True)
class NewsletterConfig:
    templates: Path | None  # the user's folder; missing files fall back to the shipped ones
    subject: str
    preheader: str
    sender: str  # the `from` key
    reply_to: str | None
    postal_address: str
    max_posts: int
    first_lookback_days: int
    tags: tuple[str, ...]
    categories: tuple[str, ...]
    summary_length: int
    full_content: bool
    utm: tuple[tuple[str, str], ...]  # (utm_source, newsletter), ...
    unsubscribe_url: str
    max_html_bytes: int
    enabled: bool = True  # false: no digest is planned, queued, archived or sent
    unsubscribe_mailto: str | None = None  # a mailbox something processes; else no mailto


# A host name, or an address literal such as [192.0.2.1] or [IPv6:2001:db8::1].
HELO_PATTERN = (
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[(?:IPv6:)?[0-9A-Fa-f.:]+\]"
)


@dataclass(frozen=True, slots=True)
class SMTPConfig:
    host: str
    port: int
    security: str  # starttls | ssl | none
    username: str | None
    password_env: str
    connections: int
    rate_per_second: float  # 0 = unlimited
    timeout: float
    ca_file: Path | None
    helo: str | None  # the EHLO name; None: this machine's FQDN (transport.default_helo)


@dataclass(frozen=True, slots=True)
class DKIMConfig:
    selector: str
    domain: str
    key_file: Path


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    transport: str  # smtp | file
    file_dir: Path
    smtp: SMTPConfig
    max_attempts: int
    retry_base_seconds: int
    dkim: DKIMConfig | None
    list_id: str
    secret_env: str


@dataclass(frozen=True, slots=True)
class ServeConfig:
    enabled: bool  # the daemon (`syndicate run`) serves too
    host: str
    port: int
    public_url: str  # where readers reach this server (links in confirmation emails)
    trusted_proxies: tuple[str, ...]  # whose X-Forwarded-For is believed
    subscribe_per_minute: int
    max_body_bytes: int
    confirmations_per_hour: int = 3  # confirmation emails per address (an inbox flood)
    max_connections_per_client: int = 20  # open connections per client address (slowloris)
    header_timeout_seconds: float = 10.0  # a request's headers must arrive within this


@dataclass(frozen=True, slots=True)
class SubscribersConfig:
    allow_special_domains: bool = False  # .test, .local, localhost ... (intranets, staging)


@dataclass(frozen=True, slots=True)
class Config:
    path: Path
    site: SiteConfig
    content: ContentConfig
    output_dir: Path
    feeds: FeedsConfig
    state_url: str
    schedule: ScheduleConfig
    newsletter: NewsletterConfig
    delivery: DeliveryConfig
    serve: ServeConfig
    subscribers: SubscribersConfig = SubscribersConfig()


_REQUIRED = object()


@dataclass(frozen=True, slots=True)
class _Key:
    """One leaf of the schema: its expected type and default."""

    kind: type | tuple[type, ...]
    default: Any = _REQUIRED
    item: type | None = None  # element type for lists
    low: float | None = None  # inclusive bounds for numbers
    high: float | None = None
    nullable: bool = False  # an explicit `key: null` means None (off), not the default


_Schema = dict[str, "_Key | _Schema"]

SCHEMA: _Schema = {
    "site": {
        "title": _Key(str),
        "url": _Key(str),
        "description": _Key(str, ""),
        "language": _Key(str, "en"),
        "timezone": _Key(str, "UTC"),
        "author": {"name": _Key(str, None), "email": _Key(str, None)},
        "logo": _Key(str, None),
        "static_dir": _Key(str, None),
    },
    "content": {
        "paths": _Key(list, ["posts"], item=str),
        "patterns": _Key(list, ["*.md", "*.markdown", "*.txt"], item=str),
        "post_url": _Key(str, "/posts/{slug}/"),
    },
    "output": {"dir": _Key(str, "public")},
    "feeds": {
        "formats": _Key(list, list(FEED_FORMATS), item=str),
        "limit": _Key(int, 50, low=1),
        "full_content": _Key(bool, True),
        "per_tag": _Key(bool, True),
        "per_category": _Key(bool, True),
        "stylesheet": _Key(bool, True),
        "websub_hub": _Key(str, None),
        "allow_raw_html": _Key(bool, False),
        "archive": _Key(bool, False),
        "archive_page_size": _Key(int, 50, low=1, high=1000),
        "archive_per_tag": _Key(bool, False),
    },
    "state": {"url": _Key(str, "sqlite:///state/syndicate.db")},
    "newsletter": {
        "templates": _Key(str, None),
        "subject": _Key(str, "{site}: {count} new {noun}"),
        "preheader": _Key(str, "{first_title}"),
        "from": _Key(str, None),
        "reply_to": _Key(str, None),
        "postal_address": _Key(str, ""),
        "max_posts": _Key(int, 10, low=1),
        "first_lookback_days": _Key(int, 7, low=0, high=36_500),
        "tags": _Key(list, [], item=str),
        "categories": _Key(list, [], item=str),
        "summary_length": _Key(int, 280, low=40),
        "full_content": _Key(bool, False),
        "utm": {"source": _Key(str, None), "medium": _Key(str, None), "campaign": _Key(str, None)},
        "unsubscribe_url": _Key(str, None),
        "unsubscribe_mailto": _Key(str, None),
        "max_html_bytes": _Key(int, 100_000, low=10_000),
        "enabled": _Key(bool, True),
    },
    "delivery": {
        "transport": _Key(str, "file"),
        "file_dir": _Key(str, "outbox"),
        "smtp": {
            "host": _Key(str, "localhost"),
            "port": _Key(int, 587, low=1, high=65535),
            "security": _Key(str, "starttls"),
            "username": _Key(str, None),
            "password_env": _Key(str, "SYNDICATE_SMTP_PASSWORD"),
            "connections": _Key(int, 4, low=1, high=100),
            "rate_per_second": _Key((int, float), 10, low=0),
            "timeout": _Key((int, float), 30, low=0.1),
            "ca_file": _Key(str, None),
            "helo": _Key(str, None),
        },
        "max_attempts": _Key(int, 5, low=1),
        "retry_base_seconds": _Key(int, 300, low=1),
        "dkim": {
            "selector": _Key(str, None),
            "domain": _Key(str, None),
            "key_file": _Key(str, None),
        },
        "list_id": _Key(str, None),
        "secret_env": _Key(str, "SYNDICATE_SECRET"),
    },
    "serve": {
        "enabled": _Key(bool, False),
        "host": _Key(str, "127.0.0.1"),
        "port": _Key(int, 8080, low=1, high=65535),
        "public_url": _Key(str, None),
        "trusted_proxies": _Key(list, [], item=str),
        "subscribe_per_minute": _Key(int, 5, low=1),
        "max_body_bytes": _Key(int, 16_384, low=1024),
        "confirmations_per_hour": _Key(int, 3, low=1),
        "max_connections_per_client": _Key(int, 20, low=1),
        "header_timeout_seconds": _Key((int, float), 10, low=0.5, high=300),
    },
    "subscribers": {"allow_special_domains": _Key(bool, False)},
    "schedule": {
        "build": _Key(str, "*/15 * * * *"),
        "newsletter": _Key(str, "0 8 * * mon", nullable=True),
        "misfire_grace_seconds": _Key(int, 3600, low=1),
        "lock_timeout_seconds": _Key((int, float), 60, low=0),
    },
}

_TYPE_NAMES = {str: "a string", int: "a whole number", bool: "true or false", list: "a list"}


class _Problems:
    """Collects diagnostics, placing each at the line of its key when known."""

    def __init__(self, path: str, lines: dict[str, int]) -> None:
        self.path = path
        self.lines = lines
        self.items: list[Diagnostic] = []

    def add(self, key: str, message: str, hint: str | None = None) -> None:
        line = self.lines.get(key) or self.lines.get(key.rsplit(".", 1)[0])
        self.items.append(Diagnostic(self.path, line, "error", f"{key}: {message}", hint))


def load_config(path: Path | str) -> Config:
    """Read and validate config.yaml; raise ConfigError listing every problem."""
    path = Path(path)
    shown = str(path)
    try:
        with path.open("rb") as file:
            data = file.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError.one(
                shown,
                f"config file is larger than {MAX_CONFIG_BYTES // 1024} KB",
                "a config.yaml is a few KB: check that --config names the right file",
            )
        text = data.decode("utf-8-sig")
    except FileNotFoundError:
        raise ConfigError.one(
            shown,
            "config file not found",
            "pass --config PATH, or run from the folder that holds config.yaml",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError.one(shown, f"cannot read: {exc}") from None
    return parse_config(text, path)


def parse_config(text: str, path: Path) -> Config:
    """Validate config text; `path` anchors relative paths and names the file in errors."""
    shown = str(path)
    try:
        node, raw = load_yaml(text, yaml.SafeLoader)
    except RecursionError:
        raise ConfigError.one(shown, "invalid YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(
            shown, [Diagnostic(shown, line, "error", f"invalid YAML: {problem}")]
        ) from None
    lines = _key_lines(node) if node is not None else {}
    problems = _Problems(shown, lines)
    for key, line in _duplicate_keys(node):
        problems.items.append(
            Diagnostic(shown, line, "error", f"{key}: duplicate key (the last one would win)")
        )
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        problems.add("(top)", "the file must be a mapping of sections (site:, content:, ...)")
        raise ConfigError(shown, problems.items)
    values = _check(raw, SCHEMA, "", problems)
    if problems.items:
        raise ConfigError(shown, problems.items)
    config = _build(values, path.resolve().parent, problems, shown)
    if problems.items or config is None:
        raise ConfigError(shown, problems.items)
    return config


def with_overrides(
    config: Config, content: tuple[Path, ...] | None = None, out: Path | None = None
) -> Config:
    """Apply --content and --out (paths relative to the working directory)."""
    if content:
        config = replace(
            config,
            content=replace(config.content, paths=tuple(p.resolve() for p in content)),
        )
    if out is not None:
        config = replace(config, output_dir=out.resolve())
    return config


def _duplicate_keys(node: yaml.Node | None, prefix: str = "") -> list[tuple[str, int]]:
    """Keys given twice in one mapping: YAML keeps the last silently; we refuse."""
    found: list[tuple[str, int]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            if key in seen:
                found.append((key, key_node.start_mark.line + 1))
            seen.add(key)
            found.extend(_duplicate_keys(value_node, key + "."))
    return found


def _key_lines(node: yaml.Node, prefix: str = "") -> dict[str, int]:
    """Map each key path ("site.url") to its 1-based line in the file."""
    lines: dict[str, int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = f"{prefix}{key_node.value}"
            lines[key] = key_node.start_mark.line + 1
            lines.update(_key_lines(value_node, key + "."))
    return lines


def _check(
    raw: dict[str, Any], schema: _Schema, prefix: str, problems: _Problems
) -> dict[str, Any]:
    """Type-check `raw` against `schema`, fill defaults, report unknown keys."""
    _check_unknown_keys(raw, schema, prefix, problems)
    values: dict[str, Any] = {}
    for key, spec in schema.items():
        where = f"{prefix}{key}"
        value: Any = raw.get(key)
        if isinstance(spec, dict):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                problems.add(where, f"expected a mapping of keys, got {_describe(value)}")
                continue
            values[key] = _check(value, spec, where + ".", problems)
        elif value is None:
            if spec.nullable and key in raw:
                values[key] = None
                continue
            if spec.default is _REQUIRED:
                problems.add(where, "is required", f"add '{key}:' under '{prefix.rstrip('.')}'")
            values[key] = spec.default
        else:
            problem = _value_problem(value, spec)
            if problem:
                problems.add(where, problem)
            else:
                values[key] = value
    return values


def _check_unknown_keys(
    raw: dict[str, Any], schema: _Schema, prefix: str, problems: _Problems
) -> None:
    for key in raw:
        if key not in schema:
            close = difflib.get_close_matches(str(key), list(schema), n=1)
            hint = f"did you mean '{prefix}{close[0]}'?" if close else None
            known = ", ".join(schema)
            problems.add(f"{prefix}{key}", f"unknown key (known keys here: {known})", hint)


def _value_problem(value: Any, spec: _Key) -> str | None:
    """What is wrong with a value given for a key (its type, bounds, list items), if
    anything."""
    if (spec.kind is int and isinstance(value, bool)) or not isinstance(value, spec.kind):
        names = (
            _TYPE_NAMES.get(spec.kind, str(spec.kind))
            if isinstance(spec.kind, type)
            else "a number"
        )
        return f"expected {names}, got {_describe(value)}"
    if not _in_bounds(value, spec):
        return f"{_bounds_text(spec)}, got {show_value(value)}"
    if spec.item is not None:
        bad = [v for v in cast(list[Any], value) if not isinstance(v, spec.item)]
        if bad:
            return f"every item must be {_TYPE_NAMES[spec.item]}, got {show_value(bad[0])}"
    return None


def _in_bounds(value: Any, spec: _Key) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True
    return (spec.low is None or value >= spec.low) and (spec.high is None or value <= spec.high)


def _bounds_text(spec: _Key) -> str:
    if spec.high is None:
        return f"must be at least {spec.low:g}"
    return f"must be from {spec.low:g} to {spec.high:g}"


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"{str(value).lower()} (a boolean)"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{show_value(value)} ({type(value).__name__})"


def _build(values: dict[str, Any], root: Path, problems: _Problems, shown: str) -> Config | None:
    """Semantic checks on type-correct values, then the frozen Config (None if any
    check failed: every problem is in `problems`)."""
    site = _site(values["site"], root, problems)
    content = _content(values["content"], root, problems)
    feeds = _feeds(values["feeds"], problems)
    schedule = _schedule(values["schedule"], problems)
    newsletter = _newsletter(values["newsletter"], site.url, values["site"], root, problems)
    delivery = _delivery(values["delivery"], site.url, root, problems)
    serve = _serve(values["serve"], site.url, problems)
    state_url = _anchor_sqlite(values["state"]["url"], root)
    state_problem = state_url_error(state_url)
    if state_problem:
        problems.add("state.url", *state_problem)
    if problems.items:
        return None
    return Config(
        path=Path(shown),
        site=site,
        content=content,
        output_dir=(root / values["output"]["dir"]).resolve(),
        feeds=feeds,
        state_url=state_url,
        schedule=schedule,
        newsletter=newsletter,
        delivery=delivery,
        serve=serve,
        subscribers=_section(SubscribersConfig, values["subscribers"]),
    )


def _section(cls: type[_Section], values: Mapping[str, Any], **computed: Any) -> _Section:
    """A config dataclass from its section's checked values: each field from the key of
    the same name (lists as tuples, whole numbers as floats where a float is declared),
    unless `computed` gives it."""
    arguments = {}
    for item in dataclasses.fields(cls):  # type: ignore[arg-type]
        if item.name in computed:
            arguments[item.name] = computed[item.name]
            continue
        value = values[item.name]
        if isinstance(value, list):
            value = tuple(value)
        elif item.type == "float" and isinstance(value, int):
            value = float(value)
        arguments[item.name] = value
    return cls(**arguments)


def _site(site: dict[str, Any], root: Path, problems: _Problems) -> SiteConfig:
    url = site["url"].strip()
    if not _is_absolute_http(url):
        problems.add(
            "site.url",
            f"must be an absolute http(s) URL, got {show_value(url)}",
            "write the full address, e.g. https://example.org/",
        )
    if not url.endswith("/"):
        url += "/"
    try:
        ZoneInfo(site["timezone"])
    except (ZoneInfoNotFoundError, ValueError):
        close = _close_timezones(site["timezone"])
        hint = (
            f"did you mean '{close}'?" if close else "use an IANA name such as UTC or Europe/Paris"
        )
        problems.add("site.timezone", f"unknown time zone {show_value(site['timezone'])}", hint)
    author = site["author"]
    return _section(
        SiteConfig,
        site,
        url=url,
        author=Author(author["name"], author["email"]) if author["name"] else None,
        logo=urljoin(url, site["logo"]) if site["logo"] else None,
        static_dir=(root / site["static_dir"]).resolve() if site["static_dir"] else None,
    )


def _content(content: dict[str, Any], root: Path, problems: _Problems) -> ContentConfig:
    _check_post_url(content["post_url"], problems)
    if not content["patterns"]:
        problems.add("content.patterns", "must name at least one file pattern, e.g. '*.md'")
    paths = tuple((root / p).resolve() for p in content["paths"])
    if not paths:
        problems.add("content.paths", "must name at least one folder")
    return _section(ContentConfig, content, paths=paths)


def _check_post_url(post_url: str, problems: _Problems) -> None:
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(post_url) if f is not None}
    except ValueError as exc:
        fields = set()
        problems.add("content.post_url", f"is not a valid pattern: {exc}")
    unknown = fields - POST_URL_FIELDS
    if not unknown and not _formats(post_url, slug="s", year="2025", month="01", day="01"):
        problems.add("content.post_url", f"is not a valid pattern: {show_value(post_url)}")
    elif unknown:
        problems.add(
            "content.post_url",
            f"unknown placeholder {{{sorted(unknown)[0]}}}",
            "use {slug}, {year}, {month} and {day}",
        )
    elif "slug" not in fields:
        problems.add("content.post_url", "must contain {slug} so every post gets its own URL")


def _feeds(feeds: dict[str, Any], problems: _Problems) -> FeedsConfig:
    for fmt in feeds["formats"]:
        if fmt not in FEED_FORMATS:
            near = difflib.get_close_matches(fmt, FEED_FORMATS, n=1)
            hint = f"did you mean '{near[0]}'?" if near else "use rss, atom and/or json"
            problems.add("feeds.formats", f"unknown format {show_value(fmt)}", hint)
    hub = feeds["websub_hub"]
    if hub is not None and not _is_absolute_http(hub):
        problems.add("feeds.websub_hub", f"must be an absolute http(s) URL, got {show_value(hub)}")
    _check_archive(feeds, problems)
    return _section(FeedsConfig, feeds, formats=tuple(dict.fromkeys(feeds["formats"])))


def _schedule(schedule: dict[str, Any], problems: _Problems) -> ScheduleConfig:
    for key in ("build", "newsletter"):
        expression = schedule[key]
        error = cron_error(expression) if expression is not None else None
        if error:
            problems.add(
                f"schedule.{key}",
                f"is not a cron expression ({error}): {show_value(expression)}",
                "five fields: minute hour day month weekday, e.g. '*/15 * * * *'",
            )
    return _section(ScheduleConfig, schedule)


def _serve(serve: dict[str, Any], site_url: str, problems: _Problems) -> ServeConfig:
    public_url = serve["public_url"] or site_url
    if not public_url.endswith("/"):
        public_url += "/"
    if not _is_absolute_http(public_url):
        problems.add(
            "serve.public_url", f"must be an absolute http(s) URL, got {show_value(public_url)}"
        )
    for proxy in serve["trusted_proxies"]:
        try:
            if proxy != "*":
                ipaddress.ip_network(proxy, strict=False)
        except ValueError:
            problems.add(
                "serve.trusted_proxies",
                f"{show_value(proxy)} is not an IP address or network",
                "e.g. 127.0.0.1, ::1 or 10.0.0.0/8 (the reverse proxy's address)",
            )
    return _section(ServeConfig, serve, public_url=public_url)


SUBJECT_FIELDS = frozenset({"site", "count", "noun", "first_title", "date"})


def _check_archive(feeds: dict[str, Any], problems: _Problems) -> None:
    """RFC 5005 archives exist for RSS and Atom only (JSON Feed has no paging links), and
    per-tag archives only on top of the main one: say so rather than write nothing."""
    if feeds["archive"] and not {"rss", "atom"} & set(feeds["formats"]):
        problems.add(
            "feeds.archive",
            "needs rss or atom in feeds.formats (JSON Feed has no archived feeds)",
            "add rss and/or atom to feeds.formats, or set feeds.archive: false",
        )
    if feeds["archive_page_size"] > feeds["limit"] and feeds["archive"]:
        problems.add(
            "feeds.archive_page_size",
            f"must be at most feeds.limit ({feeds['limit']}), got {feeds['archive_page_size']}",
            "the subscription feed must hold the whole newest archive page; lower the"
            " page size or raise feeds.limit",
        )
    if feeds["archive_per_tag"] and not feeds["archive"]:
        problems.add(
            "feeds.archive_per_tag",
            "has no effect without feeds.archive: true",
            "set feeds.archive: true as well, or remove feeds.archive_per_tag",
        )


def _newsletter(
    section: dict[str, Any], site_url: str, site: dict[str, Any], root: Path, problems: _Problems
) -> NewsletterConfig:
    for key in ("subject", "preheader"):
        try:
            fields = {f for _, f, _, _ in string.Formatter().parse(section[key]) if f is not None}
        except ValueError as exc:
            problems.add(f"newsletter.{key}", f"is not a valid pattern: {exc}")
            continue
        unknown = fields - SUBJECT_FIELDS
        sample = {"site": "s", "count": "1", "noun": "post", "first_title": "t", "date": "d"}
        if not unknown and not _formats(section[key], **sample):
            problems.add(f"newsletter.{key}", f"is not a valid pattern: {show_value(section[key])}")
        elif unknown:
            problems.add(
                f"newsletter.{key}",
                f"unknown placeholder {{{sorted(unknown)[0]}}}",
                "use {site}, {count}, {noun} (post/posts), {first_title} and {date}",
            )
    sender = section["from"]
    if sender is None:
        email = site["author"]["email"]
        sender = f"{site['title']} <{email}>" if email else None
    if sender is None:
        sender = f"{site['title']} <newsletter@{urlsplit(site_url).hostname or 'localhost'}>"
    unsubscribe = section["unsubscribe_url"] or urljoin(site_url, "unsubscribe")
    if not _is_absolute_http(unsubscribe):
        problems.add(
            "newsletter.unsubscribe_url",
            f"must be an absolute http(s) URL, got {show_value(unsubscribe)}",
        )
    elif section["unsubscribe_url"] and not secure_unsubscribe_url(unsubscribe):
        problems.add(
            "newsletter.unsubscribe_url",
            f"must be https (RFC 8058 one-click unsubscribe), got {unsubscribe!r}",
            "use an https:// address; plain http only works on localhost or 127.0.0.1, for testing",
        )
    mailto = section["unsubscribe_mailto"]
    if mailto is not None and not re.fullmatch(
        r"[^@\s<>,;:\"]+@[^@\s<>,;:\"]+\.[^@\s<>,;:\"]+", mailto
    ):
        problems.add(
            "newsletter.unsubscribe_mailto",
            f"must be a plain email address, got {mailto!r}",
            "the mailbox your bounce processor reads, e.g. unsubscribe@example.org",
        )
    return _section(
        NewsletterConfig,
        section,
        templates=(root / section["templates"]).resolve() if section["templates"] else None,
        sender=sender,
        utm=tuple((f"utm_{k}", v) for k, v in section["utm"].items() if v),
        unsubscribe_url=unsubscribe,
    )


def _delivery(
    section: dict[str, Any], site_url: str, root: Path, problems: _Problems
) -> DeliveryConfig:
    if section["transport"] not in ("smtp", "file"):
        problems.add(
            "delivery.transport", f"must be smtp or file, got {show_value(section['transport'])}"
        )
    smtp = section["smtp"]
    if smtp["security"] not in ("starttls", "ssl", "none"):
        problems.add(
            "delivery.smtp.security",
            f"must be starttls, ssl or none, got {show_value(smtp['security'])}",
        )
    for key in ("password_env", "secret_env"):
        holder = smtp if key == "password_env" else section
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", holder[key]):
            where = "delivery.smtp.password_env" if key == "password_env" else "delivery.secret_env"
            problems.add(
                where,
                "must name an environment variable, not hold the secret itself",
                "e.g. SYNDICATE_SMTP_PASSWORD; export the secret in that variable",
            )
    helo = smtp["helo"]
    if helo is not None and not re.fullmatch(HELO_PATTERN, helo):
        problems.add(
            "delivery.smtp.helo",
            f"must be a host name or an address literal such as [192.0.2.1], got {helo!r}",
            "use this machine's public DNS name, e.g. mail.example.org",
        )
    dkim = section["dkim"]
    dkim_config = None
    given = [k for k in ("selector", "domain", "key_file") if dkim[k]]
    if given and len(given) < 3:
        missing = sorted({"selector", "domain", "key_file"} - set(given))
        problems.add(
            "delivery.dkim", f"needs selector, domain and key_file (missing {', '.join(missing)})"
        )
    elif given:
        dkim_config = DKIMConfig(
            dkim["selector"], dkim["domain"], (root / dkim["key_file"]).resolve()
        )
    host = urlsplit(site_url).hostname or "localhost"
    ca_file = (root / smtp["ca_file"]).resolve() if smtp["ca_file"] else None
    return _section(
        DeliveryConfig,
        section,
        file_dir=(root / section["file_dir"]).resolve(),
        smtp=_section(SMTPConfig, smtp, ca_file=ca_file),
        dkim=dkim_config,
        list_id=section["list_id"] or f"newsletter.{host}",
    )


def _formats(pattern: str, **fields: str) -> bool:
    """Does str.format accept this pattern (conversions, format specs, nesting)?"""
    try:
        pattern.format(**fields)
    except (ValueError, KeyError, IndexError, AttributeError, TypeError):
        return False
    return True


# Characters no URL may hold as they are (RFC 3986): whitespace and control characters
# (urlsplit silently drops CR, LF and tab, so the URL checked is not the URL written into
# headers and pages), quotes, angle brackets (they end List-Unsubscribe's <...>) and the
# backslash (browsers read `http://evil.example\@localhost/` as host evil.example).
_URL_FORBIDDEN = re.compile(r'[\x00-\x20\x7f<>"\\^`{|}]')


def _is_absolute_http(url: str) -> bool:
    if _URL_FORBIDDEN.search(url):
        return False
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number or too big
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})


def secure_unsubscribe_url(url: str) -> bool:
    """RFC 8058 wants https for one-click unsubscribe; plain http only on a loopback host
    (localhost, 127.0.0.1, ::1), where tests and local previews run."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return True
    host = (parts.hostname or "").rstrip(".").lower()
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cron_trigger_fields(expression: str) -> dict[str, str]:
    """A crontab line as APScheduler CronTrigger fields; 6 fields put seconds first."""
    fields = expression.split()
    names = ["minute", "hour", "day", "month", "day_of_week"]
    if len(fields) == 6:
        names = ["second", *names]
    elif len(fields) != 5:
        raise ValueError(f"expected 5 fields (or 6 with seconds), got {len(fields)}")
    return dict(zip(names, fields, strict=True))


def cron_error(expression: str) -> str | None:
    """Why a cron expression is invalid, or None if APScheduler accepts it."""
    from apscheduler.triggers.cron import CronTrigger

    try:
        CronTrigger(**cron_trigger_fields(expression), timezone="UTC")
    except ValueError as exc:
        return str(exc)
    return None


STATE_URL_HINT = (
    "e.g. sqlite:///state/syndicate.db, or postgresql+psycopg://user@host:5432/db "
    "(the password in PGPASSWORD, not here)"
)


def state_url_error(url: str) -> tuple[str, str] | None:
    """Why SQLAlchemy could not open this state.url: (message, hint), or None.

    Parsed, dialect and driver looked up, without connecting; the URL is never quoted
    (it may hold a password), only its parts."""
    import sqlalchemy as sa
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    if "://" not in url:
        return "is not a database URL (expected dialect://...)", STATE_URL_HINT
    try:
        parsed = sa.engine.make_url(url)
    except (ArgumentError, ValueError) as exc:
        reason = "a bad port" if "int()" in str(exc) else "it cannot be parsed"
        return f"is not a valid database URL ({reason})", STATE_URL_HINT
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        return f"is not a valid database URL (port {parsed.port} is not 1-65535)", STATE_URL_HINT
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and (
        database in ("", ":memory:")
        or "memory" in str(parsed.query.get("mode", "")).lower()
        or database.lower().startswith("file::memory:")
    ):
        return (
            "is an in-memory database: it forgets between runs what was published and "
            "sent, so every run would announce every post again",
            STATE_URL_HINT,
        )
    try:
        dialect = parsed.get_dialect()
    except NoSuchModuleError:
        return f"unknown database {show_value(parsed.drivername)}", STATE_URL_HINT
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = getattr(exc, "name", None) or parsed.drivername
        return (
            f"the database driver for {show_value(parsed.drivername)} is not installed "
            f"(no module {show_value(module)})",
            "install that Python package (for PostgreSQL: pip install 'psycopg[binary]'), "
            "or use sqlite:///...",
        )
    return None


def sqlite_path(url: str) -> Path | None:
    """The file behind a sqlite:/// URL (None for other databases and :memory:)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:":
        return Path(url[len(prefix) :])
    return None


def _anchor_sqlite(url: str, root: Path) -> str:
    """Make a relative SQLite path relative to the config file, like every other path."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
        return prefix + str((root / url[len(prefix) :]).resolve())
    return url


def _close_timezones(name: str) -> str | None:
    from zoneinfo import available_timezones

    close = difflib.get_close_matches(name, sorted(available_timezones()), n=1)
    return close[0] if close else None


# Not in errors.py: a PyYAML error by descent, so every `except yaml.YAMLError` that
# reports a bad file (with its line) reports this one too.
class YAMLLimitError(yaml.MarkedYAMLError):
    """YAML that would expand beyond what a config or front matter can sensibly hold."""


def load_yaml(text: str, loader: type[yaml.SafeLoader]) -> tuple[yaml.Node | None, Any]:
    """-> (node graph, value). Aliases are checked before anything is built from the graph:
    a few hundred bytes of nested aliases ("billion laughs") would otherwise expand to
    gigabytes in every walk over the value, and in any message that quotes it."""
    check_yaml_depth(text, loader)
    parser = loader(text)
    try:
        node = parser.get_single_node()
        if node is None:
            return None, None
        check_aliases(node, MAX_ALIAS_VALUES)
        return node, parser.construct_document(node)
    finally:
        parser.dispose()


def check_yaml_depth(text: str, loader: type[yaml.SafeLoader]) -> None:
    """Raise YAMLLimitError if collections nest deeper than MAX_YAML_DEPTH. Building the
    node graph recurses once per level: libyaml's composer (CSafeLoader) overflows the C
    stack and kills the process (`x: [[[[...` or `- - - - ...`, 60 KB is enough), the
    Python one hits RecursionError. The event stream is flat, so it is counted first."""
    parser = loader(text)
    depth = 0
    try:
        while not parser.check_event(yaml.StreamEndEvent):
            event = parser.get_event()  # type: ignore[no-untyped-call]
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_YAML_DEPTH:
                    raise YAMLLimitError(
                        problem=f"values nested more than {MAX_YAML_DEPTH} levels deep",
                        problem_mark=cast(yaml.Mark, event.start_mark),  # C or Python Mark
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    finally:
        parser.dispose()


def check_aliases(root: yaml.Node, limit: int) -> None:
    """Raise YAMLLimitError if aliases add more than `limit` values, or refer to themselves.

    Counts the expanded size of every node once (an iterative walk, memoised: nodes an
    alias shares are the same object), so checking costs as much as the text is long.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        children = _children(node)
        if done:
            open_nodes.discard(id(node))
            sizes[id(node)] = min(1 + sum(sizes[id(c)] for c in children), 10 * limit)
            continue
        if id(node) in sizes:
            continue
        if id(node) in open_nodes:
            raise YAMLLimitError(
                problem="an alias refers to the value that contains it",
                problem_mark=node.start_mark,
            )
        open_nodes.add(id(node))
        stack.append((node, True))
        stack.extend((child, False) for child in children if id(child) not in sizes)
    distinct = len(sizes)
    if sizes[id(root)] - distinct > limit:
        node = root
        while True:  # point at the innermost value that expands too far
            bigger = [c for c in _children(node) if sizes[id(c)] > limit]
            if not bigger:
                break
            node = bigger[0]
        raise YAMLLimitError(
            problem=f"aliases expand to more than {limit:,} values (a 'billion laughs' bomb?)",
            problem_mark=node.start_mark,
        )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []
