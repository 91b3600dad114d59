"""Headless Chromium (Debian's `chromium`) for checking rendered email as a reader sees it.

No driver library: the page gets a small script that measures what we assert on and
writes it into the DOM as JSON; `--dump-dom` returns it. Screenshots use `--screenshot`.
"""

from __future__ import annotations

import html as html_lib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
    "--run-all-compositor-stages-before-draw",
]

# Headless Chromium will not make a window narrower than 500 px, so the email is laid out
# in an iframe of the exact width; srcdoc keeps it same-origin so the probe can look in.
WRAPPER = """<!doctype html>
<html><head><meta charset="utf-8"></head><body style="margin:0">
<iframe id="frame" style="border:0;width:%(width)dpx;height:1200px" srcdoc="%(srcdoc)s"></iframe>
<script>
document.getElementById("frame").addEventListener("load", function () {
  var doc = this.contentDocument;
  var root = doc.documentElement;
  var result = {
    width: this.contentWindow.innerWidth,
    scrollWidth: root.scrollWidth,
    bodyText: doc.body.innerText,
    images: Array.from(doc.images).map(function (i) {
      return {src: i.getAttribute("src"), alt: i.getAttribute("alt")};
    }),
    links: Array.from(doc.links).map(function (a) { return a.getAttribute("href"); }),
    tags: ["p", "h2", "ul", "ol", "li", "blockquote", "pre", "code", "table", "strong", "em"]
      .reduce(function (counts, tag) {
        counts[tag] = doc.getElementsByTagName(tag).length;
        return counts;
      }, {})
  };
  var out = document.createElement("pre");
  out.id = "__probe__";
  out.textContent = JSON.stringify(result);
  document.body.appendChild(out);
});
</script>
</body></html>
"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    binary = chromium()
    assert binary, "chromium is not installed (make test installs Debian's chromium)"
    with tempfile.TemporaryDirectory() as profile:
        return subprocess.run(
            [binary, *FLAGS, f"--user-data-dir={profile}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )


def probe(html_file: Path, width: int) -> dict[str, Any]:
    """Lay the page out `width` px wide and report its width, text, images and links."""
    wrapper = html_file.with_name(f"{html_file.stem}.probe-{width}.html")
    srcdoc = html_lib.escape(html_file.read_text("utf-8"), quote=True)
    wrapper.write_text(WRAPPER % {"width": width, "srcdoc": srcdoc}, "utf-8")
    done = _run(
        ["--window-size=1000,900", "--virtual-time-budget=5000", "--dump-dom", wrapper.as_uri()]
    )
    marker = '<pre id="__probe__">'
    start = done.stdout.find(marker)
    assert start >= 0, f"no probe output from chromium: {done.stderr[-2000:]}"
    end = done.stdout.find("</pre>", start)
    return dict(json.loads(html_lib.unescape(done.stdout[start + len(marker) : end])))


def screenshot(html_file: Path, width: int, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    done = _run([f"--window-size={width},2400", f"--screenshot={target}", html_file.as_uri()])
    assert target.exists(), done.stderr[-2000:]
    return target
