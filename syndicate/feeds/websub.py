"""WebSub: tell the hub which feeds changed, so subscribers hear of a post in seconds."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable


def ping_hub(hub: str, feed_urls: Iterable[str], timeout: float = 10.0) -> list[str]:
    """POST hub.mode=publish for each feed URL; return one message per failure.

    A hub that is down must never fail a run: the feeds are already written and readers
    that poll will still see them, so failures are only reported (stderr, daemon log).
    """
    failures = []
    urls = list(feed_urls)
    for url in urls:
        body = urllib.parse.urlencode({"hub.mode": "publish", "hub.url": url}).encode()
        request = urllib.request.Request(  # noqa: S310 - hub comes from config and is http(s)
            hub,
            data=body,
            method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (urllib.error.URLError, OSError, ValueError) as exc:
            # The hub itself is down: one line, not one per feed.
            reason = getattr(exc, "reason", exc)
            failures.append(
                f"WebSub hub {hub} unreachable ({reason}); {len(urls)} feeds not announced"
            )
            break
        if not 200 <= status < 300:
            failures.append(f"WebSub hub {hub} answered {status} for {url}")
    return failures
