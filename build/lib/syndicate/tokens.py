"""Signed tokens for links in email: unsubscribe and confirm.

A token names the subscriber and its purpose and carries an HMAC-SHA256 over both and the
subscriber's address, keyed with a secret from the environment. It cannot be forged,
turned to another purpose, or replayed for another address.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

from syndicate.errors import SyndicateError
from syndicate.subscribers import address_key

PURPOSES = ("unsubscribe", "confirm")
MIN_SECRET_BYTES = 16
_ID = re.compile(r"[0-9]{1,12}")  # ASCII digits only ("²".isdigit() is True); fits SQL integers
_MAC = re.compile(r"[A-Za-z0-9_-]{1,64}")


class TokenError(SyndicateError):
    """A token that is malformed, forged, or for another purpose or address."""


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
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return f"{subscriber_id}.{purpose}.{_mac(secret, subscriber_id, email, purpose)}"


def read_token(token: str) -> tuple[int, str]:
    """(subscriber id, purpose) from a token's readable part; verify before trusting it."""
    parts = token.split(".")
    if (
        len(parts) != 3
        or not _ID.fullmatch(parts[0])
        or parts[1] not in PURPOSES
        or not _MAC.fullmatch(parts[2])
    ):
        raise TokenError("malformed token")
    return int(parts[0]), parts[1]


def verify_token(secret: bytes, token: str, email: str, purpose: str) -> int:
    """The subscriber id if `token` was signed for this address and purpose; else TokenError."""
    subscriber_id, token_purpose = read_token(token)
    if token_purpose != purpose:
        raise TokenError(f"token is for {token_purpose}, not {purpose}")
    expected = _mac(secret, subscriber_id, email, purpose)
    if not hmac.compare_digest(expected, token.rsplit(".", 1)[1]):
        raise TokenError("token signature does not match")
    return subscriber_id


def _mac(secret: bytes, subscriber_id: int, email: str, purpose: str) -> str:
    message = f"{purpose}\0{subscriber_id}\0{address_key(email)}".encode()
    digest = hmac.new(secret, message, hashlib.sha256).digest()[:18]
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
