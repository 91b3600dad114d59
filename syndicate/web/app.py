"""`syndicate serve`: the output folder over HTTP, and the subscribe, confirm and
unsubscribe endpoints (RFC 8058 one-click included). An ASGI app (Starlette) run by
uvicorn; production-grade for a small site behind a reverse proxy.

The pieces: web/requests.py reads requests, web/static.py serves files,
web/subscriptions.py changes subscriptions, web/guard.py guards connections and logs;
this module turns them into routes and pages.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

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
from syndicate.errors import ExpiredTokenError, FormError, SyndicateError, TokenError
from syndicate.models import Subscriber
from syndicate.newsletter.archive import ARCHIVE_DIR
from syndicate.newsletter.render import render_template, site_context, template_environment
from syndicate.newsletter.tokens import load_secret
from syndicate.state.store import Store
from syndicate.web.guard import PAGE_HEADERS, SecurityHeaders, guard_logs, uvicorn_options
from syndicate.web.requests import client_address, parse_fields, read_body, wants_json
from syndicate.web.static import StaticFiles, feed_links, known_topics
from syndicate.web.subscriptions import (
    SlidingWindowLimiter,
    Subscriptions,
    read_subscription,
)

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("syndicate.serve")
PAGE_TEMPLATE = "page.html.j2"
ERROR_TITLES = {
    400: "Bad request",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timeout",
    413: "Request too large",
    415: "Unsupported content type",
}


class Pages:
    """HTML pages from page.html.j2, and problems as a page or as JSON."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.env = template_environment(config)

    def page(self, title: str, message: str = "", status: int = 200, **extra: Any) -> Response:
        context = {
            "site": site_context(self.config),
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
        html = render_template(self.env, PAGE_TEMPLATE, context)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    def problem(self, request: Request, status: int, title: str, message: str) -> Response:
        if wants_json(request):
            return JSONResponse({"error": title, "detail": message}, status_code=status)
        return self.page(title, message, status)

    def invalid_link(self, request: Request, advice: str) -> Response:
        message = f"It may be incomplete or altered. {advice}"
        return self.problem(request, 400, "This link is not valid", message)


class Endpoints:
    """The routes' handlers: each reads the request, asks a service, picks the page."""

    def __init__(self, config: Config, store: Store) -> None:
        self.config = config
        self.title = config.site.title
        self.out_dir = config.output_dir.resolve()
        self.pages = Pages(config)
        self.files = StaticFiles(self.out_dir)
        self.subscriptions = Subscriptions(config, store, load_secret(config.delivery.secret_env))
        self.per_client = SlidingWindowLimiter(config.serve.subscribe_per_minute)

    async def body(self, request: Request) -> bytes:
        serve = self.config.serve
        return await read_body(request, serve.max_body_bytes, serve.header_timeout_seconds)

    async def home(self, request: Request) -> Response:
        archived = (self.out_dir / ARCHIVE_DIR / "index.html").exists()
        return self.pages.page(
            f"Subscribe to {self.title}",
            self.config.site.description,
            form=True,
            feeds=feed_links(self.config, self.out_dir),
            topics=await run_in_threadpool(known_topics, self.out_dir),
            archive_url=f"{self.config.serve.public_url}{ARCHIVE_DIR}/" if archived else None,
        )

    async def subscribe(self, request: Request) -> Response:
        retry = self.per_client.allow(client_address(request))
        if retry is not None:
            message = "Please wait a minute and try again."
            response = self.pages.problem(request, 429, "Too many requests", message)
            response.headers["Retry-After"] = str(int(retry) + 1)
            return response
        fields = parse_fields(await self.body(request), request.headers.get("content-type", ""))
        try:
            wanted = read_subscription(fields, self.config.subscribers.allow_special_domains)
        except FormError as exc:
            return self.pages.problem(request, 400, exc.title, exc.message)
        # The same answer whatever the address's state, and the email goes out after the
        # response, so neither the text nor the timing tells who is subscribed.
        task = BackgroundTask(self.subscriptions.request, wanted)
        if wants_json(request):
            return JSONResponse({"status": "confirmation-sent"}, status_code=202, background=task)
        response = self.pages.page(
            "Check your inbox",
            f"If {wanted.address} can subscribe, a confirmation link is on its way to it. "
            "Click it to start receiving the newsletter.",
            202,
        )
        response.background = task
        return response

    async def confirm(self, request: Request) -> Response:
        """GET (and HEAD) show a button, only its POST confirms: link scanners follow GETs.
        Only a pending subscriber moves to active, and only with a link made for the
        current pending state (see tokens.py)."""
        token = request.query_params.get("token", "")
        found = await self._subscriber(request, token, "confirm")
        if not isinstance(found, Subscriber):
            return found
        if request.method != "POST":
            return self.pages.page(
                "Confirm your subscription?",
                f"Send the newsletter of {self.title} to {found.email}?",
                confirm_action=f"confirm?token={token}",
            )
        await self.body(request)
        if not await run_in_threadpool(self.subscriptions.confirm, found):
            # Its state changed between the check and now (a second click, an unsubscribe).
            return self.pages.invalid_link(request, "Subscribe again for a new link.")
        return self.pages.page(
            "Subscription confirmed",
            f"Thank you! The newsletter of {self.title} will come to {found.email}.",
        )

    async def unsubscribe(self, request: Request) -> Response:
        token = request.query_params.get("token", "")
        found = await self._subscriber(request, token, "unsubscribe")
        if not isinstance(found, Subscriber):
            return found
        if request.method == "GET":
            # A GET must not unsubscribe: link scanners and previews follow GETs.
            return self.pages.page(
                "Unsubscribe?",
                f"Stop sending the newsletter of {self.title} to this address?",
                unsubscribe_action=f"unsubscribe?token={token}",
            )
        await self.body(request)  # "List-Unsubscribe=One-Click" (RFC 8058) or the button
        await run_in_threadpool(self.subscriptions.unsubscribe, found)
        return self.pages.page(
            "You are unsubscribed", "You will get no more newsletters. Sorry to see you go."
        )

    async def _subscriber(
        self, request: Request, token: str, purpose: str
    ) -> Subscriber | Response:
        """The link's subscriber, or the page that says why the link does not work."""
        try:
            return await run_in_threadpool(self.subscriptions.subscriber_for, token, purpose)
        except ExpiredTokenError:
            return self.pages.problem(
                request,
                400,
                "This link has expired",
                "Confirmation links work for 7 days. Please subscribe again for a new one.",
            )
        except TokenError:
            if purpose != "confirm":
                return self.pages.invalid_link(request, "Use the link in your latest email.")
            return self.pages.invalid_link(
                request,
                "A confirmation link works once, and not after an unsubscribe: "
                "subscribe again for a new one.",
            )

    async def static(self, request: Request) -> Response:
        relative = request.path_params.get("path", "")
        response = await self.files.respond(request, relative)
        if response is None:
            return self.pages.problem(
                request, 404, "Not found", f"There is nothing at /{relative}."
            )
        return response

    async def http_error(self, request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        title = ERROR_TITLES.get(exc.status_code, "Error")
        return self.pages.problem(request, exc.status_code, title, str(exc.detail))

    async def server_error(self, request: Request, exc: Exception) -> Response:
        log.exception("error serving %s", request.url.path)
        message = "The error was logged. Please try again later."
        return self.pages.problem(request, 500, "Something went wrong", message)


def create_app(config: Config, store: Store | None = None) -> Starlette:
    """The ASGI app. Needs SYNDICATE_SECRET (tokens) like `send` does."""
    endpoints = Endpoints(config, store or Store(config.state_url))
    routes = [
        Route("/", endpoints.home, methods=["GET", "HEAD"]),
        Route("/subscribe", endpoints.home, methods=["GET", "HEAD"]),
        Route("/subscribe", endpoints.subscribe, methods=["POST"]),
        Route("/confirm", endpoints.confirm, methods=["GET", "HEAD", "POST"]),
        Route("/unsubscribe", endpoints.unsubscribe, methods=["GET", "POST"]),
        Route("/{path:path}", endpoints.static, methods=["GET", "HEAD"]),
    ]
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: endpoints.http_error,
        Exception: endpoints.server_error,
    }
    return Starlette(
        routes=routes,
        middleware=[Middleware(SecurityHeaders), Middleware(GZipMiddleware, minimum_size=500)],
        exception_handlers=handlers,
    )


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
