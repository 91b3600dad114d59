"""Bounce reports (pure): the bytes of one email -> a `BounceReport`, or None when it is
not one. Never raises: whatever arrives in a bounce mailbox is somebody else's input.

What is recognised, in this order:
- an ARF feedback report (RFC 5965: `multipart/report; report-type=feedback-report`) with
  `Feedback-Type: abuse` or `fraud`: a complaint;
- a DSN (RFC 3464: a `message/delivery-status` part): `Action: failed` with a 5.x.x
  `Status` is a hard bounce, with 4.x.x (or X.2.2, mailbox full, which RFC 3463 calls a
  persistent transient failure) a soft one; `Action: delayed` is soft; a DSN that only
  says delivered, relayed or expanded is not a report;
- a message to `newsletter.unsubscribe_mailto` (not an automatic one): an unsubscribe
  request by its From address, with the token from its subject when it has one;
- any other automatic message (null sender, MAILER-DAEMON, `Auto-Submitted`...) that
  flufl.bounce's detectors (Mailman's: Exim, qmail, Postfix, Exchange, ...) read as a
  failure: permanent = hard, temporary = soft.

Whom it concerns: our VERP token (delivery/verp.py) where the report carries it (To,
Delivered-To, X-Original-To, Envelope-To, the returned message's Return-Path, the
report's Original-Mail-From or X-Postfix-Sender), verified, names the subscriber and the
digest; the addresses the report gives are kept beside it (for reports without a token).
"""

from __future__ import annotations

import email
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr

from syndicate.delivery.verp import read_return_path
from syndicate.record import replace

HARD = "hard"
SOFT = "soft"
COMPLAINT = "complaint"
UNSUBSCRIBE = "unsubscribe"
KINDS = (HARD, SOFT, COMPLAINT, UNSUBSCRIBE)
COMPLAINT_TYPES = frozenset({"abuse", "fraud"})  # not-spam, virus, auth-failure: no
MAX_REPORT_BYTES = 20 * 1024 * 1024  # larger is no bounce report (and not worth parsing)

# Headers that may carry the address a report was sent to, i.e. our VERP return path.
_ENVELOPE_HEADERS = ("to", "delivered-to", "x-original-to", "envelope-to", "x-envelope-to")
_AUTOMATIC_SENDERS = re.compile(r"mailer-daemon|postmaster|mail delivery", re.IGNORECASE)
# An unsubscribe token (tokens.py), in a subject or a returned List-Unsubscribe header; a
# `%20` before it is the mailto's encoded space, not part of the id.
_UNSUBSCRIBE_TOKEN = re.compile(r"(?:%20|^|[^0-9])([0-9]{1,12}\.unsubscribe\.[A-Za-z0-9_-]{1,64})")


@dataclass(frozen=True, slots=True)
class BounceReport:
    """One report: what happened, to whom, and how to recognise it again."""

    kind: str  # one of KINDS
    report_id: str  # the report's Message-ID, else `sha256:<hex of its bytes>`: dedupe on it
    addresses: tuple[str, ...] = ()  # failed, complaining or unsubscribing addresses
    subscriber_id: int | None = None  # from our verified VERP token
    digest_id: int | None = None
    status: str = ""  # the DSN status code (`5.1.1`), or the feedback type (`abuse`)
    detail: str = ""  # the Diagnostic-Code, for a human
    unsubscribe_token: str | None = None  # not verified here: verify_token(..., address)
    source: str = ""  # the mailbox's id of the message (scan_mailbox)


@dataclass(frozen=True, slots=True)
class _Finding:
    kind: str
    addresses: tuple[str, ...]
    status: str = ""
    detail: str = ""


def parse_report(
    data: bytes,
    return_path: str | None,
    secret: bytes,
    unsubscribe_mailto: str | None = None,
) -> BounceReport | None:
    """The report in one email's bytes, or None when it is not a bounce, complaint or
    unsubscribe request (garbage included). `return_path` is `delivery.return_path`."""
    if not isinstance(data, bytes) or len(data) > MAX_REPORT_BYTES:
        return None
    try:
        message = email.message_from_bytes(data)
        finding = _classify(message, unsubscribe_mailto)
        if finding is None:
            return None
        verp = _verp(message, return_path, secret) if return_path else None
        token = _unsubscribe_token(message, finding.kind)
    except Exception:  # hostile bytes reaching the email package or flufl's heuristics
        return None
    return BounceReport(
        kind=finding.kind,
        report_id=_report_id(message, data),
        addresses=finding.addresses,
        subscriber_id=verp[0] if verp else None,
        digest_id=verp[1] if verp else None,
        status=finding.status,
        detail=finding.detail,
        unsubscribe_token=token,
    )


def scan_mailbox(
    messages: Iterable[tuple[str, bytes]],
    return_path: str | None,
    secret: bytes,
    unsubscribe_mailto: str | None = None,
) -> list[BounceReport]:
    """The reports among (id, bytes) messages (mailboxes.py), in order, each once (by
    report_id: the same report read from two mailboxes counts once), `source` set."""
    reports: list[BounceReport] = []
    seen: set[str] = set()
    for source, data in messages:
        report = parse_report(data, return_path, secret, unsubscribe_mailto)
        if report is not None and report.report_id not in seen:
            seen.add(report.report_id)
            reports.append(replace(report, source=source))
    return reports


def _classify(message: Message, unsubscribe_mailto: str | None) -> _Finding | None:
    if _report_type(message) == "feedback-report":
        return _feedback(message)
    blocks = list(_status_blocks(message))
    if blocks:
        return _delivery_status(blocks)
    automatic = _is_automatic(message)
    if unsubscribe_mailto and not automatic and _is_addressed_to(message, unsubscribe_mailto):
        sender = parseaddr(message.get("from", ""))[1]
        return _Finding(UNSUBSCRIBE, (sender,) if "@" in sender else ())
    return _heuristic(message) if automatic else None


def _report_type(message: Message) -> str:
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type", "") or "").lower()


def _feedback(message: Message) -> _Finding | None:
    """An ARF report: a complaint when its type says abuse or fraud."""
    fields = _feedback_fields(message)
    if fields is None:
        return None
    feedback_type = str(fields.get("feedback-type", "")).strip().lower()
    if feedback_type not in COMPLAINT_TYPES:
        return None
    found = [*fields.get_all("original-rcpt-to", []), *fields.get_all("removal-recipient", [])]
    original = _original(message)
    if not found and original is not None:
        found = original.get_all("to", [])  # often redacted; then nothing is found
    return _Finding(COMPLAINT, _addresses(found), feedback_type)


def _feedback_fields(message: Message) -> Message | None:
    for part in message.walk():
        if part.get_content_type() == "message/feedback-report":
            return _headers_of(part)
    return None


def _status_blocks(message: Message) -> Iterator[Message]:
    """The per-recipient field blocks of every `message/delivery-status` part."""
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        yield from (block for block in _blocks(part) if block.get("action"))


def _blocks(part: Message) -> list[Message]:
    """A `message/delivery-status` part's field blocks (the email package parses them)."""
    payload = part.get_payload()
    if not isinstance(payload, list):
        return []
    return [block for block in payload if isinstance(block, Message)]


def _delivery_status(blocks: list[Message]) -> _Finding | None:
    """A DSN: the worst outcome among its recipients (hard before soft); None when every
    recipient was delivered, relayed or expanded."""
    findings = [found for found in map(_block_finding, blocks) if found is not None]
    for kind in (HARD, SOFT):
        chosen = [found for found in findings if found.kind == kind]
        if chosen:
            addresses = _addresses(a for found in chosen for a in found.addresses)
            return replace(chosen[0], addresses=addresses)
    return None


def _block_finding(block: Message) -> _Finding | None:
    action = str(block.get("action", "")).strip().lower()
    status = str(block.get("status", "")).strip().split(" ")[0]
    if action.startswith("delayed"):
        kind = SOFT
    elif action.startswith(("fail", "error")):  # opensmtpd writes `Action: error`
        mailbox_full = status[1:].startswith(".2.2")
        kind = SOFT if status.startswith("4") or mailbox_full else HARD
    else:
        return None
    # The address as we gave it (ORCPT) before the one the last server ended up with.
    recipient = block.get("original-recipient") or block.get("final-recipient") or ""
    detail = " ".join(str(block.get("diagnostic-code", "")).split())
    return _Finding(kind, (str(recipient).rpartition(";")[2],), status, detail)


def _heuristic(message: Message) -> _Finding | None:
    """flufl.bounce's detectors, for the bounces that are no DSN."""
    from flufl.bounce import all_failures

    temporary, permanent = all_failures(message)
    if permanent:
        return _Finding(HARD, _addresses(a.decode("ascii", "replace") for a in sorted(permanent)))
    if temporary:
        return _Finding(SOFT, _addresses(a.decode("ascii", "replace") for a in sorted(temporary)))
    return None


def _is_automatic(message: Message) -> bool:
    """A message no person wrote: a null sender, a mailer daemon, Auto-Submitted."""
    if str(message.get("return-path", "")).strip() == "<>":
        return True
    if str(message.get("auto-submitted", "no")).strip().lower() != "no":
        return True
    if message.get("x-failed-recipients") or message.get_content_type() == "multipart/report":
        return True
    return bool(_AUTOMATIC_SENDERS.search(str(message.get("from", ""))))


def _is_addressed_to(message: Message, mailbox: str) -> bool:
    wanted = mailbox.casefold()
    values = [str(v) for name in (*_ENVELOPE_HEADERS, "cc") for v in message.get_all(name, [])]
    return any(address.casefold() == wanted for _, address in getaddresses(values))


def _verp(message: Message, return_path: str, secret: bytes) -> tuple[int, int] | None:
    """(subscriber id, digest id) from the first candidate address that verifies."""
    for candidate in _return_path_candidates(message):
        found = read_return_path(candidate, return_path, secret)
        if found is not None:
            return found
    return None


def _return_path_candidates(message: Message) -> Iterator[str]:
    for name in _ENVELOPE_HEADERS:
        for value in message.get_all(name, []):
            yield from (address for _, address in getaddresses([str(value)]))
    original = _original(message)
    if original is not None:
        yield str(original.get("return-path", ""))
    fields = _feedback_fields(message)
    if fields is not None:
        yield str(fields.get("original-mail-from", ""))
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            for block in _blocks(part):
                yield str(block.get("x-postfix-sender", "")).rpartition(";")[2]


def _original(message: Message) -> Message | None:
    """The returned original message (or its headers) inside a report."""
    for part in message.walk():
        if part.get_content_type() in ("message/rfc822", "text/rfc822-headers"):
            return _headers_of(part)
    return None


def _headers_of(part: Message) -> Message:
    """A `message/*` or `text/rfc822-headers` part's header fields as a Message."""
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    text = part.get_payload(decode=True)
    raw = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(payload)
    return HeaderParser().parsestr(raw)


def _unsubscribe_token(message: Message, kind: str) -> str | None:
    """An unsubscribe token: an unsubscribe request's subject, or the List-Unsubscribe
    header of the message a bounce or complaint returns (for reports without VERP)."""
    if kind == UNSUBSCRIBE:
        source = str(message.get("subject", ""))
    else:
        original = _original(message)
        source = str(original.get("list-unsubscribe", "")) if original is not None else ""
    match = _UNSUBSCRIBE_TOKEN.search(" ".join(source.split()))
    return match[1] if match else None


def _addresses(values: Iterable[str]) -> tuple[str, ...]:
    """Plain addresses, in order, each once (case-insensitively), nothing without an @."""
    found: dict[str, str] = {}
    for value in values:
        address = parseaddr(str(value).strip())[1] or str(value).strip().strip("<>")
        if "@" in address and " " not in address:
            found.setdefault(address.casefold(), address)
    return tuple(found.values())


def _report_id(message: Message, data: bytes) -> str:
    message_id = " ".join(str(message.get("message-id", "")).split())
    return message_id or "sha256:" + hashlib.sha256(data).hexdigest()
