"""The code's shape: the README's Layout table names every module (and nothing else),
and no function in syndicate/ is longer than 60 lines (issue #11)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "syndicate"
MAX_FUNCTION_LINES = 60


def modules() -> set[str]:
    return {
        path.relative_to(ROOT).as_posix()
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") and "templates" not in path.parts
    }


def test_readme_layout_names_every_module() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    section = readme[readme.index("### Layout") :]
    listed = set(re.findall(r"^\| `(syndicate/[\w/]+\.py)` \|", section, re.MULTILINE))
    assert listed == modules()


def test_no_function_is_longer_than_60_lines() -> None:
    long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert long == []


def test_readme_config_table_is_the_declared_keys() -> None:
    """The README's config table is generated from config.py's declarations: a key added,
    renamed or re-documented there and not here (or the other way round) fails."""
    from syndicate.config_doc import with_table

    readme = (ROOT / "README.md").read_text("utf-8")
    assert with_table(readme) == readme, "run: python -m syndicate.config_doc README.md"
