#!/usr/bin/env python3
"""Generate a synthetic, realistic Markdown blog corpus for benchmarking syndicate.

    python bench/generate.py OUT_DIR --posts N [--seed S] [--profile tag-rich|classic] [--force]

Two profiles. `tag-rich` (the default, what real blogs look like): posts of 3-9 KB,
150 tags Zipf-weighted (3-8 per post), 10 categories shared by the three dialects, so
about 160 feeds. `classic` (the first generator, kept so older figures can be
reproduced): posts of 4-8 KB, 60 tags (2-6 per post), per-dialect category names.
Sizes are UTF-8 bytes, front matter included. The front-matter dialects real blogs use:

  ~50% Astro   YAML: title, description, pubDate: 2025-07-07, author, category,
               tags as a block list, image: {url, alt}     -> astro/<section>/<slug>.md
  ~40% Jekyll  YAML: layout, title, date (plain or "10:00:00 +0200"), categories: blog,
               tags: [A, B], keywords: [...]               -> _posts/<topic>/YYYY-MM-DD-slug.md
  ~10% Hugo    TOML (+++): title, date = RFC 3339, tags = [...], draft = false
                                                           -> content/posts/<slug>.md

Bodies have ##/### headings, prose paragraphs built from a word list, bullet and
numbered lists, **bold**/_italic_/`code`, absolute and relative links, and sometimes an
image, a fenced code block, a table or a blockquote. About 1% of titles repeat an
earlier title on purpose (syndicate must de-duplicate the slugs). Astro posts often
spell tags lower-case-hyphen (they slug to the same feed); dates span 2015-2025.

Deterministic: the same --posts and --seed give byte-identical files, and the corpus for
N posts is a prefix of the corpus for M > N posts (each post has its own generator,
seeded from one random.Random(seed) stream), per profile. Standard library only, no network.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

GENERATOR_VERSION = 1
MARKER = ".bench-corpus.json"  # hidden: syndicate skips dot-files

# --- vocabulary ------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    return text.split()


def _words_by_line(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


NOUNS = _words("""
system service request response cache database index query schema migration release
deployment pipeline build test suite feature flag team engineer user customer reader
editor post article draft feed library framework module package function class method
interface contract boundary model pattern design decision trade-off constraint budget
latency throughput memory process thread queue worker scheduler event message stream
log metric trace dashboard alert incident outage review retrospective roadmap sprint
estimate backlog ticket bug regression benchmark profile bottleneck hot-path allocation
container cluster node region network packet socket protocol header payload token
secret key certificate policy permission role account session cookie page template
component layout style theme font image asset bundle compiler parser tokenizer grammar
syntax type value variable constant loop branch condition error exception warning
diagnostic message format encoding character string byte buffer file folder path
archive backup snapshot replica shard partition transaction lock conflict merge commit
branch repository changelog documentation tutorial guide example experiment hypothesis
result conclusion question answer habit workflow checklist notebook terminal editor
keyboard shortcut command option argument default setting configuration environment
""")

ADJECTIVES = _words("""
small large fast slow simple complex reliable fragile modern legacy distributed local
remote shared private public explicit implicit careful pragmatic robust elegant clumsy
obvious subtle hidden visible stable flaky noisy quiet expensive cheap lazy eager
incremental atomic idempotent deterministic concurrent parallel sequential readable
maintainable testable portable secure naive clever boring predictable surprising
practical theoretical common rare early late first final previous next new old
typical unusual minimal generous strict lenient static dynamic synchronous asynchronous
""")

VERBS = _words("""
improves breaks simplifies complicates reveals hides replaces extends reduces increases
measures tracks caches validates parses renders serialises compresses schedules retries
handles ignores exposes documents explains tests deploys migrates refactors splits merges
shapes limits protects slows speeds accelerates stabilises clarifies changes
""")

ADVERBS = _words("""
quickly slowly carefully rarely often usually quietly clearly surprisingly eventually
immediately gradually consistently occasionally reliably deliberately
""")

PREPOSITIONS = _words("in on with without under over behind beyond across through for from into")

CONNECTIVES = [
    "However,",
    "In practice,",
    "As a result,",
    "On the other hand,",
    "For example,",
    "In our experience,",
    "Surprisingly,",
    "Of course,",
    "To be fair,",
    "In short,",
    "Meanwhile,",
    "Later,",
    "Still,",
    "Fortunately,",
    "Unfortunately,",
]

# Words with non-ASCII letters and typographic punctuation, as real posts have.
FLAVOUR = ["café", "naïve", "façade", "résumé", "coördinate", "über-fast", "jalapeño", "Zürich"]

TECH = [
    "Python",
    "Rust",
    "Go",
    "TypeScript",
    "PostgreSQL",
    "SQLite",
    "Redis",
    "Kafka",
    "Kubernetes",
    "Docker",
    "Nginx",
    "GraphQL",
    "React",
    "Svelte",
    "Django",
    "Flask",
    "FastAPI",
    "Terraform",
    "Ansible",
    "WebAssembly",
    "Linux",
    "systemd",
    "Git",
    "Vim",
]

# 60 tags. Jekyll/Hugo posts use them as written; Astro posts often use a lower-case,
# hyphenated spelling, which slugifies to the same per-tag feed.
TAG_POOL = [
    "Python",
    "Rust",
    "Go",
    "JavaScript",
    "TypeScript",
    "Web Development",
    "CSS",
    "HTML",
    "Databases",
    "PostgreSQL",
    "SQLite",
    "Performance",
    "Testing",
    "DevOps",
    "Kubernetes",
    "Docker",
    "Cloud",
    "AWS",
    "Security",
    "Privacy",
    "Machine Learning",
    "Data Science",
    "Artificial Intelligence",
    "LLMs",
    "Open Source",
    "Career",
    "Productivity",
    "Writing",
    "Tutorial",
    "Architecture",
    "Distributed Systems",
    "Networking",
    "Linux",
    "Command Line",
    "Git",
    "Vim",
    "Emacs",
    "Functional Programming",
    "Compilers",
    "Type Systems",
    "Concurrency",
    "Observability",
    "Monitoring",
    "Accessibility",
    "Design",
    "UX",
    "Mobile",
    "iOS",
    "Android",
    "Game Development",
    "Hardware",
    "Raspberry Pi",
    "IoT",
    "Blogging",
    "RSS",
    "Static Sites",
    "Markdown",
    "Book Review",
    "Conference",
    "Year in Review",
]
assert len(TAG_POOL) == 60

ASTRO_SECTIONS = ["blog", "notes", "guides", "reviews"]
ASTRO_CATEGORIES = [
    "Engineering",
    "Tutorials",
    "Opinion",
    "News",
    "Tools & Workflow",
    "Career",
    "Reviews",
    "Future Tech & AI",
]
JEKYLL_CATEGORIES = ["blog", "engineering", "til", "news", "howto", "personal"]
HUGO_CATEGORIES = ["Articles", "Notes", "Talks"]

# The tag-rich profile: 90 more tags (letters, digits and spaces only, so every tool slugs
# them alike), ranked after the 60 above, and one set of 10 categories for all dialects.
MORE_TAGS = _words_by_line("""
Java
Kotlin
Swift
Ruby
Elixir
Haskell
OCaml
Zig
Lua
PHP
Scala
Clojure
Julia
Bash
Django
Flask
FastAPI
React
Vue
Svelte
Angular
Node
Deno
WebAssembly
GraphQL
REST APIs
gRPC
Redis
Kafka
MongoDB
Elasticsearch
ClickHouse
Terraform
Ansible
Nix
systemd
Nginx
Caddy
Serverless
Edge Computing
CDN
Caching
Search
Indexing
Migrations
Refactoring
Code Review
Pair Programming
Debugging
Profiling
Benchmarks
Memory Management
Garbage Collection
Async
Threads
Queues
Event Sourcing
Microservices
Monoliths
API Design
Documentation
Technical Writing
Mentoring
Hiring
Remote Work
Management
Leadership
Startups
Freelancing
Burnout
Open Data
Statistics
Visualization
Notebooks
Embeddings
Vector Databases
Fine Tuning
Prompt Engineering
Computer Vision
Robotics
Embedded
Electronics
Keyboards
Home Lab
Self Hosting
Email
Newsletters
Podcasts
Typography
Photography
""")
RICH_TAGS = TAG_POOL + MORE_TAGS
assert len(RICH_TAGS) == 150
RICH_CATEGORIES = [
    "Engineering",
    "Tutorials",
    "Opinion",
    "News",
    "Tools",
    "Career",
    "Reviews",
    "Notes",
    "Talks",
    "Research",
]


@dataclass(frozen=True, slots=True)
class Profile:
    """What a corpus looks like: post sizes, the tag pool and its skew, the categories."""

    name: str
    min_bytes: int
    max_bytes: int
    tags: tuple[str, ...]
    tag_exponent: float  # weight of the tag of rank r is 1 / r**exponent (Zipf: 1)
    tags_per_post: tuple[int, int]
    categories: tuple[str, ...] | None  # None: each dialect has its own names (classic)


PROFILES = {
    "tag-rich": Profile(
        "tag-rich", 3072, 9216, tuple(RICH_TAGS), 1.0, (3, 8), tuple(RICH_CATEGORIES)
    ),
    "classic": Profile("classic", 4096, 8192, tuple(TAG_POOL), 0.8, (2, 6), None),
}
DEFAULT_PROFILE = "tag-rich"
AUTHORS = [
    "Ada Byron",
    "Grace Hopper",
    "Linus Pauling",
    "Margaret Hamilton",
    "Ken Thompson",
    "Barbara Liskov",
    "Edsger Dijkstra",
    "Radia Perlman",
    "Donald Knuth",
    "Frances Allen",
    "TechBrew Daily",
    "rkoots Bot",
    "The Editorial Team",
]
LINK_TARGETS = [
    "https://docs.python.org/3/library/functools.html",
    "https://developer.mozilla.org/en-US/docs/Web/HTTP/Caching",
    "https://www.rfc-editor.org/rfc/rfc4287",
    "https://www.jsonfeed.org/version/1.1/",
    "https://en.wikipedia.org/wiki/Amdahl%27s_law",
    "https://github.com/example/project/issues/42",
    "https://martinfowler.com/articles/feature-toggles.html",
    "https://www.postgresql.org/docs/current/indexes.html",
    "https://blog.example.org/2021/03/on-caching/?utm_source=rss&utm_medium=feed",
    "https://news.ycombinator.com/item?id=123456",
]

TITLE_TEMPLATES = [
    "How We {verb_base} Our {Noun} with {Tech}",
    "{n} Lessons from {Gerund} {a_Adj} {Noun}",
    "A Practical Guide to {Adj} {Noun}s in {Tech}",
    "Why Your {Noun} Is {Adj} (and What to Do About It)",
    "{Tech} {Noun}s: {Adj}, {Adj2} and Worth It",
    "Notes on {Gerund} {Noun}s",
    "The {Adj} {Noun}: {A_year} Retrospective",
    "{Gerund} {Tech} Without Losing Your Mind",
    "What I Learned {Gerund} {n} {Noun}s",
    "Understanding the {Noun} {Noun2} in {Tech}",
    "From {Adj} to {Adj2}: Our {Noun} Story",
    "Is the {Adj} {Noun} Dead?",
    "Building {a_Adj} {Noun} in {n} Lines of {Tech}",
    "{Tech} vs {Tech2}: Choosing {a_Noun} Layer",
    "Debugging {a_Adj} {Noun} {Noun2}",
    "TIL: {Tech} {Noun}s Are {Adj}",
    "Don't {verb_base} the {Noun} — {verb_base2} the {Noun2}",
]

GERUNDS = [
    "Building",
    "Debugging",
    "Scaling",
    "Testing",
    "Shipping",
    "Migrating",
    "Refactoring",
    "Profiling",
    "Caching",
    "Designing",
    "Maintaining",
    "Deploying",
    "Measuring",
    "Writing",
]
VERB_BASES = [
    "Rebuilt",
    "Simplified",
    "Tested",
    "Scaled",
    "Shipped",
    "Profiled",
    "Cached",
    "Migrated",
    "Split",
    "Replaced",
    "Rewrote",
    "Measure",
    "Document",
    "Cache",
    "Test",
]


# --- text helpers ----------------------------------------------------------------------


def cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def a(phrase: str) -> str:
    """The phrase with its indefinite article."""
    return ("an " if phrase[:1].lower() in "aeiou" else "a ") + phrase


def plain(markdown: str) -> str:
    """Inline Markdown reduced to text, for front-matter descriptions."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", markdown)
    return re.sub(r"\*\*|(?<!\w)_|_(?!\w)|`", "", text)


def slugify(text: str) -> str:
    text = text.lower().replace("'", "").replace("’", "")
    text = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    return text[:70].rstrip("-") or "post"


assert len({slugify(t) for t in RICH_TAGS}) == len(RICH_TAGS)  # 150 distinct feeds


def quoted(text: str) -> str:
    """A double-quoted string that is valid YAML and TOML (JSON escapes)."""
    return json.dumps(text, ensure_ascii=False)


class Writer:
    """Prose and Markdown blocks from one post's own random generator."""

    def __init__(self, rng: random.Random, slugs: list[str]) -> None:
        self.rng = rng
        self.slugs = slugs  # earlier posts' slugs, for relative links

    def noun_phrase(self) -> str:
        r = self.rng
        roll = r.random()
        if roll < 0.45:
            return f"the {r.choice(ADJECTIVES)} {r.choice(NOUNS)}"
        if roll < 0.7:
            return a(f"{r.choice(NOUNS)} {r.choice(NOUNS)}")
        if roll < 0.85:
            return f"every {r.choice(NOUNS)}"
        return f"{r.choice(TECH)}'s {r.choice(NOUNS)}"

    def inline(self, phrase: str) -> str:
        """Sometimes decorate a phrase with emphasis, code or a link."""
        r = self.rng
        roll = r.random()
        if roll < 0.06:
            return f"**{phrase}**"
        if roll < 0.11:
            return f"_{phrase}_"
        if roll < 0.14:
            return f"`{phrase.split()[-1]}`"
        if roll < 0.17:
            return f"[{phrase}]({r.choice(LINK_TARGETS)})"
        if roll < 0.20 and self.slugs:
            target = r.choice(self.slugs)
            form = r.random()
            href = (
                f"../{target}/"
                if form < 0.6
                else (f"/posts/{target}/" if form < 0.85 else f"{target}/")
            )
            return f"[{phrase}]({href})"
        return phrase

    def sentence(self) -> str:
        r = self.rng
        subject = self.inline(self.noun_phrase())
        obj = self.inline(self.noun_phrase())
        parts = [subject, r.choice(VERBS), obj]
        if r.random() < 0.5:
            parts += [r.choice(PREPOSITIONS), self.inline(self.noun_phrase())]
        if r.random() < 0.25:
            parts.insert(2, r.choice(ADVERBS))
        if r.random() < 0.12:
            parts.append(f"— {a(r.choice(FLAVOUR))} detail")
        text = " ".join(parts)
        roll = r.random()
        if roll < 0.2:
            text = f"{r.choice(CONNECTIVES)} {text}"
        elif roll < 0.27:
            text = f'As one {r.choice(NOUNS)} put it, "{text}"'
        elif roll < 0.32:
            text = f"We didn't expect that {text}"
        elif roll < 0.35:
            text = f"{text} -- at least in {r.choice(TECH)}"
        text = cap(text)
        end = "?" if r.random() < 0.06 else ("..." if r.random() < 0.02 else ".")
        return text + end

    def paragraph(self, lo: int = 3, hi: int = 6) -> str:
        return " ".join(self.sentence() for _ in range(self.rng.randint(lo, hi)))

    def heading(self, level: int) -> str:
        r = self.rng
        forms = [
            lambda: f"{r.choice(GERUNDS)} the {r.choice(NOUNS)}",
            lambda: f"Why {r.choice(ADJECTIVES)} {r.choice(NOUNS)}s matter",
            lambda: f"The {r.choice(NOUNS)} {r.choice(NOUNS)}",
            lambda: f"{r.choice(TECH)} and the {r.choice(ADJECTIVES)} {r.choice(NOUNS)}",
            lambda: f"What about {r.choice(NOUNS)}s?",
            lambda: f"Step {r.randint(1, 9)}: {r.choice(GERUNDS).lower()} the {r.choice(NOUNS)}",
        ]
        return "#" * level + " " + cap(r.choice(forms)())

    def bullets(self) -> str:
        r = self.rng
        numbered = r.random() < 0.3
        marker = r.choice("*-")
        items = []
        for i in range(r.randint(3, 6)):
            text = self.sentence()
            if r.random() < 0.4:
                lead = cap(f"{r.choice(ADJECTIVES)} {r.choice(NOUNS)}")
                text = f"**{lead}:** {text}"
            items.append(f"{i + 1}. {text}" if numbered else f"{marker} {text}")
        return "\n".join(items)

    def code(self) -> str:
        r = self.rng
        name, noun = r.choice(NOUNS).replace("-", "_"), r.choice(NOUNS).replace("-", "_")
        samples = {
            "python": (
                f"def {name}_{noun}(items, limit={r.randint(2, 100)}):\n"
                f'    """Return the first {name}s, newest first."""\n'
                f"    ordered = sorted(items, key=lambda x: x.date, reverse=True)\n"
                f"    return [x for x in ordered if x.{noun} is not None][:limit]\n"
            ),
            "bash": (
                f"$ {r.choice(['git', 'docker', 'kubectl', 'make'])} {name} "
                f"--{noun} {r.randint(1, 99)}\n"
                f"$ curl -s https://api.example.com/v1/{name}s | jq '.[] | .{noun}'\n"
            ),
            "javascript": (
                f"const {name} = await fetch(`/api/{noun}s?limit=${{n}}`);\n"
                f"if (!{name}.ok) throw new Error('{noun} failed: ' + {name}.status);\n"
                f"export default {name}.json();\n"
            ),
            "yaml": (
                f"{name}:\n  {noun}: {r.randint(1, 500)}\n  enabled: true\n"
                f"  tags: [{r.choice(TAG_POOL).lower()}, {r.choice(TAG_POOL).lower()}]\n"
            ),
            "rust": (
                f"fn {name}(input: &[u8]) -> Result<usize, Error> {{\n"
                f"    let {noun} = input.iter().filter(|b| **b == b'<').count();\n"
                f"    Ok({noun})\n}}\n"
            ),
        }
        lang = r.choice(sorted(samples))
        fence = "```" if r.random() < 0.85 else "~~~"
        return f"{fence}{lang}\n{samples[lang]}{fence}"

    def table(self) -> str:
        r = self.rng
        cols = r.sample(["Option", "Default", "Latency (ms)", "Notes", "Version", "Cost"], 3)
        rows = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        for _ in range(r.randint(3, 5)):
            cells = [
                f"`{r.choice(NOUNS)}`",
                str(r.randint(1, 999)),
                f"{r.choice(ADJECTIVES)} {r.choice(NOUNS)}",
            ]
            rows.append("| " + " | ".join(cells) + " |")
        return "\n".join(rows)

    def image(self) -> str:
        r = self.rng
        ext = r.choice(["png", "png", "jpg", "svg", "webp"])
        alt = "" if r.random() < 0.1 else f"Diagram of the {r.choice(ADJECTIVES)} {r.choice(NOUNS)}"
        src = (
            f"/images/{r.randint(1, 400)}.{ext}"
            if r.random() < 0.8
            else f"images/fig-{r.randint(1, 9)}.{ext}"
        )
        return f"![{alt}]({src})"

    def quote(self) -> str:
        return "> " + self.sentence() + "\n> " + self.sentence()

    def block(self) -> str:
        roll = self.rng.random()
        if roll < 0.55:
            return self.paragraph()
        if roll < 0.72:
            return self.bullets()
        if roll < 0.79:
            return self.code()
        if roll < 0.84:
            return self.table()
        if roll < 0.90:
            return self.image()
        if roll < 0.95:
            return self.quote()
        return self.heading(3)

    def body(self, budget: int) -> str:
        """Markdown blocks until the body is about `budget` UTF-8 bytes."""
        r = self.rng
        blocks = [self.paragraph(2, 4)]
        size = len(blocks[0].encode())
        while size < budget:
            new = [self.heading(2)] if r.random() < 0.25 or len(blocks) < 2 else []
            new.append(self.block())
            blocks += new
            size += sum(len(b.encode()) + 2 for b in new)
        return "\n\n".join(blocks) + "\n"


# --- posts -----------------------------------------------------------------------------


class Corpus:
    def __init__(self, seed: int, profile: Profile = PROFILES[DEFAULT_PROFILE]) -> None:
        self.profile = profile
        self.master = random.Random(seed)  # noqa: S311 - test data, not secrets
        self.titles: list[str] = []
        self.title_set: set[str] = set()
        self.slugs: list[str] = []
        self.paths: set[str] = set()
        self.duplicates = 0

    def title(self, rng: random.Random) -> str:
        if self.titles and rng.random() < 0.01:
            self.duplicates += 1
            return rng.choice(self.titles)  # on purpose: same title, same slug
        for attempt in range(50):
            tech, tech2 = rng.sample(TECH, 2)
            adj, adj2 = rng.sample(ADJECTIVES, 2)
            noun, noun2 = rng.sample(NOUNS, 2)
            verb, verb2 = rng.sample(VERB_BASES, 2)
            title = rng.choice(TITLE_TEMPLATES).format(
                Tech=tech,
                Tech2=tech2,
                Adj=cap(adj),
                Adj2=adj2,
                Noun=cap(noun),
                Noun2=cap(noun2),
                verb_base=verb,
                verb_base2=verb2,
                Gerund=rng.choice(GERUNDS),
                n=rng.randint(3, 12),
                a_Adj=a(cap(adj)),
                a_Noun=a(cap(noun)),
                A_year=f"A {rng.randint(2015, 2025)}",
            )
            if attempt > 40:
                title += f" (Part {rng.randint(2, 9)})"
            if title not in self.title_set:
                return title
        raise RuntimeError("could not find a unique title")

    def tags(self, rng: random.Random) -> list[str]:
        # Zipf: a few tags are very common, every tag is used by some posts.
        pool, exponent = self.profile.tags, self.profile.tag_exponent
        weights = [1 / (i + 1) ** exponent for i in range(len(pool))]
        lo, hi = self.profile.tags_per_post
        chosen: list[str] = []
        while len(chosen) < rng.randint(lo, hi):  # a new bound each turn, as in classic
            tag = rng.choices(pool, weights)[0]
            if tag not in chosen:
                chosen.append(tag)
        return chosen

    def unique_path(self, path: str) -> str:
        stem, dot, ext = path.rpartition(".")
        candidate, n = path, 2
        while candidate in self.paths:
            candidate, n = f"{stem}-{n}{dot}{ext}", n + 1
        self.paths.add(candidate)
        return candidate

    def category(self, rng: random.Random, own: list[str]) -> str:
        """A category: the profile's shared set, or the dialect's own names (classic)."""
        return rng.choice(self.profile.categories or own)

    def post(self, day: date | None = None) -> tuple[str, str]:
        """-> (relative path, file text) for the next post (dated `day` if given)."""
        rng = random.Random(self.master.getrandbits(64))  # noqa: S311
        title = self.title(rng)
        slug = slugify(title)
        drawn = date(2015, 1, 1) + timedelta(
            days=rng.randrange((date(2025, 12, 31) - date(2015, 1, 1)).days + 1)
        )
        day = day or drawn
        tags = self.tags(rng)
        min_bytes, max_bytes = self.profile.min_bytes, self.profile.max_bytes
        target = rng.randint(min_bytes + 150, max_bytes - 700)
        writer = Writer(rng, self.slugs[-500:])
        roll = rng.random()
        if roll < 0.5:
            front, path = self.astro(rng, title, slug, day, tags)
        elif roll < 0.9:
            front, path = self.jekyll(rng, title, slug, day, tags)
        else:
            front, path = self.hugo(rng, title, slug, day, tags)
        budget = target - len(front.encode())
        text = front + "\n" + writer.body(budget)
        while len(text.encode()) > max_bytes:  # rare: trim whole trailing blocks
            text = text[: text.rstrip().rfind("\n\n")].rstrip() + "\n"
        while len(text.encode()) < min_bytes:
            text += "\n" + writer.paragraph(1, 2) + "\n"
        if len(text.encode()) > max_bytes:
            text = text.encode()[: max_bytes - 1].decode(errors="ignore").rsplit(" ", 1)[0] + ".\n"
        if title not in self.title_set:
            self.title_set.add(title)
            self.titles.append(title)
        self.slugs.append(slug)
        return self.unique_path(path), text

    def astro(
        self, rng: random.Random, title: str, slug: str, day: date, tags: list[str]
    ) -> tuple[str, str]:
        shown = [t.lower().replace(" ", "-") if rng.random() < 0.5 else t for t in tags]
        desc = plain(Writer(rng, []).sentence())
        lines = [
            "---",
            f"title: {quoted(title)}",
            f"description: {quoted(desc)}",
            f"pubDate: {day.isoformat()}",
        ]
        if rng.random() < 0.15:
            lines.append(f"updatedDate: {(day + timedelta(days=rng.randint(1, 200))).isoformat()}")
        lines += [
            f"author: {quoted(rng.choice(AUTHORS))}",
            f"category: {quoted(self.category(rng, ASTRO_CATEGORIES))}",
            "tags:",
            *(f"  - {quoted(t)}" for t in shown),
        ]
        if rng.random() < 0.85:
            ext = rng.choice(["svg", "png", "jpg"])
            lines += [
                "image:",
                f"  url: {quoted(f'/images/blog-placeholder-{rng.randint(1, 6)}.{ext}')}",
                f"  alt: {quoted('Featured image for ' + title)}",
            ]
        lines.append("---")
        return "\n".join(lines) + "\n", f"astro/{rng.choice(ASTRO_SECTIONS)}/{slug}.md"

    def jekyll(
        self, rng: random.Random, title: str, slug: str, day: date, tags: list[str]
    ) -> tuple[str, str]:
        if rng.random() < 0.5:
            when = day.isoformat()
        else:
            offset = rng.choice(["+0000", "+0200", "-0500", "+0530", "+0100"])
            clock = f"{rng.randint(6, 22):02d}:{rng.choice(['00', '15', '30', '45'])}:00"
            when = f"{day.isoformat()} {clock} {offset}"
        keywords = [
            f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)}" for _ in range(rng.randint(3, 7))
        ]
        lines = [
            "---",
            f"layout: {rng.choice(['post', 'post', 'default'])}",
            f"title: {quoted(title)}",
            f"date: {when}",
            f"categories: {slugify(self.category(rng, JEKYLL_CATEGORIES))}",
            f"author: {quoted(rng.choice(AUTHORS))}",
            f"tags: [{', '.join(tags)}]",
            f"keywords: [{', '.join(keywords)}]",
        ]
        if rng.random() < 0.3:
            lines.append(f"excerpt: {quoted(plain(Writer(rng, []).sentence()))}")
        lines.append("---")
        topic = rng.choice(JEKYLL_CATEGORIES[:4])
        return "\n".join(lines) + "\n", f"_posts/{topic}/{day.isoformat()}-{slug}.md"

    def hugo(
        self, rng: random.Random, title: str, slug: str, day: date, tags: list[str]
    ) -> tuple[str, str]:
        offset = rng.choice([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-7))])
        when = datetime(
            day.year, day.month, day.day, rng.randint(6, 22), rng.choice([0, 30]), tzinfo=offset
        )
        stamp = when.isoformat().replace("+00:00", "Z")
        lines = [
            "+++",
            f"title = {quoted(title)}",
            f"date = {stamp}",
            f"description = {quoted(plain(Writer(rng, []).sentence()))}",
            f"tags = [{', '.join(quoted(t.lower()) for t in tags)}]",
            f"categories = [{quoted(self.category(rng, HUGO_CATEGORIES))}]",
            "draft = false",
            "+++",
        ]
        return "\n".join(lines) + "\n", f"content/posts/{slug}.md"


def generate(
    out: Path, posts: int, seed: int, profile: str = DEFAULT_PROFILE
) -> dict[str, int | str]:
    corpus = Corpus(seed, PROFILES[profile])
    total = 0
    for _ in range(posts):
        rel, text = corpus.post()
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = text.encode("utf-8")
        path.write_bytes(data)
        total += len(data)
    info: dict[str, int | str] = {
        "generator_version": GENERATOR_VERSION,
        "profile": profile,
        "posts": posts,
        "seed": seed,
        "bytes": total,
        "duplicate_titles": corpus.duplicates,
    }
    (out / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return info


def read_marker(out: Path) -> dict[str, object] | None:
    try:
        info = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict):
        return None
    info.setdefault("profile", "classic")  # written before profiles existed
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--posts", type=int, required=True, help="number of posts to write")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=DEFAULT_PROFILE,
        help=f"what the corpus looks like (default {DEFAULT_PROFILE}; see the module docstring)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace OUT_DIR if it holds an earlier generated corpus",
    )
    args = parser.parse_args(argv)
    if args.posts < 1:
        parser.error("--posts must be at least 1")
    out: Path = args.out_dir
    if out.exists() and any(out.iterdir()):
        if not (args.force and read_marker(out) is not None):
            print(
                f"generate.py: {out} is not empty (use --force to replace a generated corpus)",
                file=sys.stderr,
            )
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    info = generate(out, args.posts, args.seed, args.profile)
    print(
        f"wrote {info['posts']} {args.profile} posts ({int(info['bytes']) / 2**20:.1f} MiB, "
        f"{info['duplicate_titles']} duplicate titles, seed {info['seed']}) to {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
