"""A minimal ruleset for the engine's tests only, until apps.threat.ruleset (branch threat-rules)
is merged: conditions are Python expressions over the signals, evaluated without builtins.
Trusted test text only; the real ruleset compiles a whitelisted language (apps/threat/rules.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from apps.threat.models import ThreatRule
from apps.threat.port import ThreatAssessor


@dataclass(frozen=True)
class Match:
    name: str
    action: str
    severity: str
    block_minutes: int | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    condition: str
    action: str
    severity: str = "medium"
    block_minutes: int | None = None


class TestRuleset:
    __test__ = False  # not a test class

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = [(rule, compile(rule.condition, rule.name, "eval")) for rule in rules]

    def decide(self, signals: Mapping[str, object]) -> tuple[Match, ...]:
        return tuple(
            Match(rule.name, rule.action, rule.severity, rule.block_minutes)
            for rule, code in self.rules
            if eval(code, {"__builtins__": {}}, dict(signals))  # noqa: S307 - test text only
        )


def from_database() -> TestRuleset:
    return TestRuleset(
        [
            Rule(r.name, r.condition, r.action, r.severity, r.block_minutes)
            for r in ThreatRule.objects.filter(enabled=True)
        ]
    )


class DatabaseRulesAssessor(ThreatAssessor):
    """The real assessor (Redis history, threat.assessed) over ThreatRule rows."""

    def __init__(self) -> None:
        super().__init__(rules=from_database)
