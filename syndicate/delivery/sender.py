"""The SMTP transactions of a send run in a forked child process, so that killing the run
(the pid cron, the user or systemd sees) never cuts a transaction in two.

Like Postfix's master and its delivery agents: the parent forks one sender, waits for it
and relays its progress and report. When the parent dies (kill -9 included), the sender
starts no new transaction but finishes the ones in flight, reading the server's answer and
committing `sent`, `deferred` or `bounced`, then exits. It holds the delivery lock (a
lockf beside the run lock, released by the kernel however the sender ends) all along; the
next run waits for that lock before it treats rows left `sending` as in doubt, so it never
resends a message a sender is still finishing. Only when the sender itself dies (the whole
process group killed) are its in-flight rows resent, as before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import traceback
from collections.abc import Callable
from multiprocessing.connection import Pipe
from pathlib import Path
from typing import Any, TypeVar

from syndicate.runs.lock import RunLock

R = TypeVar("R")
Relay = Callable[[Any], None]  # a message from the sender to the parent's on_message
Work = Callable[[Callable[[], bool], Relay], R]  # (parent gone?, relay) -> result


def delivery_lock_path(run_lock: Path) -> Path:
    """`syndicate.db.lock` -> `syndicate.db.delivery.lock` (beside the run lock)."""
    return run_lock.with_name(run_lock.name.removesuffix(".lock") + ".delivery.lock")


def wait_for_orphans(path: Path, timeout: float) -> bool:
    """Wait (up to `timeout` seconds) until no sender of an earlier, killed run is still
    finishing its transactions. -> False if one still was when we gave up."""
    try:
        with RunLock(path, timeout, poll=0.01):
            return True
    except Exception:
        return False


def can_fork() -> bool:
    return hasattr(os, "fork")


def run_in_sender(
    work: Work[R],
    on_message: Callable[[Any], None],
    lock: Path,
    lock_timeout: float,
    after_fork: Callable[[], None],
) -> R:
    """Run `work` in a forked sender holding the delivery lock; relay what it sends to
    `on_message` here. -> its result. Raises RuntimeError if the sender died first."""
    reader, writer = Pipe(duplex=False)
    parent = os.getpid()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the sender: measured through the CLI tests
        reader.close()
        _sender_main(work, writer, parent, lock, lock_timeout, after_fork)
    writer.close()
    result: list[Any] = []
    try:
        while True:
            try:
                kind, payload = reader.recv()
            except EOFError:
                break
            if kind == "message":
                on_message(payload)
            else:
                result.append((kind, payload))
    finally:
        reader.close()
    _, status = os.waitpid(pid, 0)
    if result and result[0][0] == "done":
        return result[0][1]  # type: ignore[no-any-return]
    detail = result[0][1] if result else f"exit status {os.waitstatus_to_exitcode(status)}"
    raise RuntimeError(f"the sending process stopped: {detail}")


def _sender_main(
    work: Work[Any],
    writer: Any,
    parent: int,
    lock: Path,
    lock_timeout: float,
    after_fork: Callable[[], None],
) -> None:
    """The child: never returns (os._exit), never prints."""
    code = 0
    send_lock = threading.Lock()

    def relay(kind: str, payload: Any) -> None:
        with send_lock, contextlib.suppress(OSError):  # the parent is gone: nobody to tell
            writer.send((kind, payload))

    try:
        # SIGINT (Ctrl-C reaches the whole process group) and SIGTERM (systemd signals the
        # whole cgroup) stop the parent; we stop with it, after the transactions in flight.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        after_fork()
        with RunLock(lock, lock_timeout, poll=0.01):
            # Checked under the lock: a parent killed before we held it has a successor
            # that may already be delivering; we must not claim anything then.
            def parent_gone() -> bool:
                return os.getppid() != parent

            result = work(parent_gone, lambda payload: relay("message", payload))
        relay("done", result)
    except BaseException as exc:
        code = 70
        lines = traceback.format_exception_only(type(exc), exc)
        relay("error", lines[-1].strip())
    finally:
        os._exit(code)
