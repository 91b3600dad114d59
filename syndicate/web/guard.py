"""What keeps `syndicate serve` standing when clients misbehave: a cap on connections per
client address and a deadline for request headers (slowloris), an open-files limit raised
as far as the system allows, security headers on every answer, and logs that neither
carry link tokens nor flood the disk with the same error.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import resource
import time
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote_plus

import h11
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("syndicate.serve")

FD_RESERVE = 64  # descriptors kept free for the database, logs, SMTP and the thread pool

# The app's own pages (subscribe, confirm, unsubscribe, errors): no script at all, styles
# inline, forms only to this origin, never in a frame, and no Referer leaving with a token.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}
# Every answer, static files included.
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def raise_open_files_limit() -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit (systemd's soft default is 1,024);
    returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 65_536)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else 65_536


def address_matcher(proxies: Sequence[str]) -> Callable[[str], bool]:
    """Does an address belong to one of `proxies` (addresses or networks; `*` = any)?"""
    if "*" in proxies:
        return lambda host: True
    networks = []
    for entry in proxies:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            continue

    def matches(host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in networks)

    return matches


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, plus: at most `per_client` open connections per client
    address (a trusted reverse proxy carries many readers, so it is exempt) and
    `max_connections` in all (a connection over either is closed at once, so the process
    never runs out of descriptors), and a request's headers must be complete within
    `header_timeout` seconds of the connection or of the previous response. The limits
    are set on a subclass by guarded_protocol()."""

    per_client: int
    header_timeout: float
    max_connections: int
    open_by_client: Counter[str]
    client_host: str | None = None
    header_timer: asyncio.TimerHandle | None = None

    @staticmethod
    def trusted(host: str) -> bool:
        return False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if isinstance(peer, tuple) else "local"
        crowded = self.open_by_client[host] >= self.per_client and not self.trusted(host)
        if crowded or len(self.connections) >= self.max_connections:
            log.warning("refused a connection from %s: too many open connections", host)
            transport.close()
            return
        self.client_host = host
        self.open_by_client[host] += 1
        super().connection_made(transport)
        self.arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.client_host is None:
            return  # refused in connection_made: uvicorn never saw it
        self.open_by_client[self.client_host] -= 1
        if self.open_by_client[self.client_host] <= 0:
            del self.open_by_client[self.client_host]
        self.client_host = None
        if self.header_timer is not None:
            self.header_timer.cancel()
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.arm_header_timer()

    def arm_header_timer(self) -> None:
        if self.header_timer is not None:
            self.header_timer.cancel()
        self.header_timer = self.loop.call_later(self.header_timeout, self.headers_too_slow)

    def headers_too_slow(self) -> None:
        # IDLE: the client has not finished a request's headers (a trickle, or nothing).
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(
    per_client: int,
    header_timeout: float,
    max_connections: int,
    trusted: Callable[[str], bool] = lambda host: False,
) -> type[asyncio.Protocol]:
    """A GuardedH11Protocol with these limits (its own count of open connections)."""
    limits = {
        "per_client": per_client,
        "header_timeout": header_timeout,
        "max_connections": max_connections,
        "open_by_client": Counter(),
        "trusted": staticmethod(trusted),
    }
    return type("GuardedH11Protocol", (GuardedH11Protocol,), limits)


class SecurityHeaders:
    """ASGI middleware: COMMON_HEADERS on every response, unless the app set them."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in COMMON_HEADERS.items():
                    if name.lower().encode() not in present:
                        headers.append((name.lower().encode(), value.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


_DIGITS = re.compile(r"[0-9]+")
_TOKEN = re.compile(r"(token=)[^&\s\"']+")
_PARAM = re.compile(r"([?&;])([^=&;\s\"'#?]+)=([^&;\s\"'#]*)")
# A token's own shape, its dots percent-encoded or not: `12.unsubscribe.MAC`.
_TOKEN_SHAPE = re.compile(r"[0-9]+(?:\.|%2e)(?:confirm|unsubscribe)(?:\.|%2e)[\w%.-]+", re.I)


def redact(text: str) -> str:
    """`/confirm?token=12.confirm.…` -> `/confirm?token=[redacted]`: a token in a log file
    is a working link for whoever reads the log. The server decodes parameter names, so
    `?%74oken=...` is a working link too: a parameter is redacted by its decoded name,
    and anything shaped like a token wherever it is."""

    def param(match: re.Match[str]) -> str:
        if unquote_plus(match.group(2)).strip().lower() != "token":
            return match.group(0)
        return f"{match.group(1)}{match.group(2)}=[redacted]"

    text = _TOKEN.sub(r"\1[redacted]", _PARAM.sub(param, text))
    return _TOKEN_SHAPE.sub("[redacted]", text)


class RedactTokens(logging.Filter):
    """Removes link tokens from a record's message and arguments (the access log's path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


class RepeatLimit(logging.Filter):
    """At most `burst` records a `window` for each (logger, message pattern) at WARNING or
    above; the rest are counted and the count is added to the next one let through. A
    flood of one failure (out of file descriptors, say) fills no disk."""

    def __init__(self, burst: int = 5, window: float = 60.0) -> None:
        super().__init__()
        self.burst = burst
        self.window = window
        self.seen: dict[tuple[str, str], tuple[float, int, int]] = {}  # start, passed, dropped

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        now = time.monotonic()
        key = (record.name, _DIGITS.sub("#", str(record.msg))[:300])  # fd=9 and fd=10 alike
        start, passed, dropped = self.seen.get(key, (now, 0, 0))
        if now - start >= self.window:
            start, passed = now, 0
        if passed >= self.burst:
            self.seen[key] = (start, passed, dropped + 1)
            return False
        if len(self.seen) > 1_000:
            self.seen.clear()
        if dropped:
            record.msg = f"{record.msg} [{dropped} similar messages suppressed]"
        self.seen[key] = (start, passed + 1, 0)
        return True


def guard_logs() -> None:
    """Install the filters on the loggers a server writes to (after uvicorn set them up)."""
    repeat = RepeatLimit()
    for name in ("uvicorn.access", "uvicorn.error", "asyncio", "syndicate.serve"):
        logger = logging.getLogger(name)
        for old in [f for f in logger.filters if isinstance(f, RedactTokens | RepeatLimit)]:
            logger.removeFilter(old)
        logger.addFilter(RedactTokens())
        logger.addFilter(repeat)


def uvicorn_options(
    per_client: int, header_timeout: float, trusted_proxies: Sequence[str]
) -> dict[str, Any]:
    """The uvicorn.Config arguments that put the guard in place.

    asyncio accepts up to `backlog` connections at a time before any protocol sees them,
    so a queue of waiting connections could use up the descriptors in one burst (and
    asyncio then stops accepting for a second): the backlog is kept to a fraction of the
    descriptors, and the cap on open connections leaves room for a few such bursts.
    """
    budget = max(64, raise_open_files_limit() - FD_RESERVE)
    backlog = min(2048, max(16, budget // 8))
    return {
        "http": guarded_protocol(
            per_client,
            header_timeout,
            max(16, budget - 3 * backlog),
            address_matcher(trusted_proxies),
        ),
        "backlog": backlog,
        "timeout_keep_alive": 5,
    }
