"""The threat replay input (manage.py threat_replay, apps.threat.replay): JSON lines of every
shape. Each line that is not blank gets exactly one output line, a verdict or an error record
naming it (docs/threat.md "Replay"); no line stops the others, nothing raises."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from apps.threat import replay
from apps.threat.ruleset import Ruleset
from apps.threat.ruleset import RuleSpec as Rule
from tests.fuzz import budget
from tests.fuzz.strategies import any_text, huge_ints, json_values

RULES = Ruleset.of(
    [
        Rule("travel", "impossible_travel", "require_mfa", "medium"),
        Rule("stuffing", "accounts_ip_1h >= 3 and not success", "alert", "medium"),
    ]
)
GOOD = {
    "ts": "2026-11-02T08:14:03Z", "user": "alice@example.com", "ip": "203.0.113.7",
    "user_agent": "Firefox", "device_id": "d1", "country": "JP", "city": "Tokyo",
    "lat": 35.68, "lon": 139.69, "asn": 2516, "success": True,
}  # fmt: skip
_FIELDS = [*GOOD, "user_exists", "password_digest"]

# Times at the edges of what datetime holds, with offsets that push them past it in UTC
_times = st.one_of(
    st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
    st.from_regex(r"(0001-01-01|9999-12-31)T(00:00|23:59)(:00)?([+-](0[0-9]|1[0-9]|2[0-3]):[0-5][0-9]|Z)",
                  fullmatch=True),
    any_text,
)  # fmt: skip


@st.composite
def records(draw: st.DrawFn) -> str:
    record: dict[str, Any] = dict(GOOD)
    changes = draw(
        st.dictionaries(
            st.sampled_from(_FIELDS),
            st.one_of(json_values, huge_ints, _times, st.sampled_from(["::1", "1.2.3.4"])),
            max_size=4,
        )
    )
    record.update(changes)
    for name in draw(st.sets(st.sampled_from(_FIELDS), max_size=2)):
        record.pop(name, None)
    return json.dumps(record)


_lines = st.one_of(
    records(),
    any_text,
    json_values.map(json.dumps),
    st.just("[" * 16_000),
    st.just('{"ts": ' * 3000),
)


@budget(75)
@given(lines=st.lists(_lines, min_size=1, max_size=6))
@example(lines=["[" * 16_000])  # was RecursionError out of json.loads
@example(lines=[json.dumps({**GOOD, "ts": "0001-01-01T00:00:00+01:00"})])  # edges of datetime
@example(lines=[json.dumps({**GOOD, "ts": "9999-12-31T23:59:00-01:00"})])
def test_every_line_gets_one_verdict_or_error_record(lines: list[str]) -> None:
    out = [json.loads(result.text) for result in replay.replay(lines, ruleset=RULES)]
    expected = [i + 1 for i, text in enumerate(lines) if text.rstrip("\n").strip()]
    assert [record["line"] for record in out] == expected
    for record in out:
        assert ("error" in record) != ("score" in record), record
