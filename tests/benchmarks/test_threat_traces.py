"""The labelled trace generator (benchmarks/threat_traces.py): deterministic, in the replay's
input format (issue 16, "Backtesting"), labels lined up with the lines, each attack kind
looking like what it claims to be."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from benchmarks import threat_traces
from benchmarks.threat_traces import ATTACK_KINDS, NORMAL, haversine_km

# The issue's input line; device_id is absent for scripted logins; the replay's two optional
# fields: password_digest (what spraying is counted by) and user_exists (false only).
ISSUE_FIELDS = {"ts", "user", "ip", "user_agent", "country", "city", "lat", "lon", "asn", "success"}
BEHAVIOURS = {
    "home",
    "work",
    "mobile",
    "trip",
    "roaming",
    "vpn",
    "new_phone",
    "cleared_cookies",
    "typo",
}
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


@pytest.fixture(scope="module")
def trace() -> threat_traces.Trace:
    return threat_traces.generate(people=200, days=40, seed=7)


def _when(line: dict[str, object]) -> dt.datetime:
    return dt.datetime.strptime(str(line["ts"]), "%Y-%m-%dT%H:%M:%SZ")


def test_same_seed_same_trace_other_seed_other_trace(trace: threat_traces.Trace) -> None:
    again = threat_traces.generate(people=200, days=40, seed=7)
    assert again.lines == trace.lines
    assert again.labels == trace.labels
    other = threat_traces.generate(people=200, days=40, seed=8)
    assert other.lines != trace.lines


def test_the_files_are_byte_for_byte_the_same_on_a_second_run(tmp_path: Path) -> None:
    for run in ("a", "b"):
        threat_traces.main(
            ["--people", "30", "--days", "12", "--output", str(tmp_path / run / "t.jsonl")]
        )
    for name in ("t.jsonl", "t.labels.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_every_line_has_the_issue_input_format(trace: threat_traces.Trace) -> None:
    for line in trace.lines:
        keys = set(line)
        assert keys >= ISSUE_FIELDS
        assert keys - ISSUE_FIELDS <= {"device_id", "password_digest", "user_exists"}
        assert line.get("user_exists", False) is False
        assert TS.match(str(line["ts"]))
        assert isinstance(line["user"], str)
        assert "@" in line["user"]
        ipaddress.ip_address(str(line["ip"]))
        assert isinstance(line["user_agent"], str)
        assert "device_id" not in line or re.fullmatch(
            r"[0-9a-f]{31}[0-9a-fn]", str(line["device_id"])
        )
        assert re.fullmatch(r"[A-Z]{2}", str(line["country"]))
        assert isinstance(line["lat"], float)
        assert -90 <= line["lat"] <= 90
        assert isinstance(line["lon"], float)
        assert -180 <= line["lon"] <= 180
        assert isinstance(line["asn"], int)
        assert line["asn"] > 0
        assert isinstance(line["success"], bool)


def test_without_password_digest_the_lines_have_only_the_issue_fields() -> None:
    bare = threat_traces.generate(people=20, days=10, seed=3, password_digest=False)
    keys = {key for line in bare.lines for key in line}
    assert ISSUE_FIELDS | {"device_id"} <= keys <= ISSUE_FIELDS | {"device_id", "user_exists"}


def test_lines_are_in_time_order_within_the_days_asked(trace: threat_traces.Trace) -> None:
    times = [_when(line) for line in trace.lines]
    assert times == sorted(times)
    assert times[0] >= dt.datetime(2026, 10, 20)
    assert times[-1] < dt.datetime(2026, 10, 20) + dt.timedelta(days=40)


def test_labels_line_up_with_the_lines(trace: threat_traces.Trace, tmp_path: Path) -> None:
    assert [label["line"] for label in trace.labels] == list(range(1, len(trace.lines) + 1))
    kinds = {label["kind"] for label in trace.labels}
    assert kinds == {NORMAL, *ATTACK_KINDS}
    for label in trace.labels:
        if label["kind"] == NORMAL:
            assert label["episode"] is None
            assert label["behaviour"] in BEHAVIOURS
        else:
            assert "behaviour" not in label
            assert trace.episodes[str(label["episode"])] == label["kind"]
    # The files: one label per trace line, same order.
    threat_traces.write(trace, tmp_path / "t.jsonl", tmp_path / "t.labels.jsonl")
    lines = (tmp_path / "t.jsonl").read_text().splitlines()
    labels = list(threat_traces.read_labels(tmp_path / "t.labels.jsonl"))
    assert len(lines) == len(labels) == len(trace.lines)
    assert json.loads(lines[41]) == trace.lines[41]


def test_most_lines_are_normal_sign_ins_mostly_successful(trace: threat_traces.Trace) -> None:
    counts = trace.counts()
    assert counts[NORMAL] > 0.85 * len(trace.lines)
    normal = [
        line
        for line, label in zip(trace.lines, trace.labels, strict=True)
        if label["kind"] == NORMAL
    ]
    failures = sum(not line["success"] for line in normal)
    assert 0.02 < failures / len(normal) < 0.15  # typos, a forgotten password now and then
    assert all("device_id" in line for line in normal)  # people's browsers keep the cookie
    behaviours = [label["behaviour"] for label in trace.labels if label["kind"] == NORMAL]
    assert set(behaviours) == BEHAVIOURS
    assert behaviours.count("vpn") < 0.05 * len(behaviours)  # VPNs at a low rate


def _episodes(trace: threat_traces.Trace, kind: str) -> list[list[dict[str, object]]]:
    found: dict[str, list[dict[str, object]]] = defaultdict(list)
    for line, label in zip(trace.lines, trace.labels, strict=True):
        if label["kind"] == kind:
            found[str(label["episode"])].append(line)
    assert found, kind
    return list(found.values())


def test_credential_stuffing_is_many_accounts_from_few_scripted_addresses(
    trace: threat_traces.Trace,
) -> None:
    for lines in _episodes(trace, "credential_stuffing"):
        assert len({line["user"] for line in lines}) > 100
        assert len({line["ip"] for line in lines}) <= 8
        assert all("device_id" not in line for line in lines)
        assert {line["user_agent"] for line in lines} <= set(threat_traces.SCRIPT_UAS)


def test_only_addresses_of_nobody_are_said_not_to_exist(trace: threat_traces.Trace) -> None:
    people = {line["user"] for line in trace.lines if line["success"]}
    unknown = {line["user"] for line in trace.lines if line.get("user_exists") is False}
    assert unknown
    assert not unknown & people


def test_spraying_tries_one_password_against_many_accounts_slowly(
    trace: threat_traces.Trace,
) -> None:
    for lines in _episodes(trace, "password_spraying"):
        per_password: dict[object, set[object]] = defaultdict(set)
        for line in lines:
            per_password[line["password_digest"]].add(line["user"])
        assert max(len(users) for users in per_password.values()) > 50
        span = _when(lines[-1]) - _when(lines[0])
        assert span / len(lines) >= dt.timedelta(seconds=20)
        assert len({line["ip"] for line in lines}) > len(lines) / 7  # rotating addresses


def test_brute_force_is_one_account_and_distributed_brute_force_many_addresses(
    trace: threat_traces.Trace,
) -> None:
    for lines in _episodes(trace, "brute_force"):
        assert len({line["user"] for line in lines}) == 1
        assert len({line["ip"] for line in lines}) <= 2
        assert len(lines) >= 60
    for lines in _episodes(trace, "distributed_brute_force"):
        assert len({line["user"] for line in lines}) == 1
        assert len({line["ip"] for line in lines}) > len(lines) / 3


def test_takeover_succeeds_after_failures_from_a_country_the_person_never_used(
    trace: threat_traces.Trace,
) -> None:
    for lines in _episodes(trace, "account_takeover"):
        assert [line["success"] for line in lines] == [False] * (len(lines) - 1) + [True]
        user, country = lines[-1]["user"], lines[-1]["country"]
        own = [
            line
            for line, label in zip(trace.lines, trace.labels, strict=True)
            if label["kind"] == NORMAL and line["user"] == user and line["success"]
        ]
        homes = {line["country"] for line in own if line["asn"] not in threat_traces.VPN_ASNS}
        assert country not in homes


def test_impossible_travel_follows_the_person_own_sign_in_from_far_away(
    trace: threat_traces.Trace,
) -> None:
    for (line,) in _episodes(trace, "impossible_travel"):
        before = [
            other
            for other, label in zip(trace.lines, trace.labels, strict=True)
            if label["kind"] == NORMAL
            and other["user"] == line["user"]
            and other["success"]
            and _when(other) <= _when(line)
        ]
        last = before[-1]
        km = haversine_km(last["lat"], last["lon"], line["lat"], line["lon"])  # type: ignore[arg-type]
        hours = (_when(line) - _when(last)).total_seconds() / 3600
        assert line["success"] is True
        # Farther than an airliner goes in that time (even if the last sign-in was not the
        # one it followed, the person was at home, thousands of km away, within hours).
        assert km > 2900
        assert hours < 24


def test_low_and_slow_spreads_a_few_guesses_a_day_over_weeks(
    trace: threat_traces.Trace,
) -> None:
    for lines in _episodes(trace, "low_and_slow"):
        days = defaultdict(int)
        for line in lines:
            days[_when(line).date()] += 1
        assert max(days.values()) <= 8  # at most 4 a day, a day straddling two dates
        assert _when(lines[-1]) - _when(lines[0]) >= dt.timedelta(days=10)
        assert not any(line["success"] for line in lines)


def test_addresses_are_synthetic(trace: threat_traces.Trace) -> None:
    blocks = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("198.18.0.0/15")]
    for line in trace.lines:
        assert any(ipaddress.ip_address(str(line["ip"])) in block for block in blocks)


def test_too_small_a_trace_is_refused_with_a_message(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        threat_traces.main(["--people", "3", "--output", "/nonexistent/t.jsonl"])
    assert exit_.value.code == 2
    assert "at least 10 people" in capsys.readouterr().err
