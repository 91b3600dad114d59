"""Composing messages (pure): one template per body, filled in per recipient. The one
composer for digests, their previews and confirmation emails, so all carry the same
headers and the same DKIM signature.

The stdlib EmailMessage costs ~5 ms a message here. A digest's MIME structure, headers
and quoted-printable bodies are built once; per recipient only the To header, the
Message-ID and the signed token change. The token is URL-safe ASCII, so it is spliced
between pre-encoded segments with soft line breaks around it: no per-recipient encoding.
"""

from __future__ import annotations

import binascii
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path

from email_validator import EmailNotValidError, validate_email

from syndicate.config import Config
from syndicate.errors import DeliveryError
from syndicate.models import RenderedEmail
from syndicate.newsletter.plan import clean_header
from syndicate.newsletter.render import TOKEN_PLACEHOLDER, unsubscribe_url
from syndicate.record import replace

PREVIEW_RECIPIENT = "Preview Reader <preview@syndicate.invalid>"
CRLF = b"\r\n"


def header_value(name: str, value: str) -> bytes:
    """One header line: no CR/LF can sneak in, RFC 2047 when not ASCII, folded."""
    value = clean_header(value, 998)
    if value.isascii():
        encoded = Header(value, "us-ascii", header_name=name).encode()
    else:
        encoded = Header(value, "utf-8", header_name=name).encode()
    return f"{name}: {encoded}".replace("\n", "\r\n").encode("ascii") + CRLF


def address_header(name: str, display: str, address: str) -> bytes:
    """`To: "Name" <a@b>`: the name RFC 2047-encoded when needed, never the address. A
    non-ASCII address stays raw UTF-8 (RFC 6532; sent only where the server has SMTPUTF8)."""
    display = clean_header(display, 200)
    address = clean_header(address, 320)
    if not address.isascii():
        encoded = Header(display, "utf-8").encode() if display else ""
        line = f"{encoded} <{address}>" if display else address
    else:
        line = formataddr((display, address), charset="utf-8") if display else address
    return f"{name}: {line}".encode() + CRLF


def mailbox_header(name: str, value: str) -> bytes:
    """From/Reply-To/List-Id from `Name <addr>`: only the name may be encoded, or a
    reader would see no address at all."""
    display, address = parseaddr(clean_header(value, 998))
    return address_header(name, display, address or clean_header(value, 320))


def sender_domain(config: Config) -> str:
    _, address = parseaddr(config.newsletter.sender)
    return address.rpartition("@")[2] or "localhost"


def envelope_sender(config: Config) -> str:
    return parseaddr(config.newsletter.sender)[1]


@dataclass(frozen=True, slots=True)
class Prepared:
    """Message bytes and the addresses the SMTP envelope needs."""

    sender: str
    recipient: str
    data: bytes
    message_id: str


class MessageTemplate:
    """A digest body made ready for thousands of recipients."""

    def __init__(
        self,
        config: Config,
        digest_key: str,
        subject: str,
        html: str,
        text: str,
        date: datetime,
        list_headers: bool = True,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.config = config
        self.digest_key = digest_key
        self.domain = sender_domain(config)
        self.sender = envelope_sender(config)
        boundary = f"=_syndicate_{uuid.uuid4().hex}"
        n = config.newsletter
        site_title = clean_header(config.site.title, 200)
        head = [
            mailbox_header("From", n.sender),
            header_value("Subject", subject),
            f"Date: {format_datetime(date)}".encode() + CRLF,
        ]
        if n.reply_to:
            head.append(mailbox_header("Reply-To", n.reply_to))
        head.extend(header_value(name, value) for name, value in extra_headers)
        self.list_headers = list_headers
        if list_headers:
            head.append(address_header("List-Id", site_title, config.delivery.list_id))
        self.head = b"".join(head)
        self.tail_headers = (
            (b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" if list_headers else b"")
            + b"MIME-Version: 1.0\r\n"
            + f'Content-Type: multipart/alternative; boundary="{boundary}"'.encode()
            + CRLF
            + CRLF
        )
        self.body = [
            f"--{boundary}".encode() + CRLF,
            _part_headers("plain"),
            *_qp_segments(text),
            CRLF + f"--{boundary}".encode() + CRLF,
            _part_headers("html"),
            *_qp_segments(html),
            CRLF + f"--{boundary}--".encode() + CRLF,
        ]
        self.config = config
        # A mailto only where something reads it (RFC 8058 needs just the https URL).
        mailbox = n.unsubscribe_mailto
        self.mailto = f"mailto:{mailbox}?subject=unsubscribe" if mailbox else None

    def message_id(self, subscriber_id: int) -> str:
        """Stable per digest and recipient, so a resend after a crash can be de-duplicated."""
        tag = hashlib.sha256(f"{self.digest_key}\0{subscriber_id}".encode()).hexdigest()[:16]
        return f"<{self.digest_key}.{subscriber_id}.{tag}@{self.domain}>"

    def render(self, subscriber_id: int, email: str, name: str, token: str) -> Prepared:
        """The complete message for one recipient (CRLF line ends, ready for SMTP)."""
        token_bytes = token.encode("ascii")
        unsubscribe = unsubscribe_url(self.config, token)
        message_id = self.message_id(subscriber_id)
        parts = [
            self.head,
            address_header("To", name, email),
            f"Message-ID: {message_id}".encode() + CRLF,
        ]
        if self.list_headers:
            parts.append(self._list_unsubscribe(unsubscribe, token))
        parts.append(self.tail_headers)
        for segment in self.body:
            parts.append(token_bytes if segment is _TOKEN else segment)
        return Prepared(self.sender, email, b"".join(parts), message_id)

    def _list_unsubscribe(self, url: str, token: str) -> bytes:
        if self.mailto is None:
            return f"List-Unsubscribe: <{url}>".encode() + CRLF
        return f"List-Unsubscribe: <{url}>,\r\n <{self.mailto}%20{token}>".encode() + CRLF


_TOKEN = b"\0token\0"  # marks where the token goes among the body segments


def _part_headers(subtype: str) -> bytes:
    return (
        f"Content-Type: text/{subtype}; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    ).encode()


def _qp_segments(text: str) -> list[bytes]:
    """Quoted-printable segments around each token placeholder, with soft breaks that let
    the (ASCII, unencoded) token be dropped in between."""
    pieces = text.replace("\r\n", "\n").replace("\n", "\r\n").split(TOKEN_PLACEHOLDER)
    segments: list[bytes] = []
    for index, piece in enumerate(pieces):
        if index:
            segments.extend([b"=\r\n", _TOKEN, b"=\r\n"])
        segments.append(binascii.b2a_qp(piece.encode("utf-8"), istext=True))
    return segments


def compose_preview(rendered: RenderedEmail, config: Config, now: datetime, token: str) -> bytes:
    """`digest --preview`'s .eml: the same composer, headers and signature as a sent digest,
    for a placeholder reader and token."""
    template = MessageTemplate(
        config, "preview", rendered.subject, rendered.html, rendered.text, now
    )
    display, address = parseaddr(PREVIEW_RECIPIENT)
    prepared = template.render(0, address, display, token)
    signer = dkim_signer(config)
    return signer(prepared.data) if signer else prepared.data


def compose_confirmation(
    config: Config, rendered: RenderedEmail, email: str, name: str, now: datetime
) -> Prepared:
    """The double opt-in message: the digest composer without the List-* headers (the
    reader is not on the list yet), marked auto-generated, DKIM-signed like a digest."""
    template = MessageTemplate(
        config,
        f"confirm-{uuid.uuid4().hex[:16]}",
        rendered.subject,
        rendered.html,
        rendered.text,
        now,
        list_headers=False,
        extra_headers=(("Auto-Submitted", "auto-generated"),),
    )
    # One message, sent before we know the server: an internationalised domain goes as
    # its A-label, which every server takes (a non-ASCII local part still needs SMTPUTF8).
    prepared = template.render(0, ascii_address(email) or email, name, "")
    signer = dkim_signer(config)
    return replace(prepared, data=signer(prepared.data)) if signer else prepared


# Signed once each where present; the oversigned ones a second time, so that a header of
# that name added after signing (a second From, a forged List-Unsubscribe) breaks the
# signature. A name listed for an absent header signs its absence (RFC 6376 5.4.2).
SIGNED_HEADERS = (
    "from", "to", "subject", "date", "message-id", "reply-to", "list-id",
    "list-unsubscribe", "list-unsubscribe-post", "auto-submitted", "mime-version",
    "content-type",
)  # fmt: skip
OVERSIGNED_HEADERS = (
    "from", "to", "subject", "reply-to", "list-id", "list-unsubscribe", "list-unsubscribe-post",
)  # fmt: skip


def dkim_signer(config: Config) -> Callable[[bytes], bytes] | None:
    """A function that prepends a DKIM-Signature (dkimpy) to a message, or None without
    delivery.dkim. The key is read once here, not per message."""
    dkim_config = config.delivery.dkim
    if dkim_config is None:
        return None
    import dkim

    try:
        key = Path(dkim_config.key_file).read_bytes()
    except OSError as exc:
        raise DeliveryError(
            f"cannot read the DKIM key {dkim_config.key_file}: {exc.strerror}",
            "check delivery.dkim.key_file",
        ) from None
    headers = [name.encode() for name in SIGNED_HEADERS + OVERSIGNED_HEADERS]
    selector, domain = dkim_config.selector.encode(), dkim_config.domain.encode()

    def sign(data: bytes) -> bytes:
        signature: bytes = dkim.sign(data, selector, domain, key, include_headers=headers)
        return signature + data

    return sign


def ascii_address(address: str) -> str | None:
    """`user@exämple.org` -> `user@xn--exmple-cua.org` (IDNA 2008, as email-validator
    does): an ASCII local part needs no SMTPUTF8 once the domain is an A-label. None when
    the local part is not ASCII (only SMTPUTF8 can carry that)."""
    if address.isascii():
        return address
    try:
        converted = validate_email(address, check_deliverability=False).ascii_email
    except EmailNotValidError:
        return None
    return str(converted) if converted else None
