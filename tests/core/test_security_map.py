"""docs/security.md, the map of Tessera against OWASP ASVS 5.0 V6, V7, V9, V10 and RFC 9700 §2,
stays true to the code: every test it cites exists, every module path it names exists, every
`IDP_` setting it names is read in idp/settings.py, and its summary counts and gap list agree
with its entries. Pure file reading: no database, no server."""

from __future__ import annotations

import ast
import re
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MAP = ROOT / "docs" / "security.md"
SETTINGS = ROOT / "idp" / "settings.py"

# The chapters the map covers, by the heading that opens each, and the summary row's name.
CHAPTERS = {
    "## V6 Authentication": "V6 Authentication",
    "## V7 Session Management": "V7 Session Management",
    "## V9 Self-contained Tokens": "V9 Self-contained Tokens",
    "## V10 OAuth and OIDC": "V10 OAuth and OIDC",
    "## RFC 9700 §2 Best Practices": "RFC 9700 §2",
}
# An entry: "- **6.2.1** (L1) …" (ASVS, with its level) or "- **§2.1.1 (c)** …" (RFC 9700).
ENTRY = re.compile(
    r"^- \*\*(?P<id>\d+\.\d+\.\d+|§\d+(?:\.\d+)* \([a-z]\))\*\*(?P<level> \(L[123]\))?"
)
STATUS = re.compile(r"\*\*(?P<status>Met|N\.a\.|GAP)(?=\*\*| )")
STATUS_NAMES = {"Met": "met", "N.a.": "n.a.", "GAP": "gap"}
CITED_TEST = re.compile(r"`(?P<file>tests/[\w/]+\.py)::(?P<name>test_\w+)(?:\[[^\]`]*\])?`")
MODULE_PATH = re.compile(r"(?<![\w./<-])(?:apps|idp|templates|docs|deploy|tests)/[\w./-]*[\w/]")
SETTING = re.compile(r"\bIDP_[A-Z0-9_]*[A-Z0-9]\b")
SUMMARY_ROW = re.compile(
    r"^\| (?P<chapter>[^|]+?) \| (?P<n>\d+) \| (?P<met>\d+) \| (?P<na>\d+) \| (?P<gap>\d+) \|$"
)
GAP_ID = re.compile(r"\d+\.\d+\.\d+|§\d+(?:\.\d+)* \([a-z]\)")


@dataclass(frozen=True)
class Entry:
    chapter: str
    id: str
    level: str
    status: str
    text: str


@cache
def _text() -> str:
    return MAP.read_text(encoding="utf-8")


def _section(heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    lines = _text().splitlines()
    depth = len(heading) - len(heading.lstrip("#"))
    start = lines.index(heading) + 1
    end = next(
        (i for i in range(start, len(lines)) if re.match(rf"^#{{1,{depth}}} ", lines[i])),
        len(lines),
    )
    return "\n".join(lines[start:end])


@cache
def _entries() -> tuple[Entry, ...]:
    entries: list[Entry] = []
    chapter: str | None = None
    current: list[str] = []

    def close() -> None:
        if chapter is None or not current:
            return
        head = ENTRY.match(current[0])
        assert head is not None
        text = "\n".join(current)
        status = STATUS.search(text)
        assert status is not None, f"{head['id']}: no **Met**, **N.a.** or **GAP**"
        level = (head["level"] or "").strip(" ()")
        entries.append(Entry(chapter, head["id"], level, STATUS_NAMES[status["status"]], text))

    for line in _text().splitlines():
        if line.startswith("#"):
            close()
            current = []
            if line.startswith("## "):
                chapter = CHAPTERS.get(line)
        elif chapter is not None and ENTRY.match(line):
            close()
            current = [line]
        elif current:
            current.append(line)
    close()
    return tuple(entries)


@cache
def _defined_tests(file: str) -> frozenset[str]:
    tree = ast.parse((ROOT / file).read_text(encoding="utf-8"), filename=file)
    return frozenset(
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    )


def test_every_chapter_has_entries_and_each_entry_is_listed_once() -> None:
    entries = _entries()
    assert {entry.chapter for entry in entries} == set(CHAPTERS.values())
    repeated = [key for key, n in Counter((e.chapter, e.id) for e in entries).items() if n > 1]
    assert not repeated, repeated


def test_asvs_entries_carry_their_level_and_rfc_entries_none() -> None:
    for entry in _entries():
        if entry.id.startswith("§"):
            assert entry.level == "", entry.id
        else:
            assert entry.level in {"L1", "L2", "L3"}, entry.id
            assert entry.chapter.startswith(f"V{entry.id.split('.')[0]} "), entry.id


def test_the_summary_counts_what_the_entries_say() -> None:
    rows = {
        match["chapter"]: tuple(int(match[k]) for k in ("n", "met", "na", "gap"))
        for line in _section("## Summary").splitlines()
        if (match := SUMMARY_ROW.match(line))
    }
    counted = {}
    for chapter in CHAPTERS.values():
        statuses = Counter(e.status for e in _entries() if e.chapter == chapter)
        counted[chapter] = (
            sum(statuses.values()),
            statuses["met"],
            statuses["n.a."],
            statuses["gap"],
        )
    assert rows == counted


def test_every_gap_is_in_the_gap_list_and_the_list_names_only_gaps() -> None:
    listed = set(GAP_ID.findall(_section("### Gaps")))
    gaps = {e.id for e in _entries() if e.status == "gap"}
    assert gaps - listed == set(), "GAP entries missing from the summary's list"
    assert listed - gaps == set(), "the summary lists as gaps what the entries do not"


def test_every_met_entry_cites_a_test_or_says_it_has_none() -> None:
    for entry in _entries():
        if entry.status == "met":
            assert CITED_TEST.search(entry.text) or "Test: none" in entry.text, entry.id


def _citations() -> list[tuple[str, str]]:
    return sorted({(m["file"], m["name"]) for m in CITED_TEST.finditer(_text())})


def test_the_map_cites_tests() -> None:
    # Guards the pattern itself: a citation format it stopped reading would pass silently.
    assert len(_citations()) > 100


@pytest.mark.parametrize(("file", "name"), _citations())
def test_each_cited_test_exists(file: str, name: str) -> None:
    assert (ROOT / file).is_file(), f"{file} does not exist"
    assert name in _defined_tests(file), f"{file} defines no {name}"


def test_each_named_module_path_exists() -> None:
    missing = sorted(
        path
        for path in {p.rstrip("./") for p in MODULE_PATH.findall(_text())}
        if not (ROOT / path).exists()
    )
    assert not missing, missing


def test_each_named_setting_is_read_in_settings() -> None:
    source = SETTINGS.read_text(encoding="utf-8")
    unread = sorted(name for name in set(SETTING.findall(_text())) if f'"{name}"' not in source)
    assert not unread, unread
