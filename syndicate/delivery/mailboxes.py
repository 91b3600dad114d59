"""Reading the mailbox bounces land in: a Maildir, an mbox file or an IMAP folder, each as
(stable id, message bytes) for bounces.scan_mailbox. Read only: nothing is ever deleted,
moved or flagged (IMAP: the folder is EXAMINEd and bodies fetched with BODY.PEEK, so not
even \\Seen is set), so running it twice reads the same messages and the report ids
de-duplicate them.
"""

from __future__ import annotations

import contextlib
import imaplib
import mailbox
import os
import re
import ssl
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from urllib.parse import unquote, urlsplit

from syndicate.errors import SyndicateError

IMAP_PASSWORD_ENV = "SYNDICATE_IMAP_PASSWORD"  # noqa: S105 (a variable's name, not a password)
IMAPS_PORT = 993
IMAP_TIMEOUT = 60.0  # seconds for any one network operation
Message = tuple[str, bytes]  # (stable id, bytes)


def read_maildir(path: Path | str) -> Iterator[Message]:
    """Every message of a Maildir (new/ and cur/), by its unique name (which stays the
    same when a mail client moves it from new/ to cur/)."""
    try:
        box = mailbox.Maildir(path, factory=None, create=False)
        keys = sorted(box.keys())
    except (mailbox.NoSuchMailboxError, FileNotFoundError, NotADirectoryError):
        raise SyndicateError(
            f"{path}: not a Maildir", "give the folder that holds cur/, new/ and tmp/"
        ) from None
    for key in keys:
        try:
            data = box.get_bytes(key)
        except KeyError:  # delivered elsewhere or deleted since the listing
            continue
        yield f"maildir:{key}", data


def read_mbox(path: Path | str) -> Iterator[Message]:
    """Every message of an mbox file, by the sha256 of its bytes (an mbox has no ids of
    its own: positions move when another program rewrites the file). Not locked: we
    only read, and a message being appended at that moment is read on the next run."""
    if not Path(path).is_file():
        raise SyndicateError(f"{path}: no such mbox file", "give the path of an mbox file")
    box = mailbox.mbox(path, factory=None, create=False)
    try:
        for key in box.iterkeys():
            data = box.get_bytes(key)
            yield f"mbox:{sha256(data).hexdigest()[:32]}", data
    finally:
        box.close()


@dataclass(frozen=True, slots=True)
class IMAPLocation:
    """`imaps://user@host[:port]/FOLDER`, parsed."""

    user: str
    host: str
    port: int
    folder: str


def parse_imap_url(url: str) -> IMAPLocation:
    """The parts of an `imaps://` URL (the user and folder may be percent-encoded); a
    SyndicateError saying what is wrong otherwise. No password in it: that comes from
    the environment (SYNDICATE_IMAP_PASSWORD)."""
    example = "e.g. imaps://bounces@mail.example.org/INBOX"
    parts = urlsplit(url)
    if parts.scheme.lower() != "imaps":
        raise SyndicateError(f"{url}: not an imaps:// URL", f"IMAP over TLS only: {example}")
    if parts.password is not None:
        raise SyndicateError(
            "the IMAP URL holds a password", f"leave it out and export {IMAP_PASSWORD_ENV}"
        )
    try:
        port = parts.port or IMAPS_PORT
    except ValueError:
        raise SyndicateError(f"{url}: bad port", example) from None
    if not parts.username or not parts.hostname:
        raise SyndicateError(f"{url}: needs a user and a host", example)
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    return IMAPLocation(unquote(parts.username), parts.hostname, port, folder)


def imap_password(environ: Mapping[str, str] = os.environ) -> str:
    """The IMAP password from SYNDICATE_IMAP_PASSWORD (never from config.yaml or the URL)."""
    password = environ.get(IMAP_PASSWORD_ENV, "")
    if not password:
        raise SyndicateError(
            f"{IMAP_PASSWORD_ENV} is not set", f"export {IMAP_PASSWORD_ENV} with the password"
        )
    return password


def read_imap(
    url: str, password: str, ssl_context: ssl.SSLContext | None = None
) -> Iterator[Message]:
    """Every message of an IMAP folder over TLS, verified against the system's CAs (or
    `ssl_context`'s), by `imap:UIDVALIDITY:UID`: stable for as long as the server keeps
    the folder's UIDVALIDITY."""
    where = parse_imap_url(url)
    context = ssl_context or ssl.create_default_context()
    try:
        client = imaplib.IMAP4_SSL(
            where.host, where.port, ssl_context=context, timeout=IMAP_TIMEOUT
        )
    except (OSError, imaplib.IMAP4.error) as exc:
        raise SyndicateError(f"cannot connect to {where.host}:{where.port}: {exc}") from None
    try:
        yield from _read_folder(client, where, password)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise SyndicateError(f"IMAP {where.host}: {exc}") from None
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):  # the connection is gone
            client.logout()


def _read_folder(client: imaplib.IMAP4, where: IMAPLocation, password: str) -> Iterator[Message]:
    try:
        client.login(where.user, password)
    except imaplib.IMAP4.error as exc:
        raise SyndicateError(
            f"IMAP login as {where.user} refused: {exc}", f"check {IMAP_PASSWORD_ENV}"
        ) from None
    status, _ = client.select(_quoted(where.folder), readonly=True)  # EXAMINE
    if status != "OK":
        raise SyndicateError(f"IMAP: no folder {where.folder!r}", "e.g. INBOX")
    validity = _uidvalidity(client)
    status, found = client.uid("SEARCH", "ALL")
    uids = found[0].split() if status == "OK" and found and found[0] else []
    for uid in uids:
        status, fetched = client.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
        data = _literal(fetched) if status == "OK" else None
        if data is not None:
            yield f"imap:{validity}:{uid.decode()}", data


def _uidvalidity(client: imaplib.IMAP4) -> str:
    _, values = client.response("UIDVALIDITY")
    value = values[0] if values else None
    return value.decode() if isinstance(value, bytes) else "0"


def _literal(fetched: list[object]) -> bytes | None:
    """The message bytes in a FETCH answer (imaplib gives (head, literal) pairs)."""
    for item in fetched:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def _quoted(folder: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9._/-]+", folder):
        return folder
    escaped = folder.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
