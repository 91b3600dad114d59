"""The Diagnostic record the CLI prints, and every error class syndicate raises.

The library raises or returns diagnostics; only the CLI formats them. Every
diagnostic names the file and line at fault and, where it helps, how to fix it.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable

from syndicate.record import Record

TYPE_CHECKING = False  # not typing's: importing it costs ~2 ms of config's 30 (record.py)
if TYPE_CHECKING:
    from typing import Any, Literal

    from syndicate.delivery.dispatch import SendReport

    Severity = Literal["error", "warning"]
MAX_SHOWN = 200  # characters of a value quoted in a message
MAX_MESSAGE = 600  # characters of a whole message or hint: cron mails every line

_repr = reprlib.Repr()
_repr.maxstring = MAX_SHOWN
_repr.maxother = MAX_SHOWN
_repr.maxlevel = 3
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 8


def shown(value: Any) -> str:
    """A value as a message quotes it: repr(), bounded in size and depth, so that a huge or
    alias-expanded value costs microseconds and a line, not gigabytes of stderr."""
    return clip(_repr.repr(value), MAX_SHOWN)


def clip(text: str, limit: int = MAX_MESSAGE) -> str:
    """`text` cut to `limit` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Diagnostic(Record):
    """One problem found in user input: `path:line: severity: message`."""

    path: str
    line: int | None
    severity: Severity
    message: str
    hint: str | None = None
    # True when the verdict depends on the moment, not the input (a render time limit hit
    # on a busy machine): such a result is never cached, the next run tries again.
    transient: bool = False

    def __post_init__(self) -> None:
        # Every message passes here: however it was built, it is never unbounded.
        object.__setattr__(self, "message", clip(self.message))
        if self.hint is not None:
            object.__setattr__(self, "hint", clip(self.hint))

    def format(self) -> str:
        """The compiler-style line (plus an indented hint line) for stderr."""
        where = f"{self.path}:{self.line}" if self.line else self.path
        text = f"{where}: {self.severity}: {self.message}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


def count_errors(diagnostics: Iterable[Diagnostic]) -> int:
    """How many of these diagnostics are errors (the rest are warnings)."""
    return sum(1 for d in diagnostics if d.severity == "error")


class SyndicateError(Exception):
    """Base of every error syndicate raises on bad input or a failed operation."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> list[Diagnostic]:
        """The error as diagnostics; subclasses name the file and line."""
        return [Diagnostic("syndicate", None, "error", self.message, self.hint)]


class ConfigError(SyndicateError):
    """config.yaml is unreadable or invalid; carries every problem found, not just the first."""

    def __init__(self, path: str, problems: list[Diagnostic]) -> None:
        first = problems[0].message if problems else "invalid configuration"
        super().__init__(first)
        self.path = path
        self.problems = problems

    @classmethod
    def one(cls, path: str, message: str, hint: str | None = None) -> ConfigError:
        """The config as a whole is at fault (no key line): one error about `path`."""
        return cls(path, [Diagnostic(path, None, "error", message, hint)])

    def diagnostics(self) -> list[Diagnostic]:
        return list(self.problems)


class PostError(SyndicateError):
    """A post that cannot be published; it is skipped and the others go on."""

    def __init__(
        self,
        source: str,
        line: int | None,
        message: str,
        hint: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message, hint)
        self.source = source
        self.line = line
        self.field = field

    def diagnostics(self) -> list[Diagnostic]:
        return [self.diagnostic()]

    def diagnostic(self) -> Diagnostic:
        """This error as the one diagnostic line the CLI prints."""
        return Diagnostic(self.source, self.line, "error", self.message, self.hint)


class TemplateError(SyndicateError):
    """A newsletter template cannot be rendered; nothing is sent or written."""

    def __init__(self, template: str, line: int | None, message: str, hint: str | None = None):
        super().__init__(message, hint)
        self.template = template
        self.line = line

    def diagnostics(self) -> list[Diagnostic]:
        return [Diagnostic(self.template, self.line, "error", self.message, self.hint)]


class OutputError(SyndicateError):
    """The output folder cannot be written."""


class StateError(SyndicateError):
    """The state database cannot be opened or is from a newer release."""


class LockTimeoutError(SyndicateError):
    """Another run held the lock for longer than we were willing to wait."""


class LockLostError(LockTimeoutError):
    """The run lock went away under a run (its database session ended): the run stops
    before recording anything, like one that never got the lock (exit 75)."""


class TokenError(SyndicateError):
    """A token that is malformed, forged, or for another purpose or address."""


class ExpiredTokenError(TokenError):
    """A confirm token past its expiry."""


class AddressError(ValueError):
    """An address email-validator rejects; the message says why. `special`: it would pass
    with subscribers.allow_special_domains (the CLI says so; a web visitor is not told)."""

    def __init__(self, message: str, special: bool = False) -> None:
        super().__init__(message)
        self.special = special

    def with_hint(self) -> str:
        hint = " (set subscribers.allow_special_domains: true to accept it)"
        return str(self) + (hint if self.special else "")


class DeliveryError(SyndicateError):
    """Delivery cannot go on at all (bad credentials, no STARTTLS, TLS failure)."""

    def __init__(self, message: str, hint: str | None = None, smtp_code: int | None = None):
        super().__init__(message, hint)
        self.smtp_code = smtp_code


class DeliveryStoppedError(DeliveryError):
    """Delivery stopped (refused login, untrusted certificate ...) after the digest was
    queued, and maybe after some messages went out: the error, with the report so far."""

    def __init__(self, cause: DeliveryError, report: SendReport) -> None:
        super().__init__(cause.message, cause.hint, cause.smtp_code)
        self.report = report


class TransientSendError(Exception):
    """A 4xx, or a connection that dropped: try this recipient again later."""

    def __init__(self, response: str, connection_lost: bool = False) -> None:
        super().__init__(response)
        self.response = response
        self.connection_lost = connection_lost


class PermanentSendError(Exception):
    """A 5xx for this recipient: do not try again."""

    def __init__(self, response: str) -> None:
        super().__init__(response)
        self.response = response


class UnsupportedRecipientError(PermanentSendError):
    """This transport cannot carry mail to this address (a non-ASCII local part to a server
    without SMTPUTF8). Permanent, but not the recipient's fault: delivery fails the row
    rather than bouncing the subscriber."""


class DigestExistsError(Exception):
    """A digest for exactly these posts was queued before."""


class FormError(Exception):
    """A subscribe form the server refuses: a title and a sentence for the reader."""

    def __init__(self, title: str, message: str) -> None:
        super().__init__(message)
        self.title = title
        self.message = message
