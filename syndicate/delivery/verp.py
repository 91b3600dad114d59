"""VERP return paths (pure): each digest message goes out with its own envelope sender,
`delivery.return_path` with a signed token naming the recipient and the digest (e.g.
`bounces+12.34.k5x2...@example.org`). A bounce comes back to that address, so it names
the subscriber whatever the failed address it reports (a forward, an alias, a rewrite).
"""

from __future__ import annotations

from email.utils import parseaddr

from syndicate.errors import TokenError
from syndicate.newsletter.tokens import sign_bounce_token, verify_bounce_token

PLACEHOLDER = "{token}"


def return_path_for(template: str, subscriber_id: int, digest_id: int, secret: bytes) -> str:
    """The envelope sender of one digest message: `template` with the signed token."""
    return template.replace(PLACEHOLDER, sign_bounce_token(secret, subscriber_id, digest_id))


def read_return_path(address: str, template: str, secret: bytes) -> tuple[int, int] | None:
    """(subscriber id, digest id) when `address` is `template` with a token we signed,
    compared without regard to case (`<...>` and a display name are allowed); else None."""
    prefix, found, suffix = template.lower().partition(PLACEHOLDER)
    if not found:
        return None
    candidate = (parseaddr(address)[1] or address).strip().lower()
    if len(candidate) <= len(prefix) + len(suffix):
        return None
    if not (candidate.startswith(prefix) and candidate.endswith(suffix)):
        return None
    token = candidate[len(prefix) : len(candidate) - len(suffix)]
    try:
        return verify_bounce_token(secret, token)
    except TokenError:
        return None
