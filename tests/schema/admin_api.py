"""Schemathesis against the admin API's own OpenAPI document (/api/schema/), in process.

The document is read as a client reads it (GET /api/schema/ with an administrator's bearer
token); every operation in it is called through the production WSGI application with
requests generated from that document, valid ones (positive) and invalid ones (negative),
and each answer is checked: no 5xx, a status code the document lists, the content type and
body schema it declares for that status, and invalid input refused with a 4xx.

Path ids are drawn half the time from rows seeded beforehand (`Seeded`), so operations reach
their real code and not only the resolver's 404. Every request runs in a savepoint rolled
back after it: an erase or a revoke does not take the seeded rows from the next example.

The document declares no OpenAPI links; `run_stateful` follows the links schemathesis infers
from it (an id in one answer, a path parameter of another operation).

Used by tests/schema/test_admin_api_schema.py (a bounded budget, in the suite) and by
benchmarks/schemathesis_long.py (as many examples as asked).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from apps.core.request_limits import ChunkedBodyLimit

PATH_NAME = re.compile(r"{(\w+)}")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

# Budget knobs for the long run (benchmarks/schemathesis_long.py sets them).
MAX_EXAMPLES_ENV = "TESSERA_SCHEMATHESIS_MAX_EXAMPLES"
SEED_ENV = "TESSERA_SCHEMATHESIS_SEED"
SUMMARY_ENV = "TESSERA_SCHEMATHESIS_SUMMARY"
OPERATIONS_ENV = "TESSERA_SCHEMATHESIS_OPERATIONS"
STATEFUL_SCENARIOS_ENV = "TESSERA_SCHEMATHESIS_STATEFUL_SCENARIOS"
STATEFUL_SUMMARY_ENV = "TESSERA_SCHEMATHESIS_STATEFUL_SUMMARY"


@dataclass
class Outcome:
    """What one operation answered: statuses seen per generation mode, and failures."""

    examples: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


@contextmanager
def wsgi_in_test_transaction() -> Iterator[Callable[..., Any]]:
    """The production WSGI stack (with its chunked-body limit), without the per-request
    close_old_connections that would close the test's connection mid-transaction (Django's
    own test client disconnects it the same way)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield ChunkedBodyLimit(get_wsgi_application())
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def load_schema(app: Callable[..., Any], token: str) -> Any:
    """The document exactly as /api/schema/ serves it to an administrator."""
    return schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json", app, headers={"Authorization": f"Bearer {token}"}
    )


def run(
    schema: Any,
    *,
    token: str,
    path_ids: dict[str, str],
    max_examples: int,
    seed_value: int | None,
    operations: Callable[[str], bool] = lambda label: True,
) -> dict[str, Outcome]:
    """Every operation of `schema` (those `operations` picks by label), `max_examples`
    positive and as many negative examples each. `seed_value` None derandomizes (the
    suite); an int seeds (the long run)."""
    headers = {"Authorization": f"Bearer {token}"}
    outcomes: dict[str, Outcome] = defaultdict(Outcome)
    for result in schema.get_all_operations():
        operation = result.ok()
        if not operations(operation.label):
            continue
        known = {
            name: path_ids[name] for name in PATH_NAME.findall(operation.path) if name in path_ids
        }
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strategy = operation.as_strategy(generation_mode=mode)
            if known:
                strategy = st.one_of(
                    operation.as_strategy(generation_mode=mode, path_parameters=known), strategy
                )
            outcome = outcomes[operation.label]
            started = time.monotonic()
            _examples(strategy, mode, outcome, headers, max_examples, seed_value)
            outcome.seconds += time.monotonic() - started
    return dict(outcomes)


def _examples(
    strategy: Any,
    mode: GenerationMode,
    outcome: Outcome,
    headers: dict[str, str],
    max_examples: int,
    seed_value: int | None,
) -> None:
    @settings(
        max_examples=max_examples,
        derandomize=seed_value is None,
        database=None,  # nothing kept between runs: the suite's result is its code's alone
        deadline=None,  # two cores shared with other work: slowness is not a failure here
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],  # no shrinking: each failure is reported as found
        report_multiple_bugs=False,
    )
    @given(case=strategy)
    def example(case: Any) -> None:
        outcome.examples += 1
        with transaction.atomic():
            response = case.call(headers=headers)
            transaction.set_rollback(True)
        outcome.statuses[f"{mode.value} {response.status_code}"] += 1
        checks = CHECKS
        if (
            mode is GenerationMode.POSITIVE
            or response.status_code == 413  # refused for its size (documented on every body)
            or _only_query_negated(case)
            or _not_an_object_in_a_form(case)
        ):
            checks = [check for check in checks if check is not negative_data_rejection]
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (AssertionError, FailureGroup) as failure:  # kept with its reproduction
            text = f"{mode.value}: {failure}"
            if len(outcome.failures) < 5 and text not in outcome.failures:
                outcome.failures.append(text)

    if seed_value is not None:
        example = seed(seed_value)(example)
    example()


def _only_query_negated(case: Any) -> bool:
    """Invalid query parameters alone: schemathesis counts an empty filter (`?organization=`)
    as invalid where the admin API reads it as absent, so whether such a request is refused is
    not checked here (tests/hardening/test_api_filters.py holds every filter to a 400 for a
    value it cannot read). It must still answer without a 5xx, with a documented status and
    body."""
    meta = case.meta
    if meta is None or not meta.is_negative_at(ParameterLocation.QUERY):
        return False
    return not (
        meta.is_negative_at(ParameterLocation.PATH) or meta.is_negative_at(ParameterLocation.BODY)
    )


@dataclass
class StatefulOutcome:
    scenarios: int = 0
    steps: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


def run_stateful(
    schema: Any, *, token: str, max_examples: int, max_steps: int, seed_value: int | None
) -> StatefulOutcome:
    """Sequences of calls along the links schemathesis infers from the document (an id one
    answer gives, used by the next call: create a role, then read, change, delete it). The
    document declares no links itself. Each scenario runs in a savepoint rolled back at its
    end; the checks are the stateless run's, on valid requests."""
    headers = {"Authorization": f"Bearer {token}"}
    outcome = StatefulOutcome()
    checks = [check for check in CHECKS if check is not negative_data_rejection]

    class AdminApi(schema.as_state_machine()):  # type: ignore[misc]
        def setup(self) -> None:
            outcome.scenarios += 1
            self.savepoint = transaction.savepoint()

        def teardown(self) -> None:
            transaction.savepoint_rollback(self.savepoint)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"headers": headers}

        def validate_response(self, response: Any, case: Any, **kwargs: Any) -> None:
            outcome.steps[f"{case.operation.label} {response.status_code}"] += 1
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except (AssertionError, FailureGroup) as failure:
                if len(outcome.failures) < 20 and str(failure) not in outcome.failures:
                    outcome.failures.append(str(failure))

    machine_settings = settings(
        max_examples=max_examples,
        stateful_step_count=max_steps,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
    )
    # Hypothesis runs a state machine derandomized or from its own entropy; a seed reaches it
    # as schemathesis's shuffle of which operation each scenario starts from.
    AdminApi.rule_order_seed = seed_value
    AdminApi.run(settings=machine_settings)
    return outcome


def _not_an_object_in_a_form(case: Any) -> bool:
    """A negated body sent form-encoded or multipart: those carry named fields only, so "a
    body that is not an object" arrives as no fields at all, which an operation whose fields
    are all optional rightly accepts (schemathesis's own serialization allowance misses
    multipart)."""
    meta = case.meta
    return bool(
        meta is not None
        and meta.is_negative_at(ParameterLocation.BODY)
        and case.media_type not in (None, "application/json")
    )


def summary(outcomes: dict[str, Outcome]) -> str:
    lines = []
    total_examples = sum(o.examples for o in outcomes.values())
    failing = {label: o for label, o in outcomes.items() if o.failures}
    lines.append(
        f"{len(outcomes)} operations, {total_examples} requests, "
        f"{len(failing)} operations with failures"
    )
    for label, outcome in sorted(outcomes.items()):
        statuses = ", ".join(f"{k} x{v}" for k, v in sorted(outcome.statuses.items()))
        mark = "FAIL" if outcome.failures else "ok  "
        lines.append(f"{mark} {label}  ({outcome.examples} in {outcome.seconds:.1f}s: {statuses})")
    for label, outcome in sorted(failing.items()):
        lines.append(f"\n=== {label}")
        lines.extend(outcome.failures)
    return "\n".join(lines)


def write_summary(outcomes: dict[str, Outcome]) -> None:
    """For benchmarks/schemathesis_long.py: the outcomes as JSON, where it asked."""
    path = os.environ.get(SUMMARY_ENV)
    if not path:
        return
    data = {
        label: {
            "examples": o.examples,
            "statuses": dict(o.statuses),
            "failures": o.failures,
            "seconds": round(o.seconds, 2),
        }
        for label, o in outcomes.items()
    }
    with open(path, "w") as out:
        json.dump(data, out, indent=1)


def write_stateful_summary(outcome: StatefulOutcome) -> None:
    path = os.environ.get(STATEFUL_SUMMARY_ENV)
    if not path:
        return
    data = {
        "scenarios": outcome.scenarios,
        "steps": dict(outcome.steps),
        "failures": outcome.failures,
    }
    with open(path, "w") as out:
        json.dump(data, out, indent=1)
