"""Signed tokens for links in email: unsubscribe and confirm.

A token names the subscriber and its purpose and carries an HMAC-SHA256 over both and the
subscriber's address, keyed with a secret from the environment. It cannot be forged,
turned to another purpose, or replayed for another address.

Confirm tokens (`id.confirm.expiry.mac`) also sign their expiry and the subscriber's
state when the link was made (pending, and since when): once the subscriber is confirmed,
unsubscribes or bounces, the link stops verifying, and a new subscription gets a new link.
Unsubscribe tokens (`id.unsubscribe.mac`) never expire: they sit in sent emails.

Bounce tokens (`id.digest.mac`, for VERP return paths: delivery/verp.py) name a subscriber
and a digest, not an address: a bounce names whatever address it likes. Their MAC is over
another purpose (`bounce`), so neither kind of token passes for the other. They are lower
case (the MAC in base32), since some mail servers lower-case the local part they hand on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from datetime import datetime, timedelta

from syndicate.errors import ExpiredTokenError, SyndicateError, TokenError
from syndicate.models import Subscriber
from syndicate.newsletter.subscribers import address_key

PURPOSES = ("unsubscribe", "confirm")
MIN_SECRET_BYTES = 16
CONFIRM_LIFETIME = timedelta(days=7)
_EXPIRY = re.compile(r"[0-9]{1,12}")
_ID = re.compile(r"[0-9]{1,12}")  # ASCII digits only ("²".isdigit() is True); fits SQL integers
_MAC = re.compile(r"[A-Za-z0-9_-]{1,64}")
BOUNCE = "bounce"
_BOUNCE_TOKEN = re.compile(r"([0-9]{1,12})\.([0-9]{1,12})\.([a-z2-7]{16})")


def load_secret(env_name: str) -> bytes:
    """The signing secret from the environment (never from config.yaml)."""
    value = os.environ.get(env_name, "")
    if len(value.encode()) < MIN_SECRET_BYTES:
        raise SyndicateError(
            f"{env_name} is {'too short' if value else 'not set'}: it signs the unsubscribe "
            "links in every message",
            f"export {env_name}=$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')",
        )
    return value.encode()


def sign_token(secret: bytes, subscriber_id: int, email: str, purpose: str) -> str:
    if purpose not in PURPOSES or purpose == "confirm":
        raise ValueError(f"sign_token is for unsubscribe tokens, not {purpose!r}")
    return f"{subscriber_id}.{purpose}.{_mac(secret, subscriber_id, email, purpose)}"


def read_token(token: str) -> tuple[int, str]:
    """(subscriber id, purpose) from a token's readable part; verify before trusting it."""
    parts = token.split(".")
    if (
        len(parts) not in (3, 4)
        or not _ID.fullmatch(parts[0])
        or parts[1] not in PURPOSES
        or (len(parts) == 4) != (parts[1] == "confirm")
        or (len(parts) == 4 and not _EXPIRY.fullmatch(parts[2]))
        or not _MAC.fullmatch(parts[-1])
    ):
        raise TokenError("malformed token")
    return int(parts[0]), parts[1]


def confirm_state(subscriber: Subscriber) -> str:
    """What a confirm link is bound to: it verifies only while this stays the same."""
    stamps = (subscriber.created_at, subscriber.confirmed_at, subscriber.unsubscribed_at)
    return "|".join([subscriber.status, *(s.isoformat() if s else "-" for s in stamps)])


def sign_confirm_token(secret: bytes, subscriber: Subscriber, now: datetime) -> str:
    """A single-use confirm token for a pending subscriber, valid CONFIRM_LIFETIME."""
    expiry = str(int((now + CONFIRM_LIFETIME).timestamp()))
    mac = _mac(
        secret, subscriber.id, subscriber.email, "confirm", expiry, confirm_state(subscriber)
    )
    return f"{subscriber.id}.confirm.{expiry}.{mac}"


def verify_confirm_token(secret: bytes, token: str, subscriber: Subscriber, now: datetime) -> int:
    """The subscriber id if `token` confirms this subscriber as they are now. An expired
    token is ExpiredTokenError; a forged one, or one made before the subscriber's state
    changed (confirmed, unsubscribed, subscribed again), is TokenError."""
    subscriber_id, purpose = read_token(token)
    if purpose != "confirm":
        raise TokenError(f"token is for {purpose}, not confirm")
    _, _, expiry, given = token.split(".")
    if int(expiry) < now.timestamp():
        raise ExpiredTokenError("the link has expired")
    state = confirm_state(subscriber)
    if not hmac.compare_digest(
        _mac(secret, subscriber_id, subscriber.email, "confirm", expiry, state), given
    ):
        raise TokenError("token signature does not match (forged, used, or superseded)")
    return subscriber_id


def verify_token(secret: bytes, token: str, email: str, purpose: str) -> int:
    """The subscriber id if `token` was signed for this address and purpose; else TokenError.
    (Confirm tokens: verify_confirm_token.)"""
    subscriber_id, token_purpose = read_token(token)
    if token_purpose != purpose or purpose == "confirm":
        raise TokenError(f"token is for {token_purpose}, not {purpose}")
    expected = _mac(secret, subscriber_id, email, purpose)
    if not hmac.compare_digest(expected, token.rsplit(".", 1)[1]):
        raise TokenError("token signature does not match")
    return subscriber_id


def _mac(secret: bytes, subscriber_id: int, email: str, purpose: str, *bound: str) -> str:
    message = "\0".join([purpose, str(subscriber_id), address_key(email), *bound]).encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign_bounce_token(secret: bytes, subscriber_id: int, digest_id: int) -> str:
    """`12.34.mac` for a VERP return path: the subscriber and the digest, signed; lower
    case only, so it survives a server that lower-cases the local part."""
    return f"{subscriber_id}.{digest_id}.{_bounce_mac(secret, subscriber_id, digest_id)}"


def verify_bounce_token(secret: bytes, token: str) -> tuple[int, int]:
    """(subscriber id, digest id) if `token` is a bounce token we signed (in any letter
    case); else TokenError (an unsubscribe or confirm token is one too)."""
    match = _BOUNCE_TOKEN.fullmatch(token.lower())
    if match is None:
        raise TokenError("not a bounce token")
    subscriber_id, digest_id = int(match[1]), int(match[2])
    if not hmac.compare_digest(_bounce_mac(secret, subscriber_id, digest_id), match[3]):
        raise TokenError("bounce token signature does not match")
    return subscriber_id, digest_id


def _bounce_mac(secret: bytes, subscriber_id: int, digest_id: int) -> str:
    message = "\0".join([BOUNCE, str(subscriber_id), str(digest_id)]).encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:10]  # 80 bits
    return base64.b32encode(digest).decode().lower()  # 16 letters and digits, no padding
