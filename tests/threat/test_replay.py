"""manage.py threat_replay: the sign-in's evaluate() over a trace, in time order, each line
seeing only the lines before it; nothing written but the output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.core.models import SecurityEvent
from apps.threat import replay
from apps.threat.models import ThreatRule
from apps.threat.ruleset import Ruleset
from apps.threat.ruleset import RuleSpec as Rule

pytestmark = pytest.mark.django_db

FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
RULES = Ruleset.of(
    [
        Rule("travel", "impossible_travel", "require_mfa", "medium"),
        Rule("stuffing", "accounts_ip_1h >= 3 and not success", "alert", "medium"),
    ]
)


def line(ts: str, **changes: object) -> str:
    record: dict[str, object] = {
        "ts": ts,
        "user": "alice@example.com",
        "ip": "203.0.113.7",
        "user_agent": FIREFOX,
        "device_id": "d1",
        "country": "JP",
        "city": "Tokyo",
        "lat": 35.68,
        "lon": 139.69,
        "asn": 2516,
        "success": True,
    }
    record.update(changes)
    return json.dumps(record)


def results(lines: list[str]) -> list[dict[str, object]]:
    return [json.loads(r.text) for r in replay.replay(lines, ruleset=RULES)]


def test_each_line_sees_only_earlier_lines_in_time_order() -> None:
    trace = [
        # Out of order on purpose: Lyon comes 2 h after Tokyo, though written first.
        line("2026-11-02T10:00:00Z", country="FR", city="Lyon", lat=45.76, lon=4.84),
        line("2026-11-02T08:00:00Z"),
    ]
    lyon, tokyo = results(trace)
    assert tokyo == {"line": 2, "score": 0, "action": "allow", "reasons": []}
    assert lyon["line"] == 1
    assert lyon["action"] == "require_mfa"
    assert next(r["signal"] for r in lyon["reasons"]) == "impossible_travel"  # type: ignore[index]
    assert set(lyon) == {"line", "score", "action", "reasons"}


def test_a_bad_line_gets_an_error_record_and_the_rest_are_judged() -> None:
    trace = [
        line("2026-11-02T08:00:00Z"),
        "{not json",
        line("2026-11-02T08:01:00Z", success="yes"),
        line("yesterday"),
        line("2026-11-02T08:02:00Z", ip="300.1.1.1"),
        line("2026-11-02T08:03:00Z", lat=100),
        json.dumps({"ts": "2026-11-02T08:04:00", "user": "a@b", "success": True}),
        line("2026-11-02T08:05:00Z"),
    ]
    out = results(trace)
    assert [r["line"] for r in out] == list(range(1, 9))
    errors = {r["line"]: r["error"] for r in out if "error" in r}
    assert set(errors) == {2, 3, 4, 5, 6, 7}
    assert "not JSON" in str(errors[2])
    assert "'success'" in str(errors[3])
    assert "'ts'" in str(errors[4])
    assert "'ip'" in str(errors[5])
    assert "'lat'" in str(errors[6])
    assert "time zone" in str(errors[7])
    assert out[7]["action"] == "allow"


def test_spraying_and_stuffing_are_counted_across_accounts() -> None:
    trace = [
        line(
            f"2026-11-02T08:00:0{n}Z",
            user=f"p{n}@example.com",
            success=False,
            user_exists=n % 2 == 0,
            device_id=None,
            password_digest="summer2026",
        )
        for n in range(4)
    ]
    out = results(trace)
    assert [r["action"] for r in out] == ["allow", "allow", "alert", "alert"]
    assert "spray_accounts_1h" in [r["signal"] for r in out[3]["reasons"]]  # type: ignore[union-attr]


def test_the_command_writes_the_output_and_nothing_else(tmp_path: Path, monkeypatch) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(
        "\n".join(
            [
                line("2026-11-02T08:00:00Z"),
                line("2026-11-02T09:00:00Z", country="FR", lat=45.76, lon=4.84),
                "",
            ]
        )
    )
    monkeypatch.setattr("apps.threat.port._current_rules", lambda: RULES)
    events, rules = SecurityEvent.objects.count(), ThreatRule.objects.count()
    call_command("threat_replay", str(source), "--output", str(target))
    out = [json.loads(text) for text in target.read_text().splitlines()]
    assert [(r["line"], r["action"]) for r in out] == [(1, "allow"), (2, "require_mfa")]
    assert (SecurityEvent.objects.count(), ThreatRule.objects.count()) == (events, rules)


def test_the_command_names_the_bad_lines(tmp_path: Path, monkeypatch) -> None:
    source, target = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    source.write_text(line("2026-11-02T08:00:00Z") + "\n[1, 2]\n")
    monkeypatch.setattr("apps.threat.port._current_rules", lambda: RULES)
    with pytest.raises(CommandError, match=r"1 of 2 lines could not be read \(lines 2\)"):
        call_command("threat_replay", str(source), "--output", str(target))
    assert json.loads(target.read_text().splitlines()[1]) == {
        "line": 2,
        "error": "not a JSON object",
    }
    with pytest.raises(CommandError, match="cannot read"):
        call_command("threat_replay", str(tmp_path / "missing"), "--output", str(target))


def test_the_command_takes_rules_from_a_file(tmp_path: Path) -> None:
    source, target, rules = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "r.json"
    source.write_text(line("2026-11-02T08:00:00Z", user_agent="curl/8") + "\n")
    rules.write_text(
        json.dumps(
            [{"name": "scripts", "condition": "headless_ua", "action": "alert", "severity": "low"}]
        )
    )
    call_command("threat_replay", str(source), "--output", str(target), "--rules", str(rules))
    assert json.loads(target.read_text())["action"] == "alert"
    rules.write_text('[{"name": "bad", "condition": "nonsense_signal", "action": "alert"}]')
    with pytest.raises(CommandError, match=r"r\.json: entry 1 \('bad'\)"):
        call_command("threat_replay", str(source), "--output", str(target), "--rules", str(rules))


def test_the_command_takes_its_options_as_keywords_from_python(tmp_path: Path) -> None:
    # call_command(..., output=...) hands the option over untyped (a str, not a Path).
    source, target, rules = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "r.json"
    source.write_text(line("2026-11-02T08:00:00Z", user_agent="curl/8") + "\n")
    rules.write_text(
        json.dumps(
            [{"name": "scripts", "condition": "headless_ua", "action": "alert", "severity": "low"}]
        )
    )
    call_command("threat_replay", str(source), output=str(target), rules=str(rules))
    assert json.loads(target.read_text())["action"] == "alert"
