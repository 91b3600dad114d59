"""Subscribing, confirming and unsubscribing, without HTTP: what the endpoints of
`syndicate serve` ask of the state database, the tokens and the mail transport."""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from syndicate.config import Config
from syndicate.content.markup import clean_line
from syndicate.delivery.transport import make_transport
from syndicate.errors import (
    AddressError,
    FormError,
    PermanentSendError,
    SyndicateError,
    TokenError,
    TransientSendError,
)
from syndicate.models import Subscriber
from syndicate.newsletter.compose import compose_confirmation
from syndicate.newsletter.render import render_confirmation
from syndicate.newsletter.subscribers import inbox_key, normalize_address, parse_topics
from syndicate.newsletter.tokens import (
    read_token,
    sign_confirm_token,
    verify_confirm_token,
    verify_token,
)
from syndicate.state.store import Store
from syndicate.state.subscribers import (
    add_subscriber,
    confirm_pending,
    get_subscriber,
    renew_pending,
    set_status,
)
from syndicate.web.requests import is_text

log = logging.getLogger("syndicate.serve")
MAX_TOPICS = 100  # more in one request is not a person ticking boxes


class SlidingWindowLimiter:
    """At most `limit` events per `window` seconds per key (a client, an inbox)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self.hits: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def allow(self, key: str) -> float | None:
        """None if allowed; else how many seconds until the key may try again."""
        now = time.monotonic()
        with self.lock:
            if len(self.hits) > 10_000:  # forget idle keys, bounded memory under a flood
                self.hits = {k: v for k, v in self.hits.items() if v and v[-1] > now - self.window}
            hits = self.hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return hits[0] + self.window - now
            hits.append(now)
            return None


@dataclass(frozen=True, slots=True)
class SubscriptionRequest:
    address: str
    name: str
    topics: tuple[str, ...]


def read_subscription(fields: dict[str, Any], allow_special: bool) -> SubscriptionRequest:
    """The subscribe form's fields checked and cleaned (FormError if they can't be)."""
    raw = fields.get("email")
    if raw is not None and not is_text(raw):
        raise FormError("Bad email", "email must be a string.")
    if not raw or not raw.strip():
        raise FormError("No email address", "Please enter your email address.")
    try:
        address = normalize_address(raw, allow_special)
    except AddressError as exc:
        raise FormError("That address does not look right", str(exc)) from None
    raw_name = fields.get("name")
    if raw_name is not None and not is_text(raw_name):
        raise FormError("Bad name", "name must be a string.")
    topics = fields.get("topics") or []
    if isinstance(topics, str):
        topics = [topics]
    if not isinstance(topics, list) or len(topics) > MAX_TOPICS or not all(map(is_text, topics)):
        raise FormError("Bad topics", f"topics must be a list of at most {MAX_TOPICS} strings.")
    return SubscriptionRequest(
        address, str(clean_line(raw_name or "") or ""), parse_topics(",".join(topics))
    )


class Subscriptions:
    """The subscription state changes behind the endpoints (each one idempotent)."""

    def __init__(self, config: Config, store: Store, secret: bytes) -> None:
        self.config = config
        self.store = store
        self.secret = secret
        # Confirmation emails per address: the per-client limit alone lets many clients
        # (or a botnet) flood one inbox.
        self.confirmations = SlidingWindowLimiter(
            config.serve.confirmations_per_hour, window=3600.0
        )

    def request(self, wanted: SubscriptionRequest) -> None:
        """Record a pending subscriber and mail the confirmation link; an active reader,
        a flooded inbox or a failing relay get nothing (and the caller's answer is the
        same whatever happened: see the subscribe endpoint)."""
        now = datetime.now(UTC)
        try:
            found = self._pending(wanted, now)
            if found is None:
                return
            if self.confirmations.allow(inbox_key(found.email)) is not None:
                log.warning("confirmation not sent: too many requested for one address")
                return
            self._send_confirmation(found, now)
        except (SyndicateError, TransientSendError, PermanentSendError) as exc:
            log.warning("confirmation for %s not sent: %s", wanted.address, exc)

    def _pending(self, wanted: SubscriptionRequest, now: datetime) -> Subscriber | None:
        """The subscriber to confirm, or None (already active)."""
        found, created = add_subscriber(
            self.store, wanted.address, wanted.name, wanted.topics, "pending", now
        )
        if not created and found.status in ("unsubscribed", "bounced"):
            # A fresh pending state: links sent before no longer verify.
            found = renew_pending(self.store, found.id, now) or found
        return found if found.status == "pending" else None

    def _send_confirmation(self, subscriber: Subscriber, now: datetime) -> None:
        token = sign_confirm_token(self.secret, subscriber, now)
        link = f"{self.config.serve.public_url}confirm?token={token}"
        rendered = render_confirmation(self.config, link)
        message = compose_confirmation(
            self.config, rendered, subscriber.email, subscriber.name, now
        )
        connection = make_transport(self.config).connect()
        try:
            connection.send(message.sender, message.recipient, message.data)
        finally:
            connection.close()

    def subscriber_for(self, token: str, purpose: str) -> Subscriber:
        """The subscriber a link's token names, if its signature holds (TokenError)."""
        subscriber_id, _ = read_token(token)
        found = get_subscriber(self.store, subscriber_id)
        if found is None:
            raise TokenError("no such subscriber")
        if purpose == "confirm":
            verify_confirm_token(self.secret, token, found, datetime.now(UTC))
        else:
            verify_token(self.secret, token, found.email, purpose)
        return found

    def confirm(self, subscriber: Subscriber) -> bool:
        """Pending -> active; False if its state changed meanwhile (a second click)."""
        return confirm_pending(self.store, subscriber.id, datetime.now(UTC))

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """Idempotent: unsubscribing twice changes nothing."""
        if subscriber.status != "unsubscribed":
            set_status(self.store, subscriber.id, "unsubscribed", datetime.now(UTC))
