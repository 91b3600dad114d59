"""Composing messages (pure). Transports come with delivery."""

from __future__ import annotations

from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from syndicate.config import Config
from syndicate.digest import clean_subject
from syndicate.models import RenderedEmail
from syndicate.render import TOKEN_PLACEHOLDER

PREVIEW_RECIPIENT = "Preview Reader <preview@syndicate.invalid>"


def compose_preview(rendered: RenderedEmail, config: Config, now: datetime, token: str) -> bytes:
    """A complete multipart/alternative message, as a subscriber would get it."""
    message = EmailMessage()
    message["From"] = clean_subject(config.newsletter.sender, 998)
    message["To"] = PREVIEW_RECIPIENT
    message["Subject"] = clean_subject(rendered.subject)
    message["Date"] = format_datetime(now)
    domain = Address(addr_spec=_addr(config.newsletter.sender)).domain or "localhost"
    message["Message-ID"] = make_msgid("preview", domain=domain)
    if config.newsletter.reply_to:
        message["Reply-To"] = clean_subject(config.newsletter.reply_to, 998)
    message.set_content(rendered.text.replace(TOKEN_PLACEHOLDER, token), cte="quoted-printable")
    message.add_alternative(
        rendered.html.replace(TOKEN_PLACEHOLDER, token), subtype="html", cte="quoted-printable"
    )
    return message.as_bytes()


def _addr(sender: str) -> str:
    start, end = sender.rfind("<"), sender.rfind(">")
    return sender[start + 1 : end] if 0 <= start < end else sender
