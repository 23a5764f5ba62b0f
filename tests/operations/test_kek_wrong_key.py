"""A web server started with a key-encryption key that cannot open the stored signing keys
(a wrong IDP_KEY_ENCRYPTION_KEY in a rollout, a restore without the old key;
docs/operations.md, "What the keys protect"): the production server answers the token
endpoint with 503 temporarily_unavailable and Retry-After (RFC 6749 §5.2), never a 500, and
its /readyz is 503 on the signing_keys check, so the pod gets no traffic and a rollout halts.
The JWKS is still served: public keys are stored in clear."""

from __future__ import annotations

import base64
import os
from typing import TYPE_CHECKING

import pytest
import requests
from django.conf import settings as django_settings

from apps.keys import keys
from apps.tokens.services import client_create
from tests.servers import production_web_server

if TYPE_CHECKING:  # imported at run time, pytest would try to collect it as a test class
    from tests.servers import TestServers


@pytest.mark.django_db(transaction=True)
def test_a_server_with_a_wrong_kek_refuses_tokens_with_503_and_is_not_ready(
    servers: TestServers,
) -> None:
    jwks = keys.jwks()  # the signing keys, sealed under the suite's key
    job, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    wrong = base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip("=")
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(django_settings.DATABASES["default"]["NAME"]),
        "IDP_KEY_ENCRYPTION_KEY": wrong,
        "IDP_WEB_WORKERS": "1",
        "IDP_LOG_LEVEL": "warning",
    }
    with production_web_server(env) as (_, url):
        token = requests.post(
            f"{url}/oauth/token",
            data={"grant_type": "client_credentials"},
            auth=(job.client_id, secret),
            timeout=30,
        )
        assert token.status_code == 503, token.text
        assert token.json()["error"] == "temporarily_unavailable"
        assert token.headers["Retry-After"] == "30"

        ready = requests.get(f"{url}/readyz", timeout=30)
        assert ready.status_code == 503, ready.text
        check = ready.json()["checks"]["signing_keys"]
        assert (check["status"], check["gates_readiness"]) == ("down", True)
        assert "IDP_KEY_ENCRYPTION_KEY" in check["detail"]

        served = requests.get(f"{url}/oauth/jwks", timeout=30)
        assert served.status_code == 200
        assert served.json() == jwks
