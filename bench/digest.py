"""Time planning and rendering one newsletter digest (by hand, not in tests).

    .venv/bin/python bench/digest.py [--posts 10] [--runs 50]

Plans a digest of N generated posts and renders it (Jinja -> MJML -> HTML with CSS
inlined, plus the text part), reporting the median and best of several runs, the HTML
size, and the cost of the first render (template compilation included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syndicate.config import parse_config  # noqa: E402 - after the path tweak
from syndicate.content.frontmatter import parse_post  # noqa: E402
from syndicate.content.posts import published, render_post  # noqa: E402
from syndicate.newsletter.plan import plan_digest  # noqa: E402
from syndicate.newsletter.render import render_digest  # noqa: E402

CONFIG = """\
site: {title: "Bench Blog", url: "https://bench.syndicate.test/", timezone: Europe/Paris}
newsletter: {max_posts: 50, postal_address: "1 Bench Road"}
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="syndicate-digest-bench-"))
    config = parse_config(CONFIG, folder / "config.yaml")
    now = datetime(2025, 9, 1, tzinfo=UTC)
    body = "\n\n".join(
        f"Paragraph {n} of a realistic post, with **bold**, a [link](../other/) and more words "
        "to make it the length of a real blog post paragraph."
        for n in range(12)
    )
    posts = []
    for n in range(args.posts):
        text = (
            f"---\ntitle: 'Post number {n}: a title of ordinary length'\n"
            f"description: 'A one-sentence summary of post {n}, as authors write them.'\n"
            f"date: {(now - timedelta(hours=n + 1)).isoformat()}\n"
            f"image: {{url: /images/{n}.png, alt: 'Picture {n}'}}\ntags: [bench]\n---\n{body}\n"
        )
        post, _ = parse_post(text.encode(), f"posts/{n}.md", config)
        posts.append(render_post(post))
    ready = published(posts, now)
    start = time.perf_counter()
    digest = plan_digest(ready, {}, config, now, None)
    assert digest is not None
    first = render_digest(digest, config)
    cold_ms = (time.perf_counter() - start) * 1000
    timings = []
    for _ in range(args.runs):
        start = time.perf_counter()
        digest = plan_digest(ready, {}, config, now, None)
        assert digest is not None
        render_digest(digest, config)
        timings.append((time.perf_counter() - start) * 1000)
    print(
        f"digest of {len(digest.posts)} posts: plan + render median "
        f"{statistics.median(timings):.1f} ms, "
        f"best {min(timings):.1f} ms over {args.runs} runs; first (templates compiled) "
        f"{cold_ms:.1f} ms; HTML {len(first.html.encode()):,} bytes, text {len(first.text):,} chars"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
