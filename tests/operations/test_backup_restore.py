"""Backup and restore (docs/operations.md, "Backup and restore"): a pg_dump of the database,
restored into a fresh one, serves the same JWKS, accepts a token issued before the dump and
signs new ones with the same keys, given the same IDP_KEY_ENCRYPTION_KEY (the signing keys
are sealed under it) and IDP_SECRET_KEY (client secrets are keyed hashes under it).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import jwt
import psycopg
import pytest
import requests
from django.conf import settings as django_settings
from django.test import Client

from apps.tokens.services import client_create
from tests.servers import production_web_server

if TYPE_CHECKING:
    from tests.servers import TestServers


def _basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture
def restored_database(servers: TestServers) -> Iterator[str]:
    """The name of a fresh, empty database on the suite's PostgreSQL, dropped afterwards."""
    name = f"restored_{uuid.uuid4().hex[:12]}"
    admin = servers.postgres.url("postgres")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db(transaction=True)
def test_a_restored_dump_serves_the_same_jwks_and_accepts_earlier_tokens(
    client: Client, servers: TestServers, restored_database: str, tmp_path: Path
) -> None:
    job, secret = client_create(name="Job", redirect_uris=[], grant_types=["client_credentials"])
    assert secret is not None
    auth = _basic(job.client_id, secret)
    issued = client.post(
        "/oauth/token", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=auth
    )
    assert issued.status_code == 200, issued.content
    token = issued.json()["access_token"]
    jwks_before = json.loads(client.get("/oauth/jwks").content)
    assert jwks_before["keys"], "no signing key published before the dump"

    # The backup: pg_dump's custom format of the whole database, then pg_restore into a new,
    # empty one (what a restore onto a new server does).
    bindir, postgres = servers.postgres.bindir, servers.postgres
    connect = ["-h", "127.0.0.1", "-p", str(postgres.port), "-U", postgres.user]
    dump = tmp_path / "tessera.dump"
    started = time.perf_counter()
    subprocess.run(
        [str(bindir / "pg_dump"), *connect, "--format=custom", "--file", str(dump),
         django_settings.DATABASES["default"]["NAME"]],
        check=True, capture_output=True,
    )  # fmt: skip
    dumped = time.perf_counter()
    subprocess.run(
        [str(bindir / "pg_restore"), *connect, "--no-owner", "--exit-on-error",
         "--dbname", restored_database, str(dump)],
        check=True, capture_output=True,
    )  # fmt: skip
    restored = time.perf_counter()

    # The production server on the restored database, with this suite's keys (its KEK is the
    # data dir's, its secret key the environment's: the same the dump was made under). With
    # another IDP_SECRET_KEY the JWKS is the same but the client's secret no longer verifies.
    env = {
        **os.environ,
        "DATABASE_URL": postgres.url(restored_database),
        "IDP_WEB_WORKERS": "1",
        "IDP_LOG_LEVEL": "warning",
    }
    with production_web_server(env) as (_, url):
        served = requests.get(f"{url}/oauth/jwks", timeout=30)
        assert served.status_code == 200
        assert served.json() == jwks_before

        # RFC 7662: the token issued before the dump is active on the restored server.
        found = requests.post(
            f"{url}/oauth/introspect",
            data={"token": token},
            headers={"Authorization": auth},
            timeout=30,
        )
        assert found.status_code == 200, found.text
        assert found.json()["active"] is True
        assert found.json()["client_id"] == job.client_id

        # The restored private keys open and sign: a new token carries the same kid.
        again = requests.post(
            f"{url}/oauth/token",
            data={"grant_type": "client_credentials"},
            headers={"Authorization": auth},
            timeout=30,
        )
        assert again.status_code == 200, again.text
        new_kid = jwt.get_unverified_header(again.json()["access_token"])["kid"]
        assert new_kid == jwt.get_unverified_header(token)["kid"]
    print(
        f"dump_bytes={dump.stat().st_size} pg_dump_s={dumped - started:.2f} "
        f"pg_restore_s={restored - dumped:.2f}"
    )
