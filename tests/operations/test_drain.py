"""Draining a web server (docs/operations.md, "Draining a web pod"): on SIGTERM the production
command (`python -m idp.web`, granian) stops taking connections, lets a request already in
progress finish, drains the audit journal and exits 0 within GRACEFUL_STOP_SECONDS (the
journal part is tests/core/test_journal.py). What Kubernetes adds before the signal (preStop)
is in deploy/kubernetes/base/web-deployment.yaml.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest
import yaml
from django.conf import settings as django_settings

from idp.web import GRACEFUL_STOP_SECONDS
from tests.servers import production_web_server

if TYPE_CHECKING:
    from tests.servers import TestServers

WEB_DEPLOYMENT = Path(__file__).resolve().parents[2] / "deploy/kubernetes/base/web-deployment.yaml"
BODY = b"grant_type=client_credentials&client_id=nobody"


def _refuses_connections(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return True
    return False


@pytest.mark.django_db(transaction=True)  # the child serves the test database
def test_sigterm_finishes_the_request_in_progress_then_exits(servers: TestServers) -> None:
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(django_settings.DATABASES["default"]["NAME"]),
        "IDP_WEB_WORKERS": "1",
        "IDP_LOG_LEVEL": "warning",
    }
    with production_web_server(env) as (server, url):
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        # A request in progress: its headers are in (Django is reading the body, a thread
        # held), half its body is not, when the signal comes.
        request = socket.create_connection((host, port), timeout=30)
        request.sendall(
            b"POST /oauth/token HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY[:10]
        )
        time.sleep(0.5)  # not synchronisation: the request must have been waiting a while
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        deadline = signalled + GRACEFUL_STOP_SECONDS
        while not _refuses_connections(host, port):
            assert time.monotonic() < deadline, "still taking new connections after SIGTERM"
            time.sleep(0.05)
        refusing_after = time.monotonic() - signalled
        request.sendall(BODY[10:])
        answer = b""
        while chunk := request.recv(65536):
            answer += chunk
        request.close()
        # RFC 6749 §5.2: an unknown client is invalid_client, answered in full after the stop.
        assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
        assert b"invalid_client" in answer
        assert server.wait(GRACEFUL_STOP_SECONDS + 5) == 0
        stopped_after = time.monotonic() - signalled
    print(
        f"new_connections_refused_after_s={refusing_after:.2f} exited_after_s={stopped_after:.2f}"
    )


def test_the_web_pods_grace_period_covers_the_pause_and_the_graceful_stop() -> None:
    # A pod is killed terminationGracePeriodSeconds after its deletion, preStop included: the
    # pause, then granian's GRACEFUL_STOP_SECONDS for requests and the journal, must fit.
    deployment = yaml.safe_load(WEB_DEPLOYMENT.read_text())
    spec = deployment["spec"]["template"]["spec"]
    (web,) = (container for container in spec["containers"] if container["name"] == "web")
    pause = web["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause >= 5  # endpoint removal reaching kube-proxy and the ingress takes seconds
    assert web["command"] == ["python", "-m", "idp.web"]  # the server the stop above is about
    assert spec["terminationGracePeriodSeconds"] >= pause + GRACEFUL_STOP_SECONDS + 5
