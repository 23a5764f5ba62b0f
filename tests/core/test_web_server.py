"""The production web server as production starts it (idp.serve.web_server_argv: `python -m
idp.web`, granian) on the suite's database: what issue 11 asks of whichever server is chosen.

Slow clients do not starve it, request bodies are capped for every content type and framing,
over-long URLs and headers get the project's error, it terminates TLS 1.3 itself, and it keeps
one JSON access-log line per request with the request id.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.conf import settings

from apps.core.request_limits import MAX_HEADER_BYTES, MAX_URL_BYTES
from apps.tokens.services import client_create
from idp.serve import web_server_argv
from tests.servers import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
BODY_LIMIT = 1_048_576  # settings.MAX_REQUEST_BODY_BYTES's default


@dataclass
class WebServer:
    url: str
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    def log_lines(self) -> list[dict]:
        lines = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"not_json": line})
        return lines


def _healthz(url: str, **kwargs) -> int:
    try:
        return requests.get(f"{url}/healthz", timeout=5, **kwargs).status_code
    except requests.RequestException:
        return 0


def _start(tmp: Path, **extra_env: str) -> WebServer:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": _database_url(),
        "PORT": str(port),
        "IDP_WEB_WORKERS": "1",
        "IDP_LOG_LEVEL": "info",  # the suite's data dir: its collected static files
        **extra_env,
    }
    log = tmp / "web.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            web_server_argv(sys.executable), cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    scheme = "https" if "IDP_TLS_CERT_FILE" in extra_env else "http"
    return WebServer(f"{scheme}://127.0.0.1:{port}", port, log, process)


def _stop(server: WebServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def _database_url() -> str:
    from django.db import connection

    db = connection.settings_dict
    return f"postgresql://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.fixture(scope="module")
def web(servers, django_db_setup, django_db_blocker, tmp_path_factory) -> Iterator[WebServer]:
    server = _start(tmp_path_factory.mktemp("web"))
    try:
        wait_for(lambda: _healthz(server.url) == 200, 60, f"not serving: {server.log}")
        yield server
    finally:
        _stop(server)


@pytest.fixture
def service(transactional_db) -> tuple[str, str]:
    client, secret = client_create(
        name="web server test", redirect_uris=[], grant_types=["client_credentials"]
    )
    return client.client_id, secret


def test_production_command_is_granian_serving_the_wsgi_application(web) -> None:
    # The argv `make run`, deploy/ and this module start (idp/web.py).
    assert web_server_argv("python") == ["python", "-m", "idp.web"]
    assert requests.get(f"{web.url}/healthz", timeout=5).headers["server"] == "granian"


def test_clients_trickling_bodies_do_not_starve_the_server(web) -> None:
    # Ten clients that announce a body and send it one byte at a time: each holds a Django
    # thread while its body is read (WSGI reads block), never the server.
    stop = threading.Event()
    sockets = []
    for _ in range(10):
        sock = socket.create_connection(("127.0.0.1", web.port), timeout=5)
        sock.sendall(
            b"POST /oauth/token HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n"
        )
        sockets.append(sock)

    def trickle() -> None:
        while not stop.is_set():
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.sendall(b"a")
            stop.wait(0.1)

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    try:
        # Probe for 3 s of trickling: the ten reads start within the first of them.
        timings = []
        trickling_until = time.monotonic() + 3.0
        while time.monotonic() < trickling_until:
            started = time.monotonic()
            assert _healthz(web.url) == 200
            timings.append(time.monotonic() - started)
        assert max(timings) < 2.0, timings
    finally:
        stop.set()
        trickler.join(5)
        for sock in sockets:
            sock.close()


def test_a_20_mb_multipart_post_to_the_token_endpoint_is_refused_with_413(web, service) -> None:
    ok = requests.post(
        f"{web.url}/oauth/token", data={"grant_type": "client_credentials"}, auth=service,
        timeout=10,
    )  # fmt: skip
    assert ok.status_code == 200, ok.text  # the same request, small, is served

    response = requests.post(
        f"{web.url}/oauth/token",
        data={"grant_type": "client_credentials"},
        files={"upload": ("big.bin", b"\0" * 20_000_000)},
        auth=service,
        timeout=60,
    )

    assert response.status_code == 413
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "The request body is too large.",
    }


def test_a_chunked_body_over_the_limit_is_refused_and_one_under_it_is_read(web, service) -> None:
    def chunks(size: int) -> Iterator[bytes]:
        first = b"grant_type=client_credentials&pad="
        yield first
        left = size - len(first)
        while left > 0:
            yield b"a" * min(65536, left)
            left -= 65536

    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    big = requests.post(
        f"{web.url}/oauth/token", data=chunks(BODY_LIMIT + 100_000), headers=headers,
        auth=service, timeout=60,
    )  # fmt: skip
    small = requests.post(
        f"{web.url}/oauth/token", data=chunks(1000), headers=headers, auth=service, timeout=10
    )

    assert big.status_code == 413
    assert big.json()["error"] == "invalid_request"
    assert small.status_code == 200, small.text  # RFC 9112 §7.1: chunked is read, not dropped


def test_a_declared_length_over_the_limit_is_refused_for_any_content_type(web) -> None:
    for content_type in ("application/json", "text/plain", "application/octet-stream"):
        response = requests.post(
            f"{web.url}/api/v1/sessions", data=b"x" * (BODY_LIMIT + 1),
            headers={"Content-Type": content_type, "Accept": "application/json"}, timeout=30,
        )  # fmt: skip
        assert response.status_code == 413, content_type
        assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("path", "accept", "kind"),
    [
        ("/oauth/authorize", "text/html", "oauth-json"),  # /oauth/: always the OAuth JSON
        ("/console/", "text/html", "html"),
        ("/console/", "application/json", "json"),
    ],
)
def test_an_over_long_url_gets_the_projects_error(web, path, accept, kind) -> None:
    response = requests.get(
        f"{web.url}{path}?q={'a' * (MAX_URL_BYTES + 10)}", headers={"Accept": accept}, timeout=10
    )

    assert response.status_code == 414
    _assert_project_error(response, kind)


@pytest.mark.parametrize("path", ["/oauth/token", "/console/"])
def test_an_over_long_header_gets_the_projects_error(web, path) -> None:
    response = requests.get(
        f"{web.url}{path}",
        headers={"X-Padding": "a" * (MAX_HEADER_BYTES + 10), "Accept": "application/json"},
        timeout=10,
    )

    assert response.status_code == 431
    _assert_project_error(response, "oauth-json" if path.startswith("/oauth/") else "json")


def _assert_project_error(response: requests.Response, kind: str) -> None:
    if kind == "html":
        assert response.headers["Content-Type"].startswith("text/html")
        assert f"Error {response.status_code}" in response.text
        assert response.headers["X-Request-ID"] in response.text
        return
    body = response.json()
    assert body["error"] == "invalid_request"
    assert body["error_description"]
    if kind == "json":
        assert body["request_id"] == response.headers["X-Request-ID"]


def test_every_request_has_one_json_access_log_line_with_its_request_id(web) -> None:
    ids = [
        requests.get(f"{web.url}/healthz", timeout=5).headers["X-Request-ID"],
        requests.get(f"{web.url}/no/such/page", timeout=5).headers["X-Request-ID"],
    ]

    def access_lines() -> list[dict]:
        return [
            line for line in web.log_lines()
            if line.get("logger") == "tessera.access" and line.get("request_id") in ids
        ]  # fmt: skip

    wait_for(lambda: len(access_lines()) == 2, 10, "access lines not written")
    assert sorted(line["status"] for line in access_lines()) == [200, 404]
    assert not [line for line in web.log_lines() if "not_json" in line]  # stdout is JSON lines


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    import ipaddress

    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _tls_status(port: int, context: ssl.SSLContext) -> tuple[int, str]:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return int(answer.split(b" ", 2)[1]), str(tls.version())


def test_it_terminates_tls_1_3_itself(servers, django_db_setup, tmp_path) -> None:
    cert, key = _self_signed(tmp_path)
    server = _start(tmp_path, IDP_TLS_CERT_FILE=str(cert), IDP_TLS_KEY_FILE=str(key))
    try:
        wait_for(lambda: _healthz(server.url, verify=str(cert)) == 200, 60, str(server.log))
        tls13 = ssl.create_default_context(cafile=str(cert))
        tls13.minimum_version = tls13.maximum_version = ssl.TLSVersion.TLSv1_3

        assert _tls_status(server.port, tls13) == (200, "TLSv1.3")

        tls12 = ssl.create_default_context(cafile=str(cert))
        tls12.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(ssl.SSLError):  # RFC 8446 only: an older client is turned away
            _tls_status(server.port, tls12)
    finally:
        _stop(server)


def test_settings_default_body_limit_is_what_these_tests_assume() -> None:
    assert settings.MAX_REQUEST_BODY_BYTES == BODY_LIMIT
