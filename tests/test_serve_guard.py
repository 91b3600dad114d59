"""`syndicate serve` as a real process on 127.0.0.1, attacked over real sockets:
trickling connections with a lowered open-files limit (slowloris), spoofed
X-Forwarded-For, and tokens that must not reach the access log."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import resource
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from syndicate.web.guard import RepeatLimit

from .conftest import Result, Site
from .smtp_sink import free_port
from .test_serve import SECRET, served_site

pytestmark = pytest.mark.slow


@dataclass
class Server:
    base: str
    port: int
    log: Path  # stdout and stderr together

    def text(self) -> str:
        return self.log.read_text("utf-8", errors="replace")


@contextlib.contextmanager
def running(site: Site, open_files: int | None = None) -> Iterator[Server]:
    """`python -m syndicate serve` until the block ends (SIGTERM, then wait)."""
    port = free_port()
    log = site.root / f"serve-{port}.log"

    def limit() -> None:  # in the child, before exec: a small open-files limit
        if open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (open_files, open_files))

    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "syndicate", "serve", "--port", str(port)],
            cwd=site.root, env={**os.environ, "SYNDICATE_SECRET": SECRET},
            stdout=out, stderr=out, preexec_fn=limit,
        )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}/", port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(server.base + "feed.xml", timeout=2).status_code == 200:
                    break
            assert process.poll() is None, server.text()
            assert time.monotonic() < deadline, "syndicate serve did not come up"
            time.sleep(0.2)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def subscribe(server: Server, address: str, forwarded_for: str) -> int:
    response = httpx.post(
        server.base + "subscribe",
        data={"email": address},
        headers={"X-Forwarded-For": forwarded_for},
        timeout=5,
    )
    return response.status_code


@pytest.mark.slow
def test_x_forwarded_for_is_believed_only_from_configured_proxies(
    site: Site, invoke: Callable[..., Result]
) -> None:
    served_site(site, invoke, public_url="http://127.0.0.1/")  # trusted_proxies: [] (default)
    with running(site) as server:
        spoofed = [subscribe(server, f"s{n}@example.org", f"203.0.113.{n}") for n in range(5)]
    assert spoofed == [202, 202, 202, 429, 429]  # all one client: 127.0.0.1

    served_site(site, invoke, extra="  trusted_proxies: ['127.0.0.1']\n")
    with running(site) as server:
        relayed = [subscribe(server, f"p{n}@example.org", f"203.0.113.{n}") for n in range(5)]
        one_reader = [subscribe(server, f"q{n}@example.org", "198.51.100.7") for n in range(4)]
    assert relayed == [202] * 5  # five readers behind the proxy
    assert one_reader == [202, 202, 202, 429]


@pytest.mark.slow
def test_the_access_log_never_holds_a_token(site: Site, invoke: Callable[..., Result]) -> None:
    served_site(site, invoke)
    secret_part = "Zm9yZ2VkLXRva2VuLW1hYw"  # noqa: S105 - a made-up token's MAC
    with running(site) as server:
        for path in (
            f"confirm?token=1.confirm.9999999999.{secret_part}",
            f"unsubscribe?token=1.unsubscribe.{secret_part}",
            f"unsubscribe?x=1&token=1.unsubscribe.{secret_part}&y=2",
        ):
            assert httpx.get(server.base + path, timeout=5).status_code == 400
    log = server.text()
    assert "GET /confirm?token=[redacted] HTTP/1.1" in log, log
    assert "GET /unsubscribe?x=1&token=[redacted]&y=2 HTTP/1.1" in log, log
    assert secret_part not in log


@pytest.mark.slow
def test_a_token_under_an_encoded_name_is_redacted_too(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """The server decodes parameter names (`?%74oken=` is `?token=`, a working link), so
    the log redacts by the decoded name, and whatever is shaped like a token anywhere."""
    served_site(site, invoke)
    secret_part = "RW5jb2RlZC10b2tlbi1tYWM"  # noqa: S105 - a made-up token's MAC
    with running(site) as server:
        for path in (
            f"unsubscribe?%74oken=1.unsubscribe.{secret_part}",
            f"unsubscribe?t%6Fken=1.unsubscribe.{secret_part}",
            f"unsubscribe?a=1;TOKEN=1.unsubscribe.{secret_part}",
            f"unsubscribe?token%3D1.unsubscribe.{secret_part}",
            f"confirm?x=1%2Econfirm%2E9999999999%2E{secret_part}",
            f"unsubscribe/1.unsubscribe.{secret_part}",
        ):
            assert httpx.get(server.base + path, timeout=5).status_code in (400, 404)
    log = server.text()
    assert "GET /unsubscribe?%74oken=[redacted] HTTP/1.1" in log, log
    assert secret_part not in log, log


def connect_all(
    source: tuple[str, int], target: tuple[str, int], count: int
) -> list[socket.socket]:
    """`count` connections opened in parallel (non-blocking connect), within 10 s."""
    selector = selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.bind(source)
        sock.connect_ex(target)
        selector.register(sock, selectors.EVENT_WRITE)
    connected = []
    deadline = time.monotonic() + 10
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            selector.unregister(sock)
            if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                sock.settimeout(2)
                connected.append(sock)
            else:
                sock.close()
    for key in list(selector.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    selector.close()
    return connected


def trickle(sockets: list[socket.socket], data: bytes) -> list[socket.socket]:
    """Send `data` on each socket; the ones the server has closed drop out."""
    alive = []
    for sock in sockets:
        try:
            sock.sendall(data)
            alive.append(sock)
        except OSError:
            sock.close()
    return alive


def closed_by_server(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(1024) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


@pytest.mark.slow
def test_trickling_connections_from_one_client_do_not_block_others(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """300 connections from 127.0.0.2 that send headers a line at a time, against a server
    allowed 256 open files: an ordinary reader on 127.0.0.1 is still served at once, the
    tricklers are cut off after serve.header_timeout_seconds, and the log stays short."""
    served_site(
        site,
        invoke,
        extra="  max_connections_per_client: 10\n  header_timeout_seconds: 2\n",
    )
    attackers: list[socket.socket] = []
    with running(site, open_files=256) as server:
        try:
            attackers = connect_all(("127.0.0.2", 0), ("127.0.0.1", server.port), 300)
            assert len(attackers) >= 250
            attackers = trickle(attackers, b"GET / HTTP/1.1\r\nHost: x\r\n")
            waits = []
            for n in range(8):  # 4 s of trickling, with a normal request in each round
                attackers = trickle(attackers, f"X-Slow-{n}: 1\r\n".encode())
                start = time.monotonic()
                assert httpx.get(server.base + "feed.xml", timeout=10).status_code == 200
                waits.append(time.monotonic() - start)
                time.sleep(0.5)
            still_open = [s for s in attackers if not closed_by_server(s)]
        finally:
            for sock in attackers:
                sock.close()
    assert max(waits) < 1.0, waits
    assert still_open == [], f"{len(still_open)} trickling connections outlived the timeout"
    log = server.text()
    assert len(log) < 20_000, log[-2000:]
    assert "Too many open files" not in log
    assert 1 <= log.count("refused a connection from 127.0.0.2") <= 5  # repeats suppressed


@pytest.mark.slow
def test_a_trusted_proxy_is_not_held_to_the_per_client_cap(
    site: Site, invoke: Callable[..., Result]
) -> None:
    """Behind a reverse proxy every reader arrives from the proxy's address."""
    served_site(
        site, invoke, extra="  trusted_proxies: ['127.0.0.2']\n  max_connections_per_client: 3\n"
    )
    with running(site) as server:
        proxy = connect_all(("127.0.0.2", 0), ("127.0.0.1", server.port), 12)
        other = connect_all(("127.0.0.3", 0), ("127.0.0.1", server.port), 12)
        try:
            request = b"GET /feed.xml HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            answers = []
            for sock in proxy + other:
                try:
                    sock.sendall(request)
                    answers.append(sock.recv(64).startswith(b"HTTP/1.1 200"))
                except OSError:
                    answers.append(False)
        finally:
            for sock in proxy + other:
                sock.close()
    assert answers[:12] == [True] * 12  # the proxy's 12 connections are all served
    assert answers[12:].count(True) == 3  # an ordinary client gets its 3


@pytest.mark.slow
def test_repeated_errors_are_logged_a_few_times_then_counted() -> None:
    """RepeatLimit on a real logger and handler: a flood of one error (EMFILE in accept,
    say) writes five lines a minute, and the next line says how many were left out."""
    stream = io.StringIO()
    logger = logging.getLogger("syndicate.test-flood")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    limit = RepeatLimit(burst=5, window=0.3)
    logger.addFilter(limit)
    logger.setLevel(logging.INFO)
    try:
        for n in range(10_000):  # numbers vary (fds, ports): still the same message
            logger.error(f"socket.accept() out of system resource (fd={n})")
        logger.warning("another problem")
        time.sleep(0.35)
        logger.error("socket.accept() out of system resource (fd=10000)")
        logger.info("info is never limited %d", 1)
    finally:
        logger.removeHandler(handler)
        logger.removeFilter(limit)
    lines = stream.getvalue().splitlines()
    assert lines[:5] == [f"socket.accept() out of system resource (fd={n})" for n in range(5)]
    assert lines[5:] == [
        "another problem",
        "socket.accept() out of system resource (fd=10000) [9995 similar messages suppressed]",
        "info is never limited 1",
    ]


@pytest.mark.slow
def test_a_trickled_body_is_cut_off_with_408(site: Site, invoke: Callable[..., Result]) -> None:
    served_site(site, invoke, extra="  header_timeout_seconds: 1\n")
    with running(site) as server:
        [sock] = connect_all(("127.0.0.1", 0), ("127.0.0.1", server.port), 1)
        try:
            sock.sendall(
                b"POST /subscribe HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\n\r\nemail="
            )
            start = time.monotonic()
            answer = b""
            for _ in range(30):  # a byte every 0.1 s, for at most 3 s
                try:
                    sock.sendall(b"a")
                    sock.settimeout(0.1)
                    answer += sock.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if answer:
                    break
            elapsed = time.monotonic() - start
        finally:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert elapsed < 2.5
