"""Subscriber addresses and CSV files (pure): validation, normalisation, topics."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from syndicate.config import normal_domain
from syndicate.content.markup import clean_line
from syndicate.errors import AddressError
from syndicate.models import SUBSCRIBER_STATUSES, Post, Subscriber

STATUSES = SUBSCRIBER_STATUSES
CSV_HEADER = ("email", "name", "topics", "status")


# Special-use names (RFC 6761, 6762, 8375) that `subscribers.allow_special_domains` lets
# through for intranets and staging lists. `.invalid` and `.onion` stay refused: the first
# can never receive mail, the second is not reached over SMTP. (`.example` always passes.)
SPECIAL_DOMAINS = ("test", "local", "localhost", "arpa")
_STAND_IN = ".example.com"  # an ordinary parent domain, so the library checks the rest


def normalize_address(address: str, allow_special: bool = False) -> str:
    """The address as email-validator normalises it (domain lower-cased, IDNA, NFC).

    Deliverability (DNS) is not checked: that needs the network, and a typo'd domain
    shows up as a bounce anyway. email-validator refuses special-use domains outright,
    so with `allow_special` such an address is checked under a stand-in parent domain:
    every other rule (local part, labels, IDNA) still applies.
    """
    text = address.strip()
    try:
        return str(validate_email(text, check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        error = exc
    local, at, domain = text.rpartition("@")
    if not at or domain.rsplit(".", 1)[-1].lower() not in SPECIAL_DOMAINS:
        raise AddressError(str(error)) from None
    try:
        checked = validate_email(local + "@" + domain + _STAND_IN, check_deliverability=False)
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from None
    if not allow_special:
        raise AddressError(str(error), special=True)
    return str(checked.normalized).removesuffix(_STAND_IN)


def address_key(address: str) -> str:
    """Addresses are unique case-insensitively (most mail systems ignore local-part case)."""
    return address.casefold()


_DOTLESS_DOMAINS = frozenset({"gmail.com", "googlemail.com"})


def inbox_key(address: str) -> str:
    """The inbox an address delivers to, for rate limits: `ann+1@x`, `ann+2@x` and `ann@x`
    reach one inbox (subaddressing, RFC 5233, on by default at Gmail, Outlook, Fastmail),
    and Gmail ignores dots. Not an identity: subscribers stay keyed by `address_key`."""
    local, _, domain = address_key(address).rpartition("@")
    local = local.split("+", 1)[0] or local
    if domain in _DOTLESS_DOMAINS:
        local = local.replace(".", "") or local
    return f"{local}@{domain}"


def parse_topics(raw: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Topics from `a, b` or a list; cleaned, de-duplicated case-insensitively, in order."""
    items = raw.replace(";", ",").split(",") if isinstance(raw, str) else list(raw)
    seen: dict[str, str] = {}
    for item in items:
        topic = clean_line(item)
        if topic and topic.casefold() not in seen:
            seen[topic.casefold()] = topic
    return tuple(seen.values())


def wants(subscriber_topics: tuple[str, ...], post: Post) -> bool:
    """Does a subscriber follow a post? No topics = everything; else any tag or category."""
    if not subscriber_topics:
        return True
    wanted = {t.casefold() for t in subscriber_topics}
    return any(term.casefold() in wanted for term in (*post.tags, *post.categories))


@dataclass(frozen=True, slots=True)
class CSVRow:
    line: int
    email: str
    name: str
    topics: tuple[str, ...]
    status: str | None


@dataclass(frozen=True, slots=True)
class CSVProblem:
    line: int
    message: str


# OWASP's CSV-injection rule: a cell starting with one of these is a formula to a
# spreadsheet, so the export prefixes it with a quote and the import takes that off.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: str) -> str:
    """`=1+1` -> `'=1+1`; a value already starting with quotes before a formula character
    gets one more, so that import (`unescape_cell`) gives back exactly the original."""
    if value.lstrip("'").startswith(FORMULA_STARTS):
        return "'" + value
    return value


def unescape_cell(value: str) -> str:
    if value.startswith("'") and value.lstrip("'").startswith(FORMULA_STARTS):
        return value[1:]
    return value


def _csv_records(text: str) -> Iterator[tuple[int, list[str] | str]]:
    """(line where the record starts, its cells), or (that line, what is wrong with it).

    Strict parsing: an unterminated quote would otherwise swallow every row after it. After
    a broken record, parsing resumes on the line after the one where it started.
    """
    lines = io.StringIO(text).readlines()  # the lines exactly as the csv module counts them
    offset = 0
    while True:
        reader = csv.reader(io.StringIO("".join(lines[offset:])), strict=True)
        consumed = 0
        try:
            for record in reader:
                yield offset + consumed + 1, record
                consumed = reader.line_num
            return
        except csv.Error as exc:
            start = offset + consumed + 1
            if "unexpected end of data" in str(exc):
                yield start, "unterminated quote: the '\"' opened in this record is never closed"
            elif "field limit" in str(exc):
                yield start, f"a cell longer than {csv.field_size_limit():,} characters"
            else:
                yield (
                    start,
                    f"malformed CSV ({exc}): a '\"' inside a quoted field is written '\"\"'",
                )
            offset = start


def parse_subscriber_csv(
    text: str, allow_special: bool = False
) -> tuple[list[CSVRow], list[CSVProblem]]:
    """Rows of an `email,name,topics,status` file; bad rows come back as problems, each
    with the line where its record starts."""
    rows: list[CSVRow] = []
    problems: list[CSVProblem] = []
    header: list[str] | None = None
    seen: dict[str, int] = {}
    for line, record in _csv_records(text.lstrip("\ufeff")):
        if isinstance(record, str):
            problems.append(CSVProblem(line, record))
            continue
        if not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in record]
            problem = _header_problem(header)
            if problem:
                problems.append(CSVProblem(line, problem))
                return rows, problems
            continue
        if any(cell.strip() for cell in record[len(header) :]):
            problems.append(
                CSVProblem(
                    line,
                    f"{len(record)} cells but the header has {len(header)}: a cell that holds "
                    'a comma must be quoted ("Smith, Ann")',
                )
            )
            continue
        row = _csv_row(
            line, dict(zip(header, map(unescape_cell, record), strict=False)), allow_special
        )
        if isinstance(row, str):
            problems.append(CSVProblem(line, row))
            continue
        key = address_key(row.email)
        if key in seen:
            problems.append(CSVProblem(line, f"{row.email} already appears on line {seen[key]}"))
            continue
        seen[key] = line
        rows.append(row)
    if header is None:
        problems.append(
            CSVProblem(1, "the file is empty: expected a header email,name,topics,status")
        )
    return rows, problems


def _header_problem(header: list[str]) -> str | None:
    if "email" not in header:
        return "the first row must be a header with an 'email' column"
    unknown = [h for h in header if h not in CSV_HEADER]
    if unknown:
        return f"unknown column {unknown[0]!r} (columns: email,name,topics,status)"
    twice = [h for h in CSV_HEADER if header.count(h) > 1]
    if twice:
        return f"column {twice[0]!r} appears twice in the header"
    return None


def _csv_row(line: int, cells: dict[str, str], allow_special: bool) -> CSVRow | str:
    """One data row, or what is wrong with it."""
    raw_email = cells.get("email", "").strip()
    try:
        email = normalize_address(raw_email, allow_special)
    except AddressError as exc:
        return f"invalid address {raw_email!r}: {exc.with_hint()}"
    status = (cells.get("status") or "").strip().lower() or None
    if status is not None and status not in STATUSES:
        return f"unknown status {status!r} (use {', '.join(STATUSES)})"
    return CSVRow(
        line,
        email,
        clean_line(cells.get("name", "")),
        parse_topics(cells.get("topics", "")),
        status,
    )


def format_subscriber_csv(subscribers: list[Subscriber]) -> str:
    """The export: same columns as the import, so a round trip changes nothing. Cells a
    spreadsheet would run as formulas are quoted (see FORMULA_STARTS)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for s in subscribers:
        cells = [s.email, s.name, ", ".join(s.topics), s.status]
        writer.writerow([escape_cell(cell) for cell in cells])
    return out.getvalue()


def recipient_domain(address: str) -> str:
    """The part after the last @, as throttling and `status` compare domains (lower case,
    A-labels)."""
    domain = address.rpartition("@")[2]
    return normal_domain(domain) or domain.lower()
