"""The rate-limit tests run the default rules: the suite's loopback allow list
(tests/servers.py, for unrelated tests) is cleared here."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest

from apps.ratelimit import limiter
from apps.ratelimit.rules import rules_reload


@pytest.fixture(autouse=True)
def real_limits(settings: Any) -> Iterator[None]:
    settings.RATELIMIT_ALLOW = ()
    rules_reload()
    limiter.outage.since = None
    limiter.outage.retry_at = 0.0
    limiter.local_store.entries.clear()
    yield
    rules_reload()
    limiter.outage.since = None
    limiter.outage.retry_at = 0.0
    limiter.local_store.entries.clear()


def set_rule(settings: Any, name: str, spec: str) -> None:
    """One rule changed for a test (parsed as the environment would be)."""
    import os

    from idp import env

    os.environ["IDP_RATELIMIT_TEST_RULE"] = spec
    try:
        settings.RATELIMIT_RULES = {
            **settings.RATELIMIT_RULES,
            name: env.rate("IDP_RATELIMIT_TEST_RULE", "off"),
        }
    finally:
        del os.environ["IDP_RATELIMIT_TEST_RULE"]
    rules_reload()


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()
