"""Subscriber addresses and CSV files (pure): validation, normalisation, topics."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from syndicate.markup import clean_line
from syndicate.models import Post, Subscriber

STATUSES = ("pending", "active", "unsubscribed", "bounced")
CSV_HEADER = ("email", "name", "topics", "status")


class AddressError(ValueError):
    """An address email-validator rejects; the message says why."""


def normalize_address(address: str) -> str:
    """The address as email-validator normalises it (domain lower-cased, IDNA, NFC).

    Deliverability (DNS) is not checked: that needs the network, and a typo'd domain
    shows up as a bounce anyway.
    """
    try:
        return str(validate_email(address.strip(), check_deliverability=False).normalized)
    except EmailNotValidError as exc:
        raise AddressError(str(exc)) from None


def address_key(address: str) -> str:
    """Addresses are unique case-insensitively (most mail systems ignore local-part case)."""
    return address.casefold()


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


def parse_subscriber_csv(text: str) -> tuple[list[CSVRow], list[CSVProblem]]:
    """Rows of an `email,name,topics,status` file; bad rows come back as problems."""
    rows: list[CSVRow] = []
    problems: list[CSVProblem] = []
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    header: list[str] | None = None
    seen: dict[str, int] = {}
    for record in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if header is None:
            header = [cell.strip().lower() for cell in record]
            if "email" not in header:
                problems.append(
                    CSVProblem(line, "the first row must be a header with an 'email' column")
                )
                return rows, problems
            unknown = [h for h in header if h not in CSV_HEADER]
            if unknown:
                problems.append(
                    CSVProblem(
                        line, f"unknown column {unknown[0]!r} (columns: email,name,topics,status)"
                    )
                )
                return rows, problems
            continue
        cells = dict(zip(header, record, strict=False))
        raw_email = cells.get("email", "").strip()
        try:
            email = normalize_address(raw_email)
        except AddressError as exc:
            problems.append(CSVProblem(line, f"invalid address {raw_email!r}: {exc}"))
            continue
        status = (cells.get("status") or "").strip().lower() or None
        if status is not None and status not in STATUSES:
            problems.append(
                CSVProblem(line, f"unknown status {status!r} (use {', '.join(STATUSES)})")
            )
            continue
        key = address_key(email)
        if key in seen:
            problems.append(CSVProblem(line, f"{email} already appears on line {seen[key]}"))
            continue
        seen[key] = line
        rows.append(
            CSVRow(
                line,
                email,
                clean_line(cells.get("name", "")),
                parse_topics(cells.get("topics", "")),
                status,
            )
        )
    if header is None:
        problems.append(
            CSVProblem(1, "the file is empty: expected a header email,name,topics,status")
        )
    return rows, problems


def format_subscriber_csv(subscribers: list[Subscriber]) -> str:
    """The export: same columns as the import, so a round trip changes nothing."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for s in subscribers:
        writer.writerow([s.email, s.name, ", ".join(s.topics), s.status])
    return out.getvalue()
