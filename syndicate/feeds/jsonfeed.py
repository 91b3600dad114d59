"""JSON Feed 1.1 (https://www.jsonfeed.org/version/1.1/), with the standard library."""

from __future__ import annotations

import json

from syndicate.config import Config
from syndicate.content.markup import title_text
from syndicate.content.posts import summary_text
from syndicate.feeds.plan import feed_description, feed_title, feed_url
from syndicate.models import FeedSpec, Post


def build(spec: FeedSpec, config: Config) -> bytes:
    """JSON Feed 1.1; posts in `spec` must be rendered."""
    site = config.site
    feed: dict[str, object] = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": feed_title(config, spec),
        "home_page_url": site.url,
        "feed_url": feed_url(config, spec, "json"),
        "description": feed_description(config, spec),
        "language": site.language,
    }
    if config.feeds.websub_hub:
        feed["hubs"] = [{"type": "WebSub", "url": config.feeds.websub_hub}]
    if site.author:
        feed["authors"] = [_json_author(site.author.name, site.author.email)]
    feed["items"] = [_item(post, config) for post in spec.posts]
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def _item(post: Post, config: Config) -> dict[str, object]:
    assert post.html is not None, "render posts before building feeds"
    title, summary = title_text(post.title), summary_text(post)
    item: dict[str, object] = {"id": post.id, "url": post.url, "title": title}
    if config.feeds.full_content:
        item["content_html"] = post.html
    else:
        item["content_text"] = summary or title
    if summary:
        item["summary"] = summary
    if post.image:
        item["image"] = post.image.url
    item["date_published"] = post.date.isoformat()
    if post.modified != post.date:
        item["date_modified"] = post.modified.isoformat()
    if post.author:
        item["authors"] = [_json_author(post.author.name, post.author.email)]
    terms = list(dict.fromkeys((*post.categories, *post.tags)))
    if terms:
        item["tags"] = terms
    return item


def _json_author(name: str, email: str | None) -> dict[str, str]:
    author = {"name": name}
    if email:
        author["url"] = f"mailto:{email}"
    return author
