"""Tessera on a three-node Redis Cluster (REDIS_URL=redis+cluster://...): a web process signs
people in (rate limits, failed-attempt lockout and threat history: Lua scripts whose keys share
a hash tag), issues tokens and mirrors revocations published from another process (PUBLISH
reaches every node of a cluster).

Redis Cluster specification, "Hash tags": a multi-key command or script must name keys of one
slot; Tessera's rate-limit keys are `tessera:{rl}:...` and its threat keys
`tessera:{threat}:...` there (apps.core.redis.key_prefix)."""

from __future__ import annotations

import re
import time

import pytest
import requests
from django.test import override_settings
from redis.cluster import RedisCluster

from apps.accounts.services import user_create
from apps.core.redis import parse_redis_url
from apps.core.revocation import revoke_jti
from apps.tokens.services import client_create
from tests.redis_ha.conftest import active, issue, jti, refused_after
from tests.rp import PASSWORD
from tests.servers import wait_for

DEADLINE = 30.0
CSRF_FIELD = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
LIMITED = {
    "IDP_RATELIMIT_ALLOW": "",
    "IDP_RATELIMIT_REVOKE_IP": "3/1h",
    "IDP_LOCKOUT_IP_THRESHOLD": "2",  # the (address, IP) counter locks at the second failure
}


def _sign_in(url: str, email: str, password: str) -> int:
    browser = requests.Session()
    page = browser.get(f"{url}/login", timeout=30)
    assert page.status_code == 200
    found = CSRF_FIELD.search(page.text)
    assert found, "no CSRF token on the login page"
    response = browser.post(
        f"{url}/login",
        data={"csrfmiddlewaretoken": found.group(1), "email": email, "password": password},
        allow_redirects=False, timeout=30,
    )  # fmt: skip
    return response.status_code


def _cluster(url: str) -> RedisCluster:
    host, port = parse_redis_url(url).nodes[0]
    return RedisCluster(host=host, port=port)


@pytest.mark.django_db(transaction=True)
def test_sign_in_tokens_limits_and_revocation_work_on_a_cluster(cluster_set, web_server) -> None:
    user_create(email="ada@example.com", password=PASSWORD)
    client, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    assert secret is not None
    cluster = _cluster(cluster_set.url())
    with web_server({"REDIS_URL": cluster_set.url(), **LIMITED}) as url:
        # Sign-in: evaluate.lua and done.lua (limits, lockout), history.lua (threat).
        assert _sign_in(url, "ada@example.com", PASSWORD) == 302
        assert _sign_in(url, "ada@example.com", "wrong") == 400
        assert _sign_in(url, "ada@example.com", "wrong again") == 400
        assert _sign_in(url, "ada@example.com", PASSWORD) == 429  # locked: not even hashed
        assert cluster.exists("tessera:{rl}:lock:login:ada@example.com:127.0.0.1")
        assert cluster.keys("tessera:{threat}:baseline:*")

        # Tokens, and a rate rule refusing the fourth request.
        token = issue(url, client.client_id, secret).json()["access_token"]
        assert active(url, client.client_id, secret, token)
        assert refused_after(url, 3) == [401, 401, 401, 429]
        assert cluster.exists("tessera:{rl}:revoke.ip:127.0.0.1")

        # A revocation from this process reaches the web process's mirror.
        with override_settings(REDIS_URL=cluster_set.url()):
            revoke_jti(jti(token), expires_in=600)
        published = time.monotonic()
        wait_for(lambda: not active(url, client.client_id, secret, token), DEADLINE, "active")
        took = time.monotonic() - published
        print(f"revocation through the cluster seen after {took * 1000:.0f} ms")
    cluster.close()
