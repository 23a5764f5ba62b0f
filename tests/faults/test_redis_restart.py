"""Redis killed and started again under the production web server (issue 20, "Faults").

While Redis is down the revocation list is unknown, so every access token is refused (fail
closed: README "Sessions", docs/operations.md `revocation` check, IDP_REVOCATION_FAIL_OPEN
off): userinfo and introspection answer 503 temporarily_unavailable with Retry-After — not
401 invalid_token (RFC 6750 §3.1: the token is not known bad, and a relying party would drop
it and send the person to sign in again) nor {"active": false} (RFC 7662 §2.2, which a
resource server may cache, §4) — never the token's claims and never a 500. The credential
endpoints stay limited by the process's own stand-in (README "Rate limits": never unlimited).
Once Redis is back on the same port the same server accepts the token again, without a
restart (its subscriber reconnects and reloads the list: apps/core/revocation.py).

tests/core/test_revocation.py and tests/ratelimit/test_outage.py prove each half inside the
test process; this runs both through `python -m idp.web` on a Redis of the test's own.
"""

from __future__ import annotations

import signal
import time
from collections import Counter
from pathlib import Path

import pytest
import requests

from tests.faults.conftest import relying_party, sign_in_through, web_server
from tests.rp import PASSWORD
from tests.servers import Redis, wait_for


@pytest.mark.django_db(transaction=True)
def test_redis_killed_tokens_refused_limits_hold_and_service_resumes_without_restart(
    own_redis: Redis, test_database_env: dict[str, str], tmp_path: Path
) -> None:
    rp = relying_party(grant_types=["authorization_code", "refresh_token"])
    log = tmp_path / "web.log"
    env = {
        **test_database_env,
        "REDIS_URL": own_redis.url(0),
        # One process: the stand-in limiter's counters are per process (README "Rate limits").
        "IDP_WEB_WORKERS": "1",
        # The suite allows loopback past every limit (tests/servers.py); here the default
        # rules run, as in production.
        "IDP_RATELIMIT_ALLOW": "",
    }
    http = requests.Session()

    def userinfo(token: str) -> int:
        answer = http.get(
            f"{url}/oauth/userinfo", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        if answer.status_code == 503:  # RFC 9110 §15.6.4: when to try again
            assert answer.headers["Retry-After"] == "5", answer.headers
            assert answer.json()["error"] == "temporarily_unavailable", answer.text
            assert "WWW-Authenticate" not in answer.headers  # no challenge: not a bad token
        return answer.status_code

    def introspect(token: str) -> tuple[int, bool]:
        answer = http.post(
            f"{url}/oauth/introspect", data={"token": token},
            auth=(rp.client_id, rp.client_secret or ""), timeout=30,
        )  # fmt: skip
        if answer.status_code == 503:
            assert answer.headers["Retry-After"] == "5", answer.headers
            assert "active" not in answer.json(), answer.text
        return answer.status_code, answer.status_code == 200 and answer.json()["active"]

    def wrong_secret(client_id: str) -> int:
        answer = http.post(
            f"{url}/oauth/token", data={"grant_type": "client_credentials"},
            auth=(client_id, "wrong"), timeout=30,
        )  # fmt: skip
        return answer.status_code

    with web_server(env, log) as (process, url):
        token = sign_in_through(url, rp, email="ada@example.com", password=PASSWORD).tokens[
            "access_token"
        ]
        assert userinfo(token) == 200
        assert introspect(token) == (200, True)

        own_redis.stop(signal.SIGKILL)
        killed = time.monotonic()
        wait_for(lambda: userinfo(token) != 200, 30, "userinfo still accepts the token")
        refused_after = time.monotonic() - killed
        down: Counter[str] = Counter()
        for _ in range(20):  # fail closed, every time, at once
            started = time.monotonic()
            down[f"userinfo {userinfo(token)}"] += 1
            status, active = introspect(token)
            down[f"introspect {status} active={active}"] += 1
            assert time.monotonic() - started < 2, "a refusal waited on Redis"
        assert down == {"userinfo 503": 20, "introspect 503 active=False": 20}, down
        # client secrets: never unlimited, the lockout is kept in this process
        guesses = [wrong_secret("ghost") for _ in range(12)]
        assert guesses == [401] * 5 + [429] * 7, guesses

        own_redis.start()  # same port
        back = time.monotonic()
        wait_for(lambda: userinfo(token) == 200, 30, "userinfo did not accept the token again")
        resumed_after = time.monotonic() - back
        assert introspect(token) == (200, True)
        # the limiter is back on Redis: a client id it has not seen starts afresh
        wait_for(lambda: wrong_secret("ghost-2") == 401, 30, "the limiter did not return")
        assert process.poll() is None  # the same server throughout
    # The outage is logged once (README "Rate limits"); nothing else is an error, no traceback.
    errors = [line for line in log.read_text().splitlines() if '"level": "error"' in line]
    outage = [line for line in errors if "rate limits: Redis unreachable" in line]
    assert len(outage) == 1
    assert [line for line in errors if line not in outage] == [], errors[:5]
    print(
        f"redis_down_s={back - killed:.2f} refused_after_s={refused_after:.2f} "
        f"resumed_after_s={resumed_after:.2f} answers_while_down={dict(down)} "
        f"wrong_secrets_while_down={Counter(guesses)}"
    )
