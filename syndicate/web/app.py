"""`syndicate serve`: the output folder over HTTP, and the subscribe, confirm and
unsubscribe endpoints (RFC 8058 one-click included). An ASGI app (Starlette) run by
uvicorn; production-grade for a small site behind a reverse proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from syndicate.config import Config
from syndicate.content.markup import clean_line
from syndicate.delivery.transport import PermanentFailure, TransientFailure, make_transport
from syndicate.errors import SyndicateError
from syndicate.feeds.formats import FILENAMES, MEDIA_TYPES
from syndicate.models import Subscriber
from syndicate.newsletter.archive import ARCHIVE_DIR
from syndicate.newsletter.compose import compose_confirmation
from syndicate.newsletter.render import (
    render_confirmation,
    render_template,
    site_context,
    template_environment,
)
from syndicate.newsletter.subscribers import (
    AddressError,
    inbox_key,
    normalize_address,
    parse_topics,
)
from syndicate.newsletter.tokens import (
    ExpiredTokenError,
    TokenError,
    load_secret,
    read_token,
    sign_confirm_token,
    verify_confirm_token,
    verify_token,
)
from syndicate.state.mail import (
    add_subscriber,
    confirm_pending,
    get_subscriber,
    renew_pending,
    set_status,
)
from syndicate.state.store import Store
from syndicate.web.guard import PAGE_HEADERS, SecurityHeaders, guard_logs, uvicorn_options

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("syndicate.serve")
PAGE_TEMPLATE = "page.html.j2"
FEED_TYPES = {name: MEDIA_TYPES[fmt] for fmt, name in FILENAMES.items()}
OTHER_TYPES = {
    ".xsl": "text/xsl; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
CACHE_SECONDS = {".xsl": 86_400}
DEFAULT_CACHE_SECONDS = 300
MAX_TOPICS = 100  # more in one request is not a person ticking boxes
MAX_FIELD_CHARS = 1_000


class RateLimiter:
    """At most `limit` requests a minute per client address (a sliding window)."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self.hits: dict[str, deque[float]] = {}
        self.lock = threading.Lock()

    def allow(self, client: str) -> float | None:
        """None if allowed; else how many seconds until the client may try again."""
        now = time.monotonic()
        with self.lock:
            if len(self.hits) > 10_000:  # forget idle clients, bounded memory under a flood
                self.hits = {k: v for k, v in self.hits.items() if v and v[-1] > now - self.window}
            hits = self.hits.setdefault(client, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return hits[0] + self.window - now
            hits.append(now)
            return None


def create_app(config: Config, store: Store | None = None) -> Starlette:
    """The ASGI app. Needs SYNDICATE_SECRET (tokens) like `send` does."""
    secret = load_secret(config.delivery.secret_env)
    store = store or Store(config.state_url)
    env = template_environment(config)
    limiter = RateLimiter(config.serve.subscribe_per_minute)
    # Confirmation emails per address: the per-client limit alone lets many clients (or
    # a botnet) flood one inbox.
    confirmations = RateLimiter(config.serve.confirmations_per_hour, window=3600.0)
    allow_special = config.subscribers.allow_special_domains
    out_dir = config.output_dir.resolve()
    etags: dict[tuple[Path, int, int], str] = {}

    def page(title: str, message: str = "", status: int = 200, **extra: Any) -> HTMLResponse:
        context = {
            "site": site_context(config),
            "title": title,
            "message": message,
            "feeds": [],
            "form": False,
            "topics": [],
            "archive_url": None,
            "unsubscribe_action": None,
            "confirm_action": None,
            **extra,
        }
        return HTMLResponse(
            render_template(env, PAGE_TEMPLATE, context), status_code=status, headers=PAGE_HEADERS
        )

    def wants_json(request: Request) -> bool:
        accept = request.headers.get("accept", "")
        return "application/json" in accept or request.headers.get("content-type", "").startswith(
            "application/json"
        )

    def problem(request: Request, status: int, title: str, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"error": title, "detail": message}, status_code=status)
        return page(title, message, status)

    async def read_body(request: Request) -> bytes:
        limit = config.serve.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise HTTPException(413, f"request body larger than {limit} bytes")
        chunks: list[bytes] = []

        async def receive() -> None:
            size = 0
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, f"request body larger than {limit} bytes")
                chunks.append(chunk)

        # A body trickled a byte at a time would hold the connection for hours.
        seconds = config.serve.header_timeout_seconds
        try:
            await asyncio.wait_for(receive(), timeout=seconds)
        except TimeoutError:
            raise HTTPException(408, f"the request body took longer than {seconds:g} s") from None
        return b"".join(chunks)

    async def read_fields(request: Request) -> dict[str, Any]:
        body = await read_body(request)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(400, "the body is not UTF-8") from None
        if kind == "application/json":
            try:
                data = json.loads(text or "{}")
            except (ValueError, RecursionError):  # RecursionError: [[[[... nested too deep
                raise HTTPException(400, "the body is not valid JSON") from None
            if not isinstance(data, dict):
                raise HTTPException(400, "the JSON body must be an object")
            return data
        if kind in ("", "application/x-www-form-urlencoded"):
            try:  # strict: a percent-escaped byte that is not UTF-8 is refused, not replaced
                parsed = parse_qs(text, keep_blank_values=True, errors="strict")
            except UnicodeDecodeError:
                raise HTTPException(400, "the form is not UTF-8") from None
            return {k: v if k == "topics" else v[-1] for k, v in parsed.items()}
        raise HTTPException(415, "send a form (application/x-www-form-urlencoded) or JSON")

    def client_address(request: Request) -> str:
        # uvicorn applied X-Forwarded-For only if it came from serve.trusted_proxies.
        return request.client.host if request.client else "unknown"

    # --- subscribe / confirm / unsubscribe ---------------------------------------------

    async def home(request: Request) -> Response:
        return page(
            f"Subscribe to {config.site.title}",
            config.site.description,
            form=True,
            feeds=feed_links(),
            topics=await run_in_threadpool(known_topics),
            archive_url=f"{config.serve.public_url}{ARCHIVE_DIR}/"
            if (out_dir / ARCHIVE_DIR / "index.html").exists()
            else None,
        )

    async def subscribe(request: Request) -> Response:
        retry = limiter.allow(client_address(request))
        if retry is not None:
            response = problem(
                request, 429, "Too many requests", "Please wait a minute and try again."
            )
            response.headers["Retry-After"] = str(int(retry) + 1)
            return response
        fields = await read_fields(request)
        raw = fields.get("email")
        if raw is not None and not is_text(raw):
            return problem(request, 400, "Bad email", "email must be a string.")
        if not raw or not raw.strip():
            return problem(request, 400, "No email address", "Please enter your email address.")
        try:
            address = normalize_address(raw, allow_special)
        except AddressError as exc:
            return problem(request, 400, "That address does not look right", str(exc))
        raw_name = fields.get("name")
        if raw_name is not None and not is_text(raw_name):
            return problem(request, 400, "Bad name", "name must be a string.")
        name = clean_line(raw_name or "")
        topics_raw = fields.get("topics") or []
        if isinstance(topics_raw, str):
            topics_raw = [topics_raw]
        if (
            not isinstance(topics_raw, list)
            or len(topics_raw) > MAX_TOPICS
            or not all(is_text(t) for t in topics_raw)
        ):
            return problem(
                request,
                400,
                "Bad topics",
                f"topics must be a list of at most {MAX_TOPICS} strings.",
            )
        topics = parse_topics(",".join(topics_raw))
        # The same answer whatever the address's state, and the email goes out after the
        # response, so neither the text nor the timing tells who is subscribed.
        task = BackgroundTask(request_subscription, address, str(name or ""), topics)
        if wants_json(request):
            return JSONResponse({"status": "confirmation-sent"}, status_code=202, background=task)
        response = page(
            "Check your inbox",
            f"If {address} can subscribe, a confirmation link is on its way to it. "
            "Click it to start receiving the newsletter.",
            202,
        )
        response.background = task
        return response

    def request_subscription(address: str, name: str, topics: tuple[str, ...]) -> None:
        now = datetime.now(UTC)
        try:
            found, created = add_subscriber(store, address, name, topics, "pending", now)
            if not created:
                if found.status == "active":
                    return  # already subscribed: nothing to confirm, and nothing said
                if found.status in ("unsubscribed", "bounced"):
                    # A fresh pending state: links sent before no longer verify.
                    found = renew_pending(store, found.id, now) or found
            if found.status != "pending":
                return
            if confirmations.allow(inbox_key(found.email)) is not None:
                log.warning("confirmation not sent: too many requested for one address")
                return
            token = sign_confirm_token(secret, found, now)
            rendered = render_confirmation(
                config, f"{config.serve.public_url}confirm?token={token}"
            )
            message = compose_confirmation(config, rendered, found.email, found.name, now)
            connection = make_transport(config).connect()
            try:
                connection.send(message.sender, message.recipient, message.data)
            finally:
                connection.close()
        except (SyndicateError, TransientFailure, PermanentFailure) as exc:
            log.warning("confirmation for %s not sent: %s", address, exc)

    def subscriber_for(token: str, purpose: str) -> Subscriber:
        subscriber_id, _ = read_token(token)
        found = get_subscriber(store, subscriber_id)
        if found is None:
            raise TokenError("no such subscriber")
        if purpose == "confirm":
            verify_confirm_token(secret, token, found, datetime.now(UTC))
        else:
            verify_token(secret, token, found.email, purpose)
        return found

    def invalid_link(request: Request, advice: str) -> Response:
        return problem(
            request, 400, "This link is not valid", f"It may be incomplete or altered. {advice}"
        )

    async def move(subscriber: Subscriber, status: str) -> None:
        """Idempotent: confirming twice or unsubscribing twice changes nothing."""
        if subscriber.status != status:
            await run_in_threadpool(set_status, store, subscriber.id, status, datetime.now(UTC))

    async def confirm(request: Request) -> Response:
        """GET (and HEAD) show a button, only its POST confirms: link scanners follow GETs.
        Only a pending subscriber moves to active, and only with a link made for the
        current pending state (see tokens.py)."""
        token = request.query_params.get("token", "")
        try:
            subscriber = await run_in_threadpool(subscriber_for, token, "confirm")
        except ExpiredTokenError:
            return problem(
                request,
                400,
                "This link has expired",
                "Confirmation links work for 7 days. Please subscribe again for a new one.",
            )
        except TokenError:
            return invalid_link(
                request,
                "A confirmation link works once, and not after an unsubscribe: "
                "subscribe again for a new one.",
            )
        if request.method != "POST":
            return page(
                "Confirm your subscription?",
                f"Send the newsletter of {config.site.title} to {subscriber.email}?",
                confirm_action=f"confirm?token={token}",
            )
        await read_body(request)
        if not await run_in_threadpool(confirm_pending, store, subscriber.id, datetime.now(UTC)):
            # Its state changed between the check and now (a second click, an unsubscribe).
            return invalid_link(request, "Subscribe again for a new link.")
        return page(
            "Subscription confirmed",
            f"Thank you! The newsletter of {config.site.title} will come to {subscriber.email}.",
        )

    async def unsubscribe(request: Request) -> Response:
        token = request.query_params.get("token", "")
        try:
            subscriber = await run_in_threadpool(subscriber_for, token, "unsubscribe")
        except TokenError:
            return invalid_link(request, "Use the link in your latest email.")
        if request.method == "GET":
            # A GET must not unsubscribe: link scanners and previews follow GETs.
            return page(
                "Unsubscribe?",
                f"Stop sending the newsletter of {config.site.title} to this address?",
                unsubscribe_action=f"unsubscribe?token={token}",
            )
        await read_body(request)  # "List-Unsubscribe=One-Click" (RFC 8058) or the button
        await move(subscriber, "unsubscribed")
        return page(
            "You are unsubscribed", "You will get no more newsletters. Sorry to see you go."
        )

    def known_topics() -> list[str]:
        try:
            entries = json.loads((out_dir / ".syndicate-manifest.json").read_text("utf-8"))
        except (OSError, ValueError):
            return []
        names = entries.get("files", {}) if isinstance(entries, dict) else {}
        return sorted({name.split("/")[1] for name in names if name.startswith("tags/")})

    def feed_links() -> list[dict[str, str]]:
        links = []
        for name, title in (("feed.xml", "RSS"), ("atom.xml", "Atom"), ("feed.json", "JSON Feed")):
            if (out_dir / name).is_file():
                links.append(
                    {
                        "title": f"{config.site.title} ({title})",
                        "url": config.serve.public_url + name,
                        "type": FEED_TYPES[name],
                    }
                )
        return links

    # --- static files ---------------------------------------------------------------

    async def static(request: Request) -> Response:
        relative = request.path_params.get("path", "")
        target = resolve(relative)
        if target is None:
            return problem(request, 404, "Not found", f"There is nothing at /{relative}.")
        stat = target.stat()
        key = (target, stat.st_mtime_ns, stat.st_size)
        etag = etags.get(key)
        data: bytes | None = None
        if etag is None:
            data = await run_in_threadpool(target.read_bytes)
            etag = f'W/"{hashlib.sha256(data).hexdigest()[:32]}"'
            etags[key] = etag
        last_modified = email.utils.formatdate(stat.st_mtime, usegmt=True)
        max_age = CACHE_SECONDS.get(target.suffix, DEFAULT_CACHE_SECONDS)
        headers = {
            "ETag": etag,
            "Last-Modified": last_modified,
            "Cache-Control": f"public, max-age={max_age}",
            "Vary": "Accept",  # GZipMiddleware adds Accept-Encoding
            "X-Content-Type-Options": "nosniff",
        }
        if not_modified(request, etag, stat.st_mtime):
            return Response(status_code=304, headers=headers)
        if data is None:
            data = await run_in_threadpool(target.read_bytes)
        media_type = content_type(target, request.headers.get("accept", ""))
        body = b"" if request.method == "HEAD" else data
        response = Response(body, media_type=media_type, headers=headers)
        if request.method == "HEAD":
            response.headers["Content-Length"] = str(len(data))
        return response

    def resolve(relative: str) -> Path | None:
        parts = [p for p in relative.split("/") if p]
        if any(p.startswith(".") or "\0" in p for p in parts):
            return None  # hidden files (the manifest), any '..', NUL bytes
        try:
            target = (out_dir.joinpath(*parts)).resolve()
        except (OSError, ValueError):
            return None
        if target != out_dir and out_dir not in target.parents:
            return None
        if target.is_dir():
            target = target / "index.html"
        return target if target.is_file() else None

    routes = [
        Route("/", home, methods=["GET", "HEAD"]),
        Route("/subscribe", home, methods=["GET", "HEAD"]),
        Route("/subscribe", subscribe, methods=["POST"]),
        Route("/confirm", confirm, methods=["GET", "HEAD", "POST"]),
        Route("/unsubscribe", unsubscribe, methods=["GET", "POST"]),
        Route("/{path:path}", static, methods=["GET", "HEAD"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        titles = {
            400: "Bad request",
            404: "Not found",
            405: "Method not allowed",
            408: "Request timeout",
            413: "Request too large",
            415: "Unsupported content type",
        }
        return problem(
            request, exc.status_code, titles.get(exc.status_code, "Error"), str(exc.detail)
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        log.exception("error serving %s", request.url.path)
        return problem(
            request, 500, "Something went wrong", "The error was logged. Please try again later."
        )

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: http_error,
        Exception: server_error,
    }
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders), Middleware(GZipMiddleware, minimum_size=500)],
        exception_handlers=handlers,
    )


def is_text(value: object) -> bool:
    """A string of reasonable length that can be stored: JSON may carry lone surrogates
    ("\\ud800"), which no database encoding accepts."""
    if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def not_modified(request: Request, etag: str, mtime: float) -> bool:
    """RFC 9110: If-None-Match wins over If-Modified-Since; weak comparison for ETags."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag.removeprefix("W/") in tags
    if_modified_since = request.headers.get("if-modified-since")
    if if_modified_since:
        try:
            since = email.utils.parsedate_to_datetime(if_modified_since).timestamp()
        except (TypeError, ValueError):
            return False
        return int(mtime) <= since
    return False


def _archive_page_type(path: Path) -> str | None:
    """RFC 5005 archive pages (`archive/<n>.xml`, `archive/<n>.atom`) are feeds too."""
    if path.parent.name != "archive" or not path.stem.isdigit():
        return None
    return {".xml": MEDIA_TYPES["rss"], ".atom": MEDIA_TYPES["atom"]}.get(path.suffix)


def content_type(path: Path, accept: str) -> str:
    """Feeds carry their own types, except for a browser: it would download
    application/rss+xml, so it gets XML and renders it through the XSL stylesheet."""
    feed_type = FEED_TYPES.get(path.name) or _archive_page_type(path)
    if feed_type:
        browser = "text/html" in accept and feed_type.split(";")[0] not in accept
        xml = path.suffix in (".xml", ".atom")
        if browser and xml:
            return "application/xml; charset=utf-8"
        return feed_type + ("; charset=utf-8" if xml else "")
    return OTHER_TYPES.get(path.suffix, "application/octet-stream")


def server_config(config: Config, host: str, port: int, grace: int) -> uvicorn.Config:
    """uvicorn's settings: X-Forwarded-For believed from serve.trusted_proxies only (none:
    uvicorn would otherwise trust 127.0.0.1), and the connection guard of webguard.py."""
    import uvicorn

    proxies = list(config.serve.trusted_proxies)
    settings = uvicorn.Config(
        create_app(config),
        host=host,
        port=port,
        proxy_headers=bool(proxies),
        forwarded_allow_ips=proxies or [],
        server_header=False,
        log_level="info",
        timeout_graceful_shutdown=grace,
        **uvicorn_options(
            config.serve.max_connections_per_client,
            config.serve.header_timeout_seconds,
            proxies,
        ),
    )
    guard_logs()  # after uvicorn.Config, which (re)configures its loggers
    return settings


def serve_forever(config: Config, host: str, port: int) -> None:
    """Run the app with uvicorn until SIGTERM/SIGINT."""
    import uvicorn

    server = uvicorn.Server(server_config(config, host, port, grace=10))
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run: SIGINT is a normal stop
        server.run()
    if not server.started:
        raise SyndicateError(f"could not serve on {host}:{port}", "see the error above")


def start_in_thread(config: Config) -> Callable[[], None]:
    """For the daemon: serve in a background thread; returns the function that stops it."""
    import uvicorn

    server = uvicorn.Server(server_config(config, config.serve.host, config.serve.port, grace=5))
    thread = threading.Thread(target=server.run, name="serve", daemon=True)
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=15)

    return stop
