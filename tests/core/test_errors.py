"""Unknown URLs and failures answer in the client's format, never with a stack trace."""

from __future__ import annotations

import pytest
from django.urls import path


def _explode(request):
    raise RuntimeError("secret internal detail")


urlpatterns = [path("explode", _explode)]
handler500 = "apps.core.views.server_error"


@pytest.mark.django_db
def test_unknown_url_gives_json_404_to_json_clients(client) -> None:
    response = client.get("/no/such/page", HTTP_ACCEPT="application/json")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["error"] == "not_found"
    assert body["request_id"] == response["X-Request-ID"]


@pytest.mark.django_db
def test_unknown_url_gives_html_404_to_browsers(client) -> None:
    response = client.get("/no/such/page", HTTP_ACCEPT="text/html,application/xhtml+xml")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert b"Error 404" in response.content
    assert b"Traceback" not in response.content


@pytest.mark.urls("tests.core.test_errors")
@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_server_error_hides_the_exception(client, accept) -> None:
    client.raise_request_exception = False

    response = client.get("/explode", HTTP_ACCEPT=accept)

    assert response.status_code == 500
    assert b"secret internal detail" not in response.content
    assert b"Traceback" not in response.content
    assert response["X-Request-ID"].encode() in response.content


@pytest.mark.django_db
def test_nul_in_basic_credentials_is_refused_but_a_jwt_sent_as_basic_is_not_mistaken_for_one(
    client,
) -> None:
    import base64

    nul = base64.b64encode(b"abc\x00def:secret").decode()
    # base64url text decodes leniently into bytes that may hold a NUL: it must not count
    jwt_like = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.AAAA-_AA__--"

    refused = client.get("/healthz", headers={"Authorization": f"Basic {nul}"})
    passed = client.get("/healthz", headers={"Authorization": f"Basic {jwt_like}"})

    assert refused.status_code == 400
    assert passed.status_code == 200
