"""Fixtures of tests/tokens (a registered client, a signed-in browser that already consented),
shared with the fuzz tests; `person` and `rp` come from tests/rp.py for the whole suite."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis

from tests.servers import TestServers
from tests.tokens import conftest as tokens

register, signed_in, flow = tokens.register, tokens.signed_in, tokens.flow


@pytest.fixture
def fresh_redis(servers: TestServers) -> Iterator[Callable[[], None]]:
    """Empties the application Redis, for each example of a test that sends many requests:
    rate limits and lockouts (apps.ratelimit) would otherwise answer 429 after the first
    few dozen, and the examples after them would test the limiter only."""
    client = redis.Redis.from_url(servers.redis.url(0))
    yield client.flushdb
    client.close()
