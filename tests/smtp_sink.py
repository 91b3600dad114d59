"""A real SMTP server on 127.0.0.1 for the delivery tests (aiosmtpd), with the failures a
sender must survive: 451 and 550 per recipient, a dropped connection after K messages, a
pause mid-DATA or at RCPT (so a test can kill -9 the sender at a known point), a slow
server, STARTTLS and AUTH, a provider that throttles (an answer per recipient domain);
optionally without SMTPUTF8. It records the EHLO name and when each message was
accepted."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes
    helo: str = ""  # the client's EHLO/HELO name
    accepted_at: float = 0.0  # time.monotonic() when the server accepted it

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SinkHandler:
    tempfail: set[str] = field(default_factory=set)  # answer 451 at RCPT
    reject: set[str] = field(default_factory=set)  # answer 550 at RCPT
    drop_after: int | None = None  # close the connection instead of answering message K+1
    pause_at: int | None = None  # hold message K (1-based) before answering, until released
    pause_answer: str = "451 4.3.0 Released without delivery"  # the answer once released
    hold_rcpt: set[str] = field(default_factory=set)  # hold RCPT TO these until released
    slow: float = 0.0  # seconds each message takes before its 250 (a slow server)
    # answer RCPT TO any address at these domains so, e.g. {"gmail.com": "421 4.7.0 ..."}:
    # every test domain resolves to this one server, which plays each provider by domain
    domain_answers: dict[str, str] = field(default_factory=dict)
    rcpt_seen: list[str] = field(default_factory=list)  # every RCPT TO, in order
    sessions: int = 0  # EHLO/HELO greetings: about one per connection
    received: list[Received] = field(default_factory=list)
    data_count: int = 0
    paused: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        with self.lock:
            self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        with self.lock:
            self.rcpt_seen.append(address)
        answer = self.domain_answers.get(address.rpartition("@")[2].lower())
        if answer is not None:
            return answer
        if address in self.hold_rcpt:
            self.paused.set()
            while not self.release.is_set():
                await asyncio.sleep(0.01)
        if address in self.reject:
            return "550 5.1.1 No such user here"
        if address in self.tempfail:
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.data_count += 1
            count = self.data_count
        if self.drop_after is not None and count > self.drop_after:
            self.drop_after = None  # drop once; the sender reconnects
            server.transport.close()
            return "421 4.4.2 Connection dropped"
        if self.pause_at is not None and count == self.pause_at:
            self.paused.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
            if not self.pause_answer.startswith("250"):
                return self.pause_answer
        if self.slow:
            await asyncio.sleep(self.slow)
        with self.lock:
            self.received.append(
                Received(
                    envelope.mail_from,
                    list(envelope.rcpt_tos),
                    envelope.original_content,
                    session.host_name or "",
                    time.monotonic(),
                )
            )
        return "250 2.0.0 Message accepted"

    def by_recipient(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for item in self.received:
            for rcpt in item.recipients:
                counts[rcpt] = counts.get(rcpt, 0) + 1
        return counts


class Sink:
    """`with Sink(...) as sink:` runs the server; `sink.port`, `sink.handler.received`."""

    def __init__(
        self,
        handler: SinkHandler | None = None,
        tls_context: ssl.SSLContext | None = None,
        credentials: tuple[str, str] | None = None,
        require_starttls: bool = False,
        smtputf8: bool = False,
    ) -> None:
        self.handler = handler or SinkHandler()
        self.port = free_port()
        kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
        if tls_context is not None:
            kwargs["tls_context"] = tls_context
            kwargs["require_starttls"] = require_starttls
        if credentials is not None:
            user, password = credentials

            def authenticator(
                server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
            ) -> AuthResult:
                ok = isinstance(auth_data, LoginPassword) and (
                    auth_data.login,
                    auth_data.password,
                ) == (
                    user.encode(),
                    password.encode(),
                )
                return AuthResult(success=ok, handled=False)

            kwargs["authenticator"] = authenticator
            kwargs["auth_require_tls"] = tls_context is not None
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.handler.release.set()
        self.controller.stop()
