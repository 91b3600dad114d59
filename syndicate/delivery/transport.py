"""Transports: SMTP (TLS verified, connections reused) and a file outbox. The only I/O
of delivery; a transport knows nothing of digests or subscribers."""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import socket
import ssl
import threading
import time
from pathlib import Path
from typing import Protocol

from syndicate.config import Config
from syndicate.errors import (
    DeliveryError,
    PermanentSendError,
    SyndicateError,
    TransientSendError,
    UnsupportedRecipientError,
)
from syndicate.output import write_atomic


class Connection(Protocol):
    utf8: bool  # can carry a non-ASCII address (SMTPUTF8, or a file)

    def send(self, sender: str, recipient: str, data: bytes) -> str:
        """Deliver one message; return the server's answer. Raises Transient/PermanentSendError."""

    def close(self) -> None: ...


class Transport(Protocol):
    connections: int

    def connect(self) -> Connection: ...


class SendRateLimiter:
    """At most `rate` sends a second across all connections (0 = unlimited)."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.lock = threading.Lock()
        self.next_slot = time.monotonic()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            slot = max(self.next_slot, now)
            self.next_slot = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


# --- SMTP -------------------------------------------------------------------------------


class SMTPTransport:
    def __init__(self, config: Config) -> None:
        self.settings = config.delivery.smtp
        self.connections = self.settings.connections
        self.password: str | None = None
        if self.settings.username:
            self.password = os.environ.get(self.settings.password_env)
            if not self.password:
                raise DeliveryError(
                    f"delivery.smtp.username is set but {self.settings.password_env} is empty",
                    f"export {self.settings.password_env}=... (never put it in config.yaml)",
                )
        self.tls = ssl.create_default_context(
            cafile=str(self.settings.ca_file) if self.settings.ca_file else None
        )
        self.helo = self.settings.helo or default_helo()

    def connect(self) -> SMTPConnection:
        return SMTPConnection(self)


def default_helo() -> str:
    """This machine's FQDN (its plain host name when it has no domain): smtplib would send
    an address literal such as `[127.0.0.1]` for a name without a dot, which receiving
    servers score as spam."""
    names = [socket.getfqdn(), socket.gethostname()]
    real = [n for n in names if n and n.split(".")[0] not in ("localhost", "localhost6")]
    return next((n for n in real if "." in n), real[0] if real else "localhost")


class SMTPConnection:
    """One SMTP session, reused for many messages."""

    def __init__(self, transport: SMTPTransport) -> None:
        s = transport.settings
        where = f"{s.host}:{s.port}"
        try:
            if s.security == "ssl":
                self.smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, transport.helo, timeout=s.timeout, context=transport.tls
                )
            else:
                self.smtp = smtplib.SMTP(s.host, s.port, transport.helo, timeout=s.timeout)
            self.smtp.ehlo()
            if s.security == "starttls":
                if not self.smtp.has_extn("starttls"):
                    self.smtp.quit()
                    raise DeliveryError(
                        f"{where} does not offer STARTTLS, and delivery.smtp.security is starttls",
                        "refusing to send in clear text; use security: ssl or fix the server",
                    )
                self.smtp.starttls(context=transport.tls)
                self.smtp.ehlo()
            if s.username:
                self.smtp.login(s.username, transport.password or "")
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"TLS certificate of {where} not trusted: {exc.verify_message}",
                "for a private CA set delivery.smtp.ca_file",
            ) from None
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(
                f"{where} refused the login for {s.username}: "
                f"{_answer(exc.smtp_code, exc.smtp_error)}",
                f"check delivery.smtp.username and {s.password_env}",
                exc.smtp_code,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(
                f"{where}: {exc}", "the server offers no AUTH; remove username"
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            if isinstance(exc, DeliveryError):
                raise
            raise TransientSendError(
                f"cannot connect to {where}: {exc}", connection_lost=True
            ) from None
        self.utf8 = self.smtp.has_extn("smtputf8")

    def send(self, sender: str, recipient: str, data: bytes) -> str:
        if not recipient.isascii() and not self.utf8:
            raise UnsupportedRecipientError(
                "the server does not offer SMTPUTF8, needed for an address whose part "
                "before the @ is not ASCII"
            )
        options = ["SMTPUTF8", "BODY=8BITMIME"] if not recipient.isascii() else []
        try:
            code, message = self.smtp.mail(sender, options)
            if code != 250:
                self._reset()
                if 500 <= code < 600 and code != 503:
                    # The sender itself is refused: no recipient's fault, stop everything.
                    raise DeliveryError(
                        f"the server refused the sender {sender}: {_answer(code, message)}",
                        "check newsletter.from against what the server allows",
                        code,
                    )
                raise _failure(code, message)
            code, message = self.smtp.rcpt(recipient)
            if code not in (250, 251):
                self._reset()
                raise _failure(code, message)
            code, message = self.smtp.data(data)
            if code != 250:
                self._reset()
                raise _failure(code, message)
        except smtplib.SMTPServerDisconnected as exc:
            raise TransientSendError(f"connection lost: {exc}", connection_lost=True) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientSendError(f"connection failed: {exc}", connection_lost=True) from None
        return _answer(code, message)

    def _reset(self) -> None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            self.smtp.rset()

    def close(self) -> None:
        try:
            self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            self.smtp.close()


def _answer(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
    return f"{code} {' '.join(text.split())}"


def _failure(code: int, message: bytes) -> Exception:
    """5xx: this recipient will never take it (bounce). 4xx: later. 503 (bad sequence) is
    our session gone wrong, not the recipient: start a fresh connection and retry."""
    answer = _answer(code, message)
    if 500 <= code < 600 and code != 503:
        return PermanentSendError(answer)
    return TransientSendError(answer, connection_lost=code in (421, 503, -1))


# --- files ------------------------------------------------------------------------------


class FileTransport:
    """Writes each message as an .eml file: the same bytes SMTP would carry."""

    connections = 1

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def connect(self) -> FileConnection:
        return FileConnection(self.folder)


class FileConnection:
    utf8 = True  # the file holds whatever bytes SMTPUTF8 would carry

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def send(self, sender: str, recipient: str, data: bytes) -> str:
        message_id = re.search(rb"^Message-ID:\s*<([^>]+)>", data, re.MULTILINE | re.IGNORECASE)
        name = message_id[1].decode() if message_id else f"{time.time_ns()}"
        safe = re.sub(r"[^A-Za-z0-9@._+-]", "_", name)
        try:
            write_atomic(self.folder / f"{safe}.eml", data)
        except SyndicateError as exc:
            raise DeliveryError(exc.message, exc.hint) from None
        return f"250 written to {self.folder.name}/{safe}.eml"

    def close(self) -> None:
        pass


def make_transport(config: Config) -> Transport:
    if config.delivery.transport == "file":
        return FileTransport(config.delivery.file_dir)
    return SMTPTransport(config)
