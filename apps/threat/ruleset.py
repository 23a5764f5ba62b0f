"""A set of compiled threat rules and what it decides for one attempt's signals.

`ruleset_current()` is the enabled rules of the database, compiled once and kept per process
in the one cache mechanism (apps/core/cache.py, cache "threat_rules"): every change through
apps.threat.services publishes an invalidation once it commits, so every process decides by
the new rules within a second (within CACHE_SECONDS while Redis is unreachable).
`Ruleset.from_json(path)` reads a file of rules, for `manage.py threat_replay --rules` (try a
rule on last month's trace before enabling it).
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from django.db import DatabaseError

from apps.core.cache import ProcessCache
from apps.threat.models import RuleAction, RuleSeverity
from apps.threat.rules import Condition, ConditionError, Evaluate, compile_condition

log = logging.getLogger(__name__)

CACHE = "threat_rules"  # the cache's name on the cache channel
CACHE_SECONDS = 10.0  # staleness bound while Redis (the invalidation channel) is unreachable
_KEY = "enabled"  # the cache's one key

# Strongest first: the order matches are reported in (then by name).
SEVERITY_RANK: dict[str, int] = {
    RuleSeverity.CRITICAL: 0,
    RuleSeverity.HIGH: 1,
    RuleSeverity.MEDIUM: 2,
    RuleSeverity.LOW: 3,
}
BLOCK_MINUTES_MAX = 525_600  # a year: longer than that is "until an operator unblocks"


class RulesetError(ValueError):
    """A rule or a rules file that cannot be used; the message names the rule or entry."""


@dataclass(frozen=True)
class RuleSpec:
    name: str
    condition: str
    action: str  # RuleAction value
    severity: str  # RuleSeverity value
    block_minutes: int | None = None  # only for action "block"; None: until unblocked


@dataclass(frozen=True)
class Match:
    name: str
    action: str
    severity: str
    block_minutes: int | None


@dataclass(frozen=True, eq=False)
class _Rule:
    spec: RuleSpec
    condition: Condition
    evaluate: Evaluate
    match: Match


class Ruleset:
    """Compiled rules, in the order decide() reports matches: severity (critical first),
    then name. Immutable; shared by every thread of the process."""

    __slots__ = ("_rules",)

    def __init__(self, rules: tuple[_Rule, ...]) -> None:
        self._rules = tuple(
            sorted(rules, key=lambda rule: (SEVERITY_RANK[rule.spec.severity], rule.spec.name))
        )

    @classmethod
    def of(cls, rules: Iterable[RuleSpec]) -> Ruleset:
        """Compile every rule; RulesetError naming the first that is wrong."""
        return cls(tuple(_compiled(spec) for spec in _unique(rules)))

    @classmethod
    def from_json(cls, path: str | Path) -> Ruleset:
        """Rules from a JSON file: a list of objects with name, condition, action, severity
        and, for a block, block_minutes (description and enabled may be there too, as the
        console exports them; a rule with "enabled": false is left out). RulesetError says
        which entry is wrong and why."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as error:
            raise RulesetError(f"{path}: cannot be read ({error.strerror or error})") from None
        except UnicodeDecodeError:
            raise RulesetError(f"{path}: is not UTF-8 text") from None
        except json.JSONDecodeError as error:
            raise RulesetError(
                f"{path}: not JSON (line {error.lineno}, col {error.colno}: {error.msg})"
            ) from None
        if not isinstance(data, list):
            raise RulesetError(f"{path}: expected a JSON list of rules, found {_json_type(data)}")
        rules = []
        entries: dict[str, int] = {}  # name -> entry number
        for index, entry in enumerate(data, start=1):
            try:
                spec, enabled = _spec_from_json(entry)
                if spec.name in entries:
                    raise RulesetError(f"entry {entries[spec.name]} has that name already")
                entries[spec.name] = index
                if enabled:
                    rules.append(_compiled(spec))
            except RulesetError as error:
                name = entry.get("name") if isinstance(entry, dict) else None
                label = f"entry {index}" + (f" ({name!r})" if isinstance(name, str) else "")
                raise RulesetError(f"{path}: {label}: {error}") from None
        return cls(tuple(rules))

    def decide(self, signals: Mapping[str, object]) -> tuple[Match, ...]:
        """The rules whose condition holds for these signals, strongest severity first."""
        matches = []
        for rule in self._rules:
            try:
                if rule.evaluate(signals):
                    matches.append(rule.match)
            except TypeError:  # a signal of the wrong type (a caller's bug): not a match
                log.exception("threat rule %s: signals of the wrong type", rule.spec.name)
        return tuple(matches)

    @property
    def rules(self) -> tuple[RuleSpec, ...]:
        return tuple(rule.spec for rule in self._rules)

    def __iter__(self) -> Iterator[RuleSpec]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self._rules)

    def __repr__(self) -> str:
        return f"Ruleset({', '.join(rule.spec.name for rule in self._rules)})"


def check_rule(
    *, name: str, condition: str, action: str, severity: str, block_minutes: int | None
) -> dict[str, str]:
    """What is wrong with a rule, by field ({} when nothing): the one set of checks behind
    Ruleset.of, the rules file and apps.threat.services."""
    errors = _field_errors(name, action, severity, block_minutes)
    try:
        compile_condition(condition)
    except ConditionError as error:
        errors["condition"] = str(error)
    return errors


def _field_errors(
    name: object, action: object, severity: object, block_minutes: object
) -> dict[str, str]:
    errors: dict[str, str] = {}
    if not isinstance(name, str) or not name:
        errors["name"] = "A rule needs a name."
    if action not in RuleAction.values:
        errors["action"] = f"Unknown action {action!r}: one of {', '.join(RuleAction.values)}."
    if severity not in RuleSeverity.values:
        errors["severity"] = (
            f"Unknown severity {severity!r}: one of {', '.join(RuleSeverity.values)}."
        )
    if block_minutes is not None:
        if action != RuleAction.BLOCK:
            errors["block_minutes"] = "Only a rule whose action is block has a duration."
        elif (
            isinstance(block_minutes, bool)
            or not isinstance(block_minutes, int)
            or not 1 <= block_minutes <= BLOCK_MINUTES_MAX
        ):
            errors["block_minutes"] = (
                f"A block lasts from 1 to {BLOCK_MINUTES_MAX:,} minutes (a year); leave it "
                "empty to block until an operator unblocks."
            )
    return errors


def _compiled(spec: RuleSpec, condition: Condition | None = None) -> _Rule:
    """The rule compiled (`condition`: already compiled from spec.condition), or
    RulesetError naming it and every field that is wrong."""
    errors = _field_errors(spec.name, spec.action, spec.severity, spec.block_minutes)
    if condition is None or condition.text != spec.condition:
        try:
            condition = compile_condition(spec.condition)
        except ConditionError as error:
            errors["condition"] = str(error)
    if errors or condition is None:
        detail = "; ".join(f"{field}: {message}" for field, message in errors.items())
        label = f"rule {spec.name!r}" if isinstance(spec.name, str) and spec.name else "a rule"
        raise RulesetError(f"{label}: {detail}")
    return _Rule(
        spec=spec,
        condition=condition,
        evaluate=condition.evaluate,
        match=Match(spec.name, spec.action, spec.severity, spec.block_minutes),
    )


def _unique(rules: Iterable[RuleSpec]) -> Iterator[RuleSpec]:
    seen: set[str] = set()
    for spec in rules:
        if spec.name in seen:
            raise RulesetError(f"two rules are named {spec.name!r}")
        seen.add(spec.name)
        yield spec


_FIELDS = {"name", "condition", "action", "severity", "block_minutes", "description", "enabled"}
_REQUIRED = ("name", "condition", "action", "severity")


def _spec_from_json(entry: object) -> tuple[RuleSpec, bool]:
    if not isinstance(entry, dict):
        raise RulesetError(f"expected an object, found {_json_type(entry)}")
    unknown = sorted(set(entry) - _FIELDS)
    if unknown:
        raise RulesetError(
            f"unknown field {unknown[0]!r}; the fields are {', '.join(sorted(_FIELDS))}"
        )
    for field in _REQUIRED:
        if field not in entry:
            raise RulesetError(f"{field!r} is missing")
        if not isinstance(entry[field], str):
            raise RulesetError(f"{field!r} is text, not {_json_type(entry[field])}")
    block_minutes = entry.get("block_minutes")
    if block_minutes is not None and (
        isinstance(block_minutes, bool) or not isinstance(block_minutes, int)
    ):
        raise RulesetError(f"'block_minutes' is a whole number, not {_json_type(block_minutes)}")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise RulesetError(f"'enabled' is true or false, not {_json_type(enabled)}")
    spec = RuleSpec(
        name=entry["name"],
        condition=entry["condition"],
        action=entry["action"],
        severity=entry["severity"],
        block_minutes=block_minutes,
    )
    return spec, enabled


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"


def shipped_rules() -> tuple[RuleSpec, ...]:
    """The rules Tessera ships, as migration threat/0002_default_rules installs them: for a
    replay or a benchmark that runs the defaults without a database, and for tests that must
    not depend on the rows a migration left (a transactional test empties every table)."""
    migration = importlib.import_module("apps.threat.migrations.0002_default_rules")
    return tuple(
        RuleSpec(
            rule["name"],
            rule["condition"],
            rule["action"],
            rule["severity"],
            rule.get("block_minutes"),
        )
        for rule in migration.DEFAULT_RULES
    )


# --- the database's rules, cached per process ---------------------------------------------

_cache: ProcessCache[Ruleset] = ProcessCache(
    CACHE,
    max_age=CACHE_SECONDS,
    max_entries=1,
    single_flight=True,  # one reload at a time; meanwhile the others decide by the previous
    stale_on=(DatabaseError,),  # the database is down: keep deciding by the last rules
    stale_retry=1.0,
)


def ruleset_current() -> Ruleset:
    """The enabled rules of the database, as this process last loaded them (a change through
    apps.threat.services is seen within a second)."""
    ruleset = _cache.get(_KEY, _load)
    assert ruleset is not None  # _load always returns one
    return ruleset


def ruleset_cache_clear() -> None:
    """Drop this process's rules (publish_on_commit(CACHE) reaches every process)."""
    _cache.invalidate()


def _load(previous: Ruleset | None) -> Ruleset:
    from apps.threat.models import ThreatRule

    # A condition unchanged since the last load is not compiled again.
    compiled_before: dict[str, Condition] = {}
    if previous is not None:
        compiled_before = {rule.spec.condition: rule.condition for rule in previous._rules}
    rows = ThreatRule.objects.filter(enabled=True).values_list(
        "name", "condition", "action", "severity", "block_minutes"
    )
    rules = []
    for name, condition, action, severity, block_minutes in rows:
        spec = RuleSpec(name, condition, action, severity, block_minutes)
        try:
            rules.append(_compiled(spec, compiled_before.get(spec.condition)))
        except RulesetError as error:
            # apps.threat.services refuses such a rule; one written around them (by hand, or
            # in an older version of the language) is left out, and sign-in goes on.
            log.error("threat rule %s skipped: %s", spec.name, error)
    return Ruleset(tuple(rules))
