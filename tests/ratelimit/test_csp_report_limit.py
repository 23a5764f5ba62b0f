"""CSP violation reports (/csp-report) are limited per client IP: anyone may post them, and
each one is an audit event."""

from __future__ import annotations

import json

import pytest

from tests.core.test_csp_reports import LEVEL2
from tests.ratelimit.conftest import set_rule

pytestmark = pytest.mark.django_db


def _post(client, **extra):
    return client.post(
        "/csp-report", json.dumps(LEVEL2), content_type="application/csp-report", **extra
    )


def test_reports_are_rate_limited_per_ip(client, settings) -> None:
    set_rule(settings, "csp_report.ip", "3/1m burst=3")

    statuses = [_post(client).status_code for _ in range(5)]
    other_ip = _post(client, REMOTE_ADDR="198.51.100.9")

    assert statuses[:3] == [204, 204, 204]
    assert statuses[3:] == [429, 429]
    assert other_ip.status_code == 204
