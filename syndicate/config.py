"""config.yaml -> a frozen, validated Config.

Every problem is collected (not just the first) and named by its key path and line,
with a suggestion for a misspelt key. Paths in the file are relative to the file.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import yaml

from syndicate.errors import ConfigError, Diagnostic
from syndicate.errors import shown as show_value
from syndicate.feeds.registry import FORMATS
from syndicate.models import Author
from syndicate.record import Field, Record, field, fields, replace

TYPE_CHECKING = False  # not typing's: importing it costs ~2 ms of config's 30 (record.py)
if TYPE_CHECKING:
    from typing import Any, TypeVar
    from zoneinfo import ZoneInfo

    _Section = TypeVar("_Section", bound=Record)

# Imported where used, not here (bench/config_load.py: 30 ms on every cron call): difflib
# (only a misspelt name needs it) and zoneinfo (~1.5 ms with the sysconfig it reads).

FEED_FORMATS = tuple(FORMATS)
MAX_CONFIG_BYTES = 1024 * 1024  # a real config.yaml is a few KB
MAX_ALIAS_VALUES = 10_000  # values that YAML aliases may add by expansion ("billion laughs")
MAX_YAML_DEPTH = 100  # nesting of lists and mappings; real config and front matter use 2-4
POST_URL_FIELDS = frozenset({"slug", "year", "month", "day"})


_REQUIRED: Any = object()


class _Key(Record):
    """One key of config.yaml: its type, default, bounds and what it means (for the
    README's table, generated from these declarations: see config_doc.py)."""

    kind: type | tuple[type, ...]
    default: Any = _REQUIRED
    item: type | None = None  # element type for lists
    low: float | None = None  # inclusive bounds for numbers
    high: float | None = None
    nullable: bool = False  # an explicit `key: null` means None (off), not the default
    doc: str = ""
    shown_default: str | None = None  # the default as the README says it, if not literal


_Schema = dict[str, "_Key | _Schema"]
_KINDS: dict[str, type | tuple[type, ...]] = {
    "str": str,
    "str | None": str,
    "Path": str,
    "Path | None": str,
    "int": int,
    "bool": bool,
    "float": (int, float),
    "tuple[str, ...]": list,
    "tuple[Path, ...]": list,
    "DomainLimits": dict,
}


def key(
    default: Any = _REQUIRED,
    *,
    doc: str,
    name: str | None = None,
    low: float | None = None,
    high: float | None = None,
    nullable: bool = False,
    shown: str | None = None,
    keys: _Schema | None = None,
) -> Any:
    """Declare a config field as a key of config.yaml (`name`: its YAML name or dotted
    path when not the field's; `keys`: a mapping of keys that makes this one field)."""
    meta: dict[str, Any] = {"name": name, "keys": keys}
    meta["key"] = _Key(str, default, None, low, high, nullable, doc, shown)
    return field(metadata=meta)


def section(cls: type, *, name: str | None = None) -> Any:
    """Declare a field whose value is a whole section of keys (another config class)."""
    return field(metadata={"name": name, "section": cls})


def _leaf(item: Field) -> _Key:
    """The field's key, its kind taken from the field's type annotation."""
    declared: _Key = item.metadata["key"]
    annotation = str(item.type)
    kind = _KINDS[annotation]
    element = str if kind is list else None
    return replace(declared, kind=kind, item=element)


def schema_of(cls: type[Record]) -> _Schema:
    """The keys of config.yaml that a config class declares, by YAML name, in order."""
    schema: _Schema = {}
    for item in fields(cls):
        meta = item.metadata
        if not meta:
            continue  # not a key (Config.path)
        yaml_name = meta.get("name") or item.name
        if "section" in meta:
            value: _Key | _Schema = schema_of(meta["section"])
        elif meta.get("keys") is not None:
            value = meta["keys"]
        else:
            value = _leaf(item)
        *parents, last = yaml_name.split(".")
        target = schema
        for parent in parents:
            child = target.setdefault(parent, {})
            assert isinstance(child, dict)  # a dotted name's parents are mappings
            target = child
        target[last] = value
    return schema


def _sub(doc: str, default: Any = None, **bounds: Any) -> _Key:
    """A key of a mapping that makes one field (site.author.name ...): always a string."""
    return _Key(str, default, doc=doc, **bounds)


class SiteConfig(Record):
    title: str = key(doc="The site's name: feed titles.")
    url: str = key(  # absolute, always ending in "/"
        doc="Absolute `http(s)` base URL. Every link in a feed is made absolute against it;"
        " a trailing `/` is added. This and every other URL key (`feeds.websub_hub`,"
        " `serve.public_url`, `newsletter.unsubscribe_url`) must have a host and a valid"
        " port, and no spaces, line breaks, quotes, `<>`, `{}`, `|`, `^`, backtick or"
        " backslash (percent-encode them): a config error otherwise."
    )
    description: str = key("", doc="Feed description (falls back to the title).")
    language: str = key("en", doc="Feed language.")
    timezone: str = key(
        "UTC",
        doc="IANA time zone for date-only and naive dates, and for `--now` without an offset.",
    )
    author: Author | None = key(
        doc="",
        keys={
            "name": _sub("Feed author, and the author of posts that name none."),
            "email": _sub("The feed author's email (and the digest's sender by default)."),
        },
    )
    logo: str | None = key(  # absolute URL
        None,
        doc="Logo URL for the digest header (relative to `site.url`); else the site title.",
    )
    static_dir: Path | None = key(  # where the files behind site.url live (image sizes)
        None,
        doc="The folder of the files served under `site.url` (e.g. `static`, `public`): a"
        " featured image found there gets its real size and type in the RSS `enclosure`"
        ' and the Atom `rel="enclosure"` link. Without it, or for an image not found'
        " there (another host, a missing file), RSS has no `enclosure` (it requires the"
        " length; a made-up `0` is what validators flag) but keeps `media:content`, and"
        " Atom links the image without a length.",
    )

    @property
    def tz(self) -> ZoneInfo:
        from zoneinfo import ZoneInfo

        return ZoneInfo(self.timezone)


class ContentConfig(Record):
    paths: tuple[Path, ...] = key(
        ["posts"], doc="Folders read recursively (hidden files and folders skipped)."
    )
    patterns: tuple[str, ...] = key(
        ["*.md", "*.markdown", "*.txt"],
        doc="File name patterns of posts.",
        shown='`["*.md", "*.markdown", "*.txt"]`',
    )
    post_url: str = key(
        "/posts/{slug}/",
        doc="Where a post lives under `site.url`; placeholders `{slug}`, `{year}`,"
        " `{month}`, `{day}`.",
    )


class FeedsConfig(Record):
    formats: tuple[str, ...] = key(
        list(FORMATS),
        doc="Which files: `feed.xml` (RSS), `atom.xml`, `feed.json`.",
        shown="`[" + ", ".join(FORMATS) + "]`",
    )
    limit: int = key(50, low=1, doc="Newest N posts in each feed (main, per tag and per category).")
    full_content: bool = key(
        True,
        doc="Full HTML in the feeds (`content:encoded`, Atom `content`, `content_html`);"
        " else summaries only.",
    )
    per_tag: bool = key(True, doc="Also `tags/<slug>/feed.xml`, `atom.xml`, `feed.json`.")
    per_category: bool = key(True, doc="Also `categories/<slug>/...`.")
    stylesheet: bool = key(
        True,
        doc="Write `feed.xsl` and reference it from the RSS and Atom files, so a person who"
        " opens a feed in a browser sees a readable page.",
    )
    websub_hub: str | None = key(
        None,
        doc='A WebSub hub URL: the feeds link to it (`rel="hub"`) and a run that changed a'
        " feed POSTs `hub.mode=publish` for it (10 s timeout; a failure is a warning,"
        " never a failed run).",
    )
    allow_raw_html: bool = key(  # True: post HTML reaches the feeds unsanitised
        False,
        doc="`false`: the HTML of post bodies is sanitised for the feeds (see below)."
        " `true`: your raw HTML reaches the feeds as written (scripts included): only for"
        " content you fully trust and readers that sanitise themselves.",
    )
    archive: bool = key(  # RFC 5005 archived feeds: archive/<n>.xml and .atom
        False,
        doc="Also publish the whole history as RFC 5005 archived feeds: `archive/<n>.xml`"
        " (RSS) and `archive/<n>.atom` (see [archived feeds](#archived-feeds-rfc-5005))."
        " Needs `rss` or `atom` in `feeds.formats` (else a config error).",
    )
    archive_page_size: int = key(
        50,
        low=1,
        high=1000,
        doc="Posts per archive page, 1 to 1,000 and at most `feeds.limit` (else a config"
        " error). Changing it renumbers every page.",
    )
    archive_per_tag: bool = key(  # archives for tag and category feeds too
        False,
        doc="Archives for the tag and category feeds too (`tags/<slug>/archive/<n>.xml`"
        " ...). Only with `feeds.archive: true` (else a config error).",
    )


class ScheduleConfig(Record):
    build: str = key(  # crontab: 5 fields, or 6 with seconds first
        "*/15 * * * *",
        doc="Daemon: when to poll for changes. Crontab syntax in `site.timezone`; 6 fields"
        " put seconds first.",
    )
    newsletter: str | None = key(
        "0 8 * * mon",
        nullable=True,
        doc="When `run` (cron or daemon) sends the digest. `null` (written out:"
        " `newsletter: null`) means no scheduled digest: `run` never queues one and only"
        " retries deferred messages; `syndicate send` still sends by hand.",
    )
    bounces: str | None = key(
        None,
        nullable=True,
        doc="Daemon: when to read the bounce mailbox (`bounces.maildir`, `mbox` or `imap`),"
        " e.g. `*/30 * * * *`; none by default (run `syndicate bounces` from cron instead).",
    )
    misfire_grace_seconds: int = key(
        3600,
        low=1,
        doc="A job missed by up to this long (sleep, restart) still runs, once (coalesced).",
    )
    lock_timeout_seconds: float = key(
        60, low=0, doc="How long a run waits for another to finish before exiting 75."
    )


class NewsletterConfig(Record):
    templates: Path | None = key(  # missing files fall back to the shipped ones
        None,
        doc="Your own template folder; any template missing there falls back to the"
        " shipped one in `templates/`.",
    )
    subject: str = key(
        "{site}: {count} new {noun}",
        doc="Subject pattern: `{site}`, `{count}`, `{noun}` (post/posts), `{first_title}`,"
        " `{date}`. The subject is plain text: control characters and line breaks are"
        " removed and it is cut at 150 characters.",
    )
    preheader: str = key(
        "{first_title}",
        doc="The preview line mail clients show after the subject (same placeholders).",
    )
    sender: str = key(
        None,
        name="from",
        shown="`site.title <site.author.email>`",
        doc="The sender, `Name <address>`.",
    )
    reply_to: str | None = key(None, doc="The Reply-To address.")
    postal_address: str = key(
        "",
        doc="Your postal address, shown in every digest's footer (anti-spam laws require"
        " it for commercial mail).",
    )
    max_posts: int = key(10, low=1, doc="At most this many posts per digest, newest first.")
    first_lookback_days: int = key(
        7,
        low=0,
        high=36_500,
        doc="The first digest takes the posts that entered the feeds in this many days;"
        " later ones take what entered the feeds since the previous digest (see below).",
    )
    tags: tuple[str, ...] = key(
        [], doc="Only posts with one of these tags (case-insensitive); empty = every post."
    )
    categories: tuple[str, ...] = key(
        [], doc="Only posts in one of these categories (case-insensitive); empty = every post."
    )
    summary_length: int = key(
        280, low=40, doc="Summaries are shortened to this many characters, at a word."
    )
    full_content: bool = key(
        False,
        doc="Put the whole post (sanitised with nh3: no script, iframe, event handlers,"
        " `javascript:`) instead of the summary, as HTML in the email and the web archive.",
    )
    utm: tuple[tuple[str, str], ...] = key(  # (utm_source, newsletter), ...
        doc="",
        keys={
            part: _sub(f"The `utm_{part}` parameter added to links into the site.")
            for part in ("source", "medium", "campaign")
        },
    )
    unsubscribe_url: str = key(
        None,
        shown="`site.url` + `unsubscribe`",
        doc="Where the unsubscribe link points; delivery appends a signed `?token=`. Must be"
        " `https://` (RFC 8058 one-click unsubscribe): an `http://` URL is a config error"
        " (exit 2, with a hint), except on a loopback host (`localhost`, `127.0.0.1`,"
        " `::1`) for testing. When it defaults from an `http://` `site.url`, feeds still"
        " build, but `send` (and the scheduled digest) refuse with the same error as soon"
        " as there is somebody to send to: set this key to an https address.",
    )
    unsubscribe_mailto: str | None = key(  # a mailbox something processes; else no mailto
        None,
        doc="A mailbox for the `mailto:` alternative in `List-Unsubscribe`"
        " (`<mailto:ADDRESS?subject=unsubscribe%20TOKEN>`). Set it only if something"
        " reads that mailbox and unsubscribes the token in the subject (e.g. your bounce"
        " processor); unset, the header carries the https URL alone. Not a plain"
        " address: config error.",
    )
    max_html_bytes: int = key(
        100_000,
        low=10_000,
        doc="Gmail clips messages over 102 KB (hiding the unsubscribe link): over this the"
        " renderer leaves out full content, then shortens summaries to 140 characters,"
        " then drops images, and says so.",
    )
    enabled: bool = key(  # false: no digest is planned, queued, archived or sent
        True,
        doc="`false` turns the newsletter off: `run` never plans, queues, sends or retries a"
        " digest and writes nothing in `public/newsletter/`; `send` and `digest --preview`"
        " say so and exit 2; `check` no longer warns about SVG featured images. Archive"
        " pages already written are left alone (emails already sent link to them); delete"
        " `public/newsletter/` yourself to take them down. Queued or deferred messages"
        " stay in the outbox until it is turned on again.",
    )


# A host name, or an address literal such as [192.0.2.1] or [IPv6:2001:db8::1].
HELO_PATTERN = (
    r"(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[(?:IPv6:)?[0-9A-Fa-f.:]+\]"
)


class SMTPConfig(Record):
    host: str = key("localhost", doc="The SMTP server.")
    port: int = key(587, low=1, high=65535, doc="Its port.")
    security: str = key(  # starttls | ssl | none
        "starttls",
        doc="`starttls` (required: a server that does not offer it is an error, never a"
        " silent downgrade), `ssl` (implicit TLS, port 465) or `none`. Certificates are"
        " always verified.",
    )
    username: str | None = key(
        None,
        doc="Log in with this user; the password is read from the environment variable"
        " named by `password_env`.",
    )
    password_env: str = key(
        "SYNDICATE_SMTP_PASSWORD",
        doc="The *name* of the variable holding the password (the secret never sits in"
        " config.yaml).",
    )
    connections: int = key(
        4, low=1, high=100, doc="Parallel connections, each reused for many messages."
    )
    rate_per_second: float = key(  # 0 = unlimited
        10, low=0, doc="Messages per second across all connections; `0` = unlimited."
    )
    timeout: float = key(30, low=0.1, doc="Seconds per SMTP operation.")
    ca_file: Path | None = key(None, doc="A CA bundle for a private CA.")
    helo: str | None = key(  # None: this machine's FQDN (transport.default_helo)
        None,
        shown="this machine's FQDN",
        doc="The name sent with `EHLO`. By default the fully qualified name, else the host"
        " name (never the `[127.0.0.1]` address literal smtplib falls back to for a name"
        " without a dot, which receiving servers score as spam). Must be a host name or"
        " an address literal such as `[192.0.2.1]`; anything else is a config error"
        " (exit 2).",
    )


class DKIMConfig(Record):
    selector: str
    domain: str
    key_file: Path


_DKIM_DOC = (
    "Sign every message with DKIM (dkimpy): digests, previews and confirmation emails."
    " `selector`, `domain` and `key_file` all three or none."
)


class DomainLimit(Record):
    """The limits of one destination: a recipient domain, a group of domains that share
    one provider's limits (an MX group such as gmail.com + googlemail.com), or `default`
    (each other domain, on its own). 0 = no limit of its own (the overall ones apply)."""

    name: str
    domains: tuple[str, ...]  # normalised (lower case, A-labels); () for default
    connections: int = 0
    rate_per_second: float = 0.0


class DomainLimits(Record):
    """`delivery.domains`: the default limits and the named domains and groups."""

    default: DomainLimit = DomainLimit("default", ())
    named: tuple[DomainLimit, ...] = ()

    def destination(self, domain: str) -> tuple[str, DomainLimit]:
        """-> the destination a (normalised) recipient domain belongs to (a group's name,
        else the domain itself) and its limits."""
        for entry in self.named:
            if domain in entry.domains:
                return entry.name, entry
        return domain, self.default


def normal_domain(domain: str) -> str | None:
    """A domain as throttling compares it: lower case, no final dot, A-labels
    (`Exämple.ORG` -> `xn--exmple-cua.org`). None when it is no valid domain name."""
    domain = domain.strip().rstrip(".").lower()
    if not domain.isascii():
        import idna  # email-validator's own dependency: the same IDNA 2008 it applies

        try:
            domain = idna.encode(domain, uts46=True).decode("ascii")
        except idna.IDNAError:
            return None
    return domain if _DOMAIN.fullmatch(domain) else None


_DOMAIN = re.compile(r"(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")


class DeliveryConfig(Record):
    transport: str = key(  # smtp | file
        "file",
        doc="`smtp`, or `file`: each message is written as an `.eml` file (the exact bytes"
        " SMTP would carry) to `delivery.file_dir`.",
    )
    file_dir: Path = key("outbox", doc="Folder of the file transport.")
    smtp: SMTPConfig = section(SMTPConfig)
    max_attempts: int = key(
        5,
        low=1,
        doc="A 4xx (or a dropped connection) is retried with exponential back-off"
        " (`retry_base_seconds` × 2^(attempt−1)); after this many attempts the message is"
        " `failed`.",
    )
    retry_base_seconds: int = key(300, low=1, doc="The first retry delay.")
    lease_seconds: int = key(
        300,
        low=1,
        high=86400,
        doc="With a PostgreSQL `state.url`, several `send` (or `run`) processes, on one"
        " host or many, share a digest's outbox: each leases a batch of rows for this long,"
        " renewed as each message starts; rows of a sender that died (kill -9, a lost host)"
        " are taken over by another once their lease has run out. See"
        " [several senders](#several-senders-on-postgresql).",
    )
    lease_batch: int = key(
        200,
        low=1,
        high=10000,
        doc="Rows a sender leases at a time (a dead sender's unsent rows wait up to"
        " `lease_seconds`; fewer rows a lease means less waiting, more queries).",
    )
    domains: DomainLimits = key(
        {},
        shown="none (only `delivery.smtp`'s overall limits)",
        doc="Limits per recipient domain and per group of domains that share one"
        " provider's limits (MX groups), e.g. `{default: {connections: 4, rate_per_second:"
        " 10}, google: {domains: [gmail.com, googlemail.com], connections: 2,"
        " rate_per_second: 5}, yahoo.com: {rate_per_second: 2}}`. Each entry takes"
        " `connections` (1 to 100: transactions in flight at once) and `rate_per_second`"
        " (`0` = none of its own); an entry with `domains:` is a group (its name is a label),"
        " one without is the domain it names; `default` applies to every other domain, each"
        " on its own. `delivery.smtp.connections` and `rate_per_second` stay the overall"
        " limits. See [throttling](#throttling-per-destination).",
    )
    throttle_pause_seconds: float = key(
        30,
        low=0.1,
        doc="A `421` or a `4.7.x` answer for one destination pauses it (only it) this long,"
        " doubled at each further one (with jitter: ×0.5 to 1), and halves its rate.",
    )
    throttle_max_pause_seconds: float = key(
        3600,
        low=0.1,
        doc="The longest such pause (at least `throttle_pause_seconds`).",
    )
    dkim: DKIMConfig | None = key(
        doc="",
        keys={
            "selector": _sub("The DKIM selector. " + _DKIM_DOC),
            "domain": _sub("The signing domain (`d=`). " + _DKIM_DOC),
            "key_file": _sub("The private key (PEM). " + _DKIM_DOC),
        },
    )
    list_id: str = key(None, shown="`newsletter.<site host>`", doc="The `List-Id` header.")
    return_path: str | None = key(  # VERP: bounces name their subscriber and digest
        None,
        doc="A VERP envelope sender (`MAIL FROM`) for digest messages, e.g."
        " `bounces+{token}@example.org`: `{token}` (once, in the local part) becomes a"
        " signed, lower-case token naming the recipient and the digest, so a bounce sent"
        " back to it says whose message failed (see [bounces](#bounces-and-complaints))."
        " The `From:` header is unchanged; confirmation emails keep `newsletter.from`."
        " Unset: the envelope sender is `newsletter.from`'s address. Not an address with"
        " one `{token}`: config error.",
    )
    secret_env: str = key(
        "SYNDICATE_SECRET",
        doc="The variable holding the key that signs unsubscribe tokens (at least 16"
        " bytes). Required as soon as there is someone to send to.",
    )


class ServeConfig(Record):
    enabled: bool = key(  # the daemon (`syndicate run`) serves too
        False, doc="The daemon (`syndicate run`) serves too, so one process does it all."
    )
    host: str = key("127.0.0.1", doc="Where to listen.")
    port: int = key(8080, low=1, high=65535, doc="The port to listen on.")
    public_url: str = key(  # where readers reach this server (links in confirmation emails)
        None,
        shown="`site.url`",
        doc="Where readers reach the server (the links in confirmation emails).",
    )
    trusted_proxies: tuple[str, ...] = key(  # whose X-Forwarded-For is believed
        [],
        doc="Reverse proxies (addresses or networks such as `10.0.0.0/8`) whose"
        " `X-Forwarded-For` gives the client address, for the rate limit. Only these: with"
        " `[]` the header is ignored from everyone, 127.0.0.1 included. A trusted proxy is"
        " also exempt from `max_connections_per_client`. An entry that is not an address"
        " or network is a config error.",
    )
    subscribe_per_minute: int = key(
        5,
        low=1,
        doc="Subscribe requests a minute per client address, well-formed or not; more get"
        " 429 with `Retry-After`.",
    )
    max_body_bytes: int = key(16_384, low=1024, doc="Larger request bodies get 413.")
    confirmations_per_hour: int = key(  # confirmation emails per address (an inbox flood)
        3,
        low=1,
        doc="Confirmation emails an hour to one address, whoever asks; further requests get"
        " the same 202 answer but no email.",
    )
    max_connections_per_client: int = key(  # open connections per client (slowloris)
        20,
        low=1,
        doc="Open connections per client address; more are closed at once (slowloris).",
    )
    header_timeout_seconds: float = key(  # a request's headers must arrive within this
        10,
        low=0.5,
        high=300,
        doc="A request's headers must arrive within this many seconds of the connection (or"
        " of the previous response): a client that trickles them is disconnected. A"
        " request body gets as long again, then 408. 0.5 to 300.",
    )


class BouncesConfig(Record):
    maildir: Path | None = key(
        None,
        doc="The Maildir bounces, complaints and `newsletter.unsubscribe_mailto` requests"
        " land in (relative to config.yaml), read by `syndicate bounces` and the daemon."
        " Nothing in it is ever deleted, moved or flagged.",
    )
    mbox: Path | None = key(None, doc="The same, as an mbox file.")
    imap: str | None = key(
        None,
        doc="The same, as an IMAP folder over TLS: `imaps://USER@HOST[:PORT]/FOLDER`; the"
        " password comes from `SYNDICATE_IMAP_PASSWORD` (never from this file).",
    )
    soft_limit: int = key(
        3,
        low=1,
        doc="This many soft bounces (mailbox full, delays) of one subscriber within"
        " `soft_window_days` make them `bounced`.",
    )
    soft_window_days: int = key(30, low=1, high=3650, doc="The window of `soft_limit`.")

    def mailboxes(self) -> list[str]:
        """The configured mailboxes, as `maildir:PATH`, `mbox:PATH`, `imap:URL`."""
        return mailbox_names(self.maildir, self.mbox, self.imap)


def mailbox_names(maildir: object, mbox: object, imap: object) -> list[str]:
    """Bounce mailboxes by kind (`maildir:PATH` ...), those given (not None) in order."""
    given = (("maildir", maildir), ("mbox", mbox), ("imap", imap))
    return [f"{kind}:{where}" for kind, where in given if where]


class SubscribersConfig(Record):
    allow_special_domains: bool = key(  # .test, .local, localhost ... (intranets, staging)
        False,
        doc="Accept addresses at special-use domains (`.test`, `.local`, `localhost`,"
        " `.home.arpa`), for intranets and staging lists, in `subscribers add`, `import`"
        " and `POST /subscribe`. `.invalid` and `.onion` stay refused (no mail reaches"
        " them); `.example` is always accepted.",
    )


class Config(Record):
    """The whole of config.yaml, checked: each field declares its key once (its type,
    default, bounds and meaning); SCHEMA and the README's table are derived from them."""

    path: Path
    site: SiteConfig = section(SiteConfig)
    content: ContentConfig = section(ContentConfig)
    output_dir: Path = key("public", name="output.dir", doc="Output folder.")
    feeds: FeedsConfig = section(FeedsConfig)
    state_url: str = key(
        "sqlite:///state/syndicate.db",
        name="state.url",
        doc="The state database (used by the scheduler and newsletter; a relative SQLite"
        " path is relative to the config file). Checked when the config is loaded: an"
        " unusable URL is a `config.yaml:line` error, exit 2, for every command; so is an"
        " in-memory SQLite database (`sqlite://`, `:memory:`, `mode=memory`), which would"
        " forget between runs what was published and announce every post again.",
    )
    newsletter: NewsletterConfig = section(NewsletterConfig)
    delivery: DeliveryConfig = section(DeliveryConfig)
    serve: ServeConfig = section(ServeConfig)
    subscribers: SubscribersConfig = section(SubscribersConfig)
    bounces: BouncesConfig = section(BouncesConfig)
    schedule: ScheduleConfig = section(ScheduleConfig)


SCHEMA: _Schema = schema_of(Config)


_TYPE_NAMES = {
    str: "a string",
    int: "a whole number",
    bool: "true or false",
    list: "a list",
    dict: "a mapping",
}


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
        node, raw = _read_yaml(text)
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


# libyaml reads a config.yaml in ~0.4 ms, PyYAML's own parser in ~2.5 ms, but words its
# errors otherwise ("did not find expected key"): a file libyaml refuses is read again by
# PyYAML, so every message, and whatever PyYAML alone accepts, stays as it was.
_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_yaml(text: str) -> tuple[yaml.Node | None, Any]:
    try:
        return load_yaml(text, _FAST_LOADER)
    except yaml.YAMLError:
        return load_yaml(text, yaml.SafeLoader)


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
            close = _close_match(str(key), list(schema))
            hint = f"did you mean '{prefix}{close}'?" if close else None
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
    if spec.item is not None and isinstance(value, list):  # a list of the declared items
        bad = [v for v in value if not isinstance(v, spec.item)]
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
        bounces=_bounces(values["bounces"], root, problems),
    )


def _section(cls: type[_Section], values: Mapping[str, Any], **computed: Any) -> _Section:
    """A config class from its section's checked values: each field from its key (lists
    as tuples, whole numbers as floats where a float is declared, sections recursively),
    unless `computed` gives it."""
    arguments = {}
    for item in fields(cls):
        if item.name in computed:
            arguments[item.name] = computed[item.name]
            continue
        value = values[item.metadata.get("name") or item.name]
        if "section" in item.metadata:
            value = _section(item.metadata["section"], value)
        elif isinstance(value, list):
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
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
            near = _close_match(fmt, FEED_FORMATS)
            hint = f"did you mean '{near}'?" if near else "use rss, atom and/or json"
            problems.add("feeds.formats", f"unknown format {show_value(fmt)}", hint)
    hub = feeds["websub_hub"]
    if hub is not None and not _is_absolute_http(hub):
        problems.add("feeds.websub_hub", f"must be an absolute http(s) URL, got {show_value(hub)}")
    _check_archive(feeds, problems)
    return _section(FeedsConfig, feeds, formats=tuple(dict.fromkeys(feeds["formats"])))


def _bounces(section: dict[str, Any], root: Path, problems: _Problems) -> BouncesConfig:
    imap = section["imap"]
    if imap is not None:
        parts = urlsplit(imap)
        if parts.scheme != "imaps" or not parts.hostname or not parts.username or parts.password:
            problems.add(
                "bounces.imap",
                "must be imaps://USER@HOST[:PORT]/FOLDER, without a password, got "
                + show_value(
                    imap.replace(f":{parts.password}@", ":***@") if parts.password else imap
                ),
                "e.g. imaps://bounces@mail.example.org/INBOX; export SYNDICATE_IMAP_PASSWORD",
            )
    paths = {
        name: (root / section[name]).resolve() if section[name] is not None else None
        for name in ("maildir", "mbox")
    }
    return _section(BouncesConfig, section, **paths)


def _schedule(schedule: dict[str, Any], problems: _Problems) -> ScheduleConfig:
    for key in ("build", "newsletter", "bounces"):
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
    _check_pauses(section, problems)
    _check_return_path(section["return_path"], problems)
    host = urlsplit(site_url).hostname or "localhost"
    ca_file = (root / smtp["ca_file"]).resolve() if smtp["ca_file"] else None
    return _section(
        DeliveryConfig,
        section,
        file_dir=(root / section["file_dir"]).resolve(),
        smtp=_section(SMTPConfig, smtp, ca_file=ca_file),
        dkim=dkim_config,
        list_id=section["list_id"] or f"newsletter.{host}",
        domains=_domain_limits(section["domains"], problems),
    )


# The longest token (12-digit ids): the local part must still fit in 64 characters.
_SAMPLE_TOKEN = "999999999999.999999999999.aaaaaaaaaaaaaaaa"  # noqa: S105 (no secret)


def _check_return_path(template: str | None, problems: _Problems) -> None:
    """`delivery.return_path`: one `{token}`, in the local part, and a valid address with
    the longest token in its place."""
    if template is None:
        return
    where, hint = "delivery.return_path", "e.g. bounces+{token}@example.org"
    if template.count("{token}") != 1:
        problems.add(where, f"must contain {{token}} once, got {template!r}", hint)
        return
    local, at, _ = template.rpartition("@")
    if not at or "{token}" not in local:
        problems.add(where, f"{{token}} must be in the part before the @, got {template!r}", hint)
        return
    from email_validator import EmailNotValidError, validate_email

    try:  # test_environment: a .test domain is fine (tests, local MTAs)
        validate_email(
            template.replace("{token}", _SAMPLE_TOKEN),
            check_deliverability=False,
            test_environment=True,
            strict=True,  # the local part's 64 characters (RFC 5321)
        )
    except EmailNotValidError as exc:
        problems.add(where, f"is not a valid address with a token in it: {exc}", hint)


_DOMAIN_ENTRY: _Schema = {
    "domains": _Key(list, None, item=str),
    "connections": _Key(int, None, low=1, high=100),
    "rate_per_second": _Key((int, float), None, low=0),
}
_GROUP_EXAMPLE = "e.g. google: {domains: [gmail.com, googlemail.com], connections: 2}"


def _domain_limits(raw: dict[str, Any], problems: _Problems) -> DomainLimits:
    """`delivery.domains`: `default`, domains and groups, each checked like a section (its
    keys, types, bounds, did-you-mean), every domain in at most one entry."""
    default = DomainLimit("default", ())
    named: list[DomainLimit] = []
    owner: dict[str, str] = {}  # domain -> the entry that names it
    for name, value in raw.items():
        where = f"delivery.domains.{name}"
        if not isinstance(value, dict):
            problems.add(
                where,
                f"expected a mapping of {', '.join(_DOMAIN_ENTRY)}, got {_describe(value)}",
                "e.g. {connections: 2, rate_per_second: 5}",
            )
            continue
        values = _check(value, _DOMAIN_ENTRY, where + ".", problems)
        entry = _domain_entry(str(name), values, where, problems)
        if entry is None:
            continue
        if entry.name == "default":
            default = entry
            continue
        for domain in entry.domains:
            if domain in owner:
                problems.add(
                    where,
                    f"{domain} is already in delivery.domains.{owner[domain]}",
                    "a domain belongs to one entry: remove it from one of them",
                )
            owner.setdefault(domain, entry.name)
        named.append(entry)
    return DomainLimits(default, tuple(named))


def _domain_entry(
    name: str, values: dict[str, Any], where: str, problems: _Problems
) -> DomainLimit | None:
    """One type-checked entry of `delivery.domains` -> its domains and limits (None when
    unusable: the problem is reported)."""
    listed = values.get("domains")
    limits: dict[str, Any] = {
        "connections": values.get("connections") or 0,
        "rate_per_second": float(values.get("rate_per_second") or 0),
    }
    if name == "default":
        if listed is None:
            return DomainLimit(name, (), **limits)
        problems.add(
            f"{where}.domains",
            "default applies to every domain named nowhere else; it takes no domains list",
            "make a group of these domains instead, " + _GROUP_EXAMPLE,
        )
        return None
    if listed is None:
        domain = normal_domain(name)
        if domain is None:
            problems.add(
                where,
                f"{show_value(name)} is neither a domain name nor a group (a group needs"
                " a domains: list)",
                _GROUP_EXAMPLE,
            )
            return None
        return DomainLimit(domain, (domain,), **limits)
    if normal_domain(name) is not None:
        problems.add(
            where,
            "a group's name is a label, not a domain (it would not count as one of its domains)",
            f"name the group (e.g. google) and list {name} in its domains",
        )
        return None
    domains = [normal_domain(item) for item in listed]
    for item, domain in zip(listed, domains, strict=True):
        if domain is None:
            problems.add(
                f"{where}.domains",
                f"{show_value(item)} is not a domain name",
                "write the part after the @, e.g. gmail.com",
            )
    if not listed:
        problems.add(f"{where}.domains", "must list at least one domain", _GROUP_EXAMPLE)
    return DomainLimit(name, tuple(dict.fromkeys(d for d in domains if d)), **limits)


def _check_pauses(section: dict[str, Any], problems: _Problems) -> None:
    if section["throttle_max_pause_seconds"] < section["throttle_pause_seconds"]:
        problems.add(
            "delivery.throttle_max_pause_seconds",
            f"must be at least delivery.throttle_pause_seconds"
            f" ({section['throttle_pause_seconds']:g}), got"
            f" {section['throttle_max_pause_seconds']:g}",
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


def _plain_cron_ok(expression: str) -> bool:
    """True when every field is made of plain items APScheduler accepts; False means
    "not known here" (APScheduler decides), never "invalid"."""
    try:
        fields = cron_trigger_fields(expression)
    except ValueError:
        return False
    return all(
        item and _plain_item_ok(item, name)
        for name, text in fields.items()
        for item in text.split(",")
    )


def _plain_item_ok(item: str, field: str) -> bool:
    match = _CRON_ITEM.fullmatch(item)
    if match is None:
        return False
    first_text, last_text, step_text = match.groups()
    low, high = _CRON_BOUNDS[field]
    step = int(step_text) if step_text else None
    if step == 0:
        return False
    if first_text == "*":
        return last_text is None and (step is None or step <= high - low)
    first, last = _cron_value(first_text, field), _cron_value(last_text, field)
    if first is None or (last_text is not None and last is None):
        return False
    if first_text.isalpha() and step is not None:
        return False  # weekday names take no step
    if last is None and step is None:
        last = first
    if first < low or (last is not None and (last > high or first > last)):
        return False
    return step is None or step <= (last if last is not None else high) - first


def _cron_value(text: str | None, field: str) -> int | None:
    """A number, or a weekday name in the day-of-week field (mon = 0 as APScheduler)."""
    if text is None:
        return None
    if text.isdigit():
        return int(text)
    if field == "day_of_week" and text in _WEEKDAYS:
        return _WEEKDAYS.index(text)
    return None


def cron_trigger_fields(expression: str) -> dict[str, str]:
    """A crontab line as APScheduler CronTrigger fields; 6 fields put seconds first."""
    fields = expression.split()
    names = ["minute", "hour", "day", "month", "day_of_week"]
    if len(fields) == 6:
        names = ["second", *names]
    elif len(fields) != 5:
        raise ValueError(f"expected 5 fields (or 6 with seconds), got {len(fields)}")
    return dict(zip(names, fields, strict=True))


# The bounds APScheduler's CronTrigger gives each field (apscheduler/triggers/cron/fields.py).
_CRON_BOUNDS = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 31),
    "month": (1, 12),
    "day_of_week": (0, 6),
}
_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CRON_ITEM = re.compile(r"(\*|[0-9]{1,4}|[a-z]{3})(?:-([0-9]{1,4}|[a-z]{3}))?(?:/([0-9]{1,4}))?")


def cron_error(expression: str) -> str | None:
    """Why a cron expression is invalid, or None if APScheduler accepts it.

    The plain forms (`*`, `*/15`, `8`, `1-5`, `0-30/10`, `mon-fri` and lists of them)
    are checked here exactly as APScheduler checks them, so loading a config does not
    import APScheduler (~35 ms on every cron call); anything else is left to it
    (tests/test_config.py compares the two on generated expressions)."""
    if _plain_cron_ok(expression):
        return None
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
    if _plain_sqlite_file(url):
        return None  # sqlite3 is in the standard library: nothing to import or look up
    return _sqlalchemy_url_error(url)


def _sqlalchemy_url_error(url: str) -> tuple[str, str] | None:
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


_PLAIN_SQLITE = re.compile(r"sqlite:///[^?#%\s\x00-\x1f]+")


def _plain_sqlite_file(url: str) -> bool:
    """`sqlite:///some/file.db` with no query or odd characters: a URL SQLAlchemy opens as
    it reads, checked without importing SQLAlchemy (~100 ms on every cron call)."""
    path = url[len("sqlite:///") :]
    return (
        bool(_PLAIN_SQLITE.fullmatch(url))
        and path.lower() not in (":memory:", "")
        and (not path.lower().startswith("file:"))
    )


def sqlite_path(url: str) -> Path | None:
    """The file behind a sqlite:/// URL (None for other databases and :memory:)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and url != "sqlite:///:memory:":
        return Path(url[len(prefix) :])
    return None


def sqlite_uri(path: Path, mode: str) -> str:
    """An SQLite `file:` URI for `path` opened with `mode` (ro, rw): the path percent-
    encoded, so a `?`, `#` or `%` in a folder name is part of the path, not of the URI."""
    return f"{path.absolute().as_uri()}?mode={mode}"


def _anchor_sqlite(url: str, root: Path) -> str:
    """Make a relative SQLite path relative to the config file, like every other path."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
        return prefix + str((root / url[len(prefix) :]).resolve())
    return url


def _close_timezones(name: str) -> str | None:
    from zoneinfo import available_timezones

    return _close_match(name, sorted(available_timezones()))


def _close_match(word: str, candidates: Sequence[str]) -> str | None:
    """The candidate closest to a misspelt word, if one is close enough."""
    import difflib

    close = difflib.get_close_matches(word, candidates, n=1)
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
                    mark: Any = event.start_mark  # C or Python Mark: the same fields
                    raise YAMLLimitError(
                        problem=f"values nested more than {MAX_YAML_DEPTH} levels deep",
                        problem_mark=mark,
                    )
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.MarkedYAMLError as exc:
        # libyaml 0.2.6 stops at ~1,000 levels of flow nesting itself, in its scanner, which
        # reads ahead of our count: the same limit, said the same way whichever comes first.
        if "exceeded maximum nesting depth" not in (exc.problem or ""):
            raise
        raise YAMLLimitError(
            problem=f"values nested more than {MAX_YAML_DEPTH} levels deep",
            problem_mark=exc.problem_mark,
        ) from None
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
