"""The detection benchmark (benchmarks/threat_detection.py): how it joins the trace, its labels
and the replay's output, and a whole run on a tiny trace through `manage.py threat_replay`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from benchmarks import threat_detection, threat_traces

LINES = [
    {"success": True},
    {"success": False},
    {"success": True},
    {"success": False},
    {"success": True},
]
LABELS = [
    {"line": 1, "kind": "normal", "episode": None, "behaviour": "home"},
    {"line": 2, "kind": "brute_force", "episode": "brute_force-1"},
    {"line": 3, "kind": "brute_force", "episode": "brute_force-1"},
    {"line": 4, "kind": "normal", "episode": None, "behaviour": "typo"},
    {"line": 5, "kind": "account_takeover", "episode": "account_takeover-1"},
]


def _out(*actions: str) -> list[dict[str, object]]:
    return [
        {"line": n, "score": 0, "action": a, "reasons": [{"signal": "new_device", "points": 10}]}
        for n, a in enumerate(actions, start=1)
    ]


def test_figures_per_kind_and_for_normal_lines() -> None:
    figures = threat_detection.evaluate(
        LINES, LABELS, _out("alert", "allow", "require_mfa", "allow", "allow")
    )
    brute = figures.kinds["brute_force"]
    assert (brute.lines, brute.flagged, brute.disruptive) == (2, 1, 1)
    assert brute.episodes_flagged == {"brute_force-1"}
    assert (brute.successes, brute.successes_stopped) == (1, 1)
    takeover = figures.kinds["account_takeover"]
    assert takeover.episodes_flagged == set()
    assert (takeover.successes, takeover.successes_stopped) == (1, 0)
    normal = figures.normal()
    assert (normal.lines, normal.flagged, normal.disruptive) == (2, 1, 0)
    assert (figures.normal_signins, figures.normal_signins_flagged) == (1, 1)
    assert figures.behaviours == {"home": [1, 1, 0], "typo": [1, 0, 0]}
    assert figures.normal_reasons == {"new_device": 1}

    text = "\n".join(threat_detection.report(figures))
    assert "normal lines=2 flagged_pct=50.00 disruptive_pct=0.00 signins=1" in text
    assert re.search(r"kind=brute_force episodes=1 episodes_flagged_pct=100.0 lines=2 ", text)
    assert "kind=account_takeover episodes=1 episodes_flagged_pct=0.0" in text
    assert "target kind=brute_force goal=episodes_flagged>=95%@normal_flagged<=1%" in text
    assert "verdict=not_met" in text  # half the normal lines flagged


def test_output_counted_from_zero_is_accepted() -> None:
    out = [dict(o, line=int(str(o["line"])) - 1) for o in _out(*["allow"] * 5)]
    figures = threat_detection.evaluate(LINES, LABELS, out)
    assert figures.normal().lines == 2


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        (_out("allow", "allow"), "differ in length"),
        (_out("allow", "allow", "allow", "allow", "allow", "allow"), "differ in length"),
        (
            [*_out("allow", "allow"), {"line": 9, "action": "allow"}, *_out("allow", "allow")],
            "says line 9",
        ),
        (_out("allow", "deny", "allow", "allow", "allow"), "unknown action 'deny'"),
    ],
)
def test_output_that_does_not_line_up_is_refused(
    outputs: list[dict[str, object]], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        threat_detection.evaluate(LINES, LABELS, outputs)


def test_a_whole_run_on_a_tiny_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps(
            [
                {
                    "name": "many_accounts",
                    "condition": "accounts_ip_1h >= 5",
                    "action": "require_mfa",
                    "severity": "high",
                }
            ]
        )
    )
    threat_detection.main(
        ["--people", "40", "--days", "12", "--rules", str(rules), "--keep", str(tmp_path)]
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("machine nproc=")
    assert out[1].startswith("config ")
    replay = next(line for line in out if line.startswith("replay "))
    assert re.search(r"lines=\d+ wall_s=[\d.]+ lines_per_s=\d+ .* p99_us=\d+", replay)
    stuffing = next(line for line in out if line.startswith("kind=credential_stuffing "))
    # Every stuffing attempt comes from an address that tries many accounts.
    assert re.search(r"episodes_flagged_pct=100.0 lines=\d+ lines_flagged_pct=9\d", stuffing)
    assert [line.split()[1] for line in out if line.startswith("target kind=")] == [
        f"kind={kind}" for kind in threat_traces.ATTACK_KINDS
    ]
    assert out[-1].startswith("target replay goal=lines_per_s>=5000")
    # The files it kept: the trace, its labels, the replay's output, one line each.
    lengths = {
        name: len((tmp_path / name).read_text().splitlines())
        for name in ("trace.jsonl", "trace.labels.jsonl", "replay.jsonl")
    }
    assert len(set(lengths.values())) == 1


def test_a_rules_file_that_is_not_there_is_said(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        threat_detection.main(["--rules", "/nonexistent/rules.json"])
    assert exit_.value.code == 2
    assert "--rules /nonexistent/rules.json: no such file" in capsys.readouterr().err


def test_a_rules_file_the_replay_refuses_is_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.json"
    rule = {"name": "x", "condition": "no_such_signal", "action": "alert", "severity": "low"}
    rules.write_text(json.dumps([rule]))
    with pytest.raises(SystemExit) as exit_:
        threat_detection.main(["--people", "20", "--days", "10", "--rules", str(rules)])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("threat_replay: ")
    assert "no_such_signal" in error


def test_labels_of_another_trace_are_said(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    small = threat_traces.generate(people=20, days=10, seed=1)
    other = threat_traces.generate(people=25, days=10, seed=1)
    threat_traces.write(small, tmp_path / "t.jsonl", tmp_path / "t.labels.jsonl")
    threat_traces.write(other, tmp_path / "o.jsonl", tmp_path / "o.labels.jsonl")
    with pytest.raises(SystemExit) as exit_:
        threat_detection.main(
            ["--trace", str(tmp_path / "t.jsonl"), "--labels", str(tmp_path / "o.labels.jsonl")]
        )
    assert exit_.value.code == 2
    assert "differ in length" in capsys.readouterr().err
