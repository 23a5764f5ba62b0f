"""What schemathesis found in the admin API (tests/schema/test_admin_api_schema.py), each
pinned by a focused test of its own."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client as HttpClient

from apps.accounts.models import User
from apps.accounts.services import user_create
from apps.federation.providers import provider_create
from apps.tokens.services import client_create
from tests.accounts.factories import OrganizationFactory
from tests.console.conftest import access_token, bearer
from tests.rp import PASSWORD

pytestmark = pytest.mark.django_db

OPERATION_METHODS = ("get", "put", "post", "patch", "delete")


@pytest.fixture
def api(db) -> HttpClient:
    administrator = user_create(
        email="ops@example.com", password=PASSWORD, staff_role="administrator"
    )
    return HttpClient(headers=bearer(access_token(administrator, "openid admin")))


@pytest.fixture
def document(api) -> dict[str, Any]:
    """The OpenAPI document as /api/schema/ serves it."""
    response = api.get("/api/schema/?format=json")
    assert response.status_code == 200
    served: dict[str, Any] = json.loads(response.content)
    return served


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, item[method])
        for path, item in document["paths"].items()
        for method in OPERATION_METHODS
        if method in item
    ]


def test_every_operation_documents_the_errors_every_operation_may_answer(document) -> None:
    # An id in the path can be unknown (404); a query or a body can be wrong (400); any call
    # can lack credentials (401) or rights (403), or meet the per-IP limit (429).
    undocumented = []
    for method, path, operation in _operations(document):
        expected = {"401", "403", "429"}
        if "{" in path:
            expected.add("404")
        has_query = any(p["in"] == "query" for p in operation.get("parameters", []))
        if "requestBody" in operation or has_query:
            expected.add("400")
        if "requestBody" in operation:
            expected |= {"413", "415"}
        missing = expected - set(operation["responses"])
        if missing:
            undocumented.append(f"{method} {path}: {sorted(missing)}")
    assert not undocumented
    assert len(_operations(document)) >= 95


def test_unknown_ids_answer_the_documented_404(api, document) -> None:
    path = "/api/v1/users/{user_id}"
    assert "404" in document["paths"][path]["get"]["responses"]

    response = api.get("/api/v1/users/3f2a6c1e-0000-4000-8000-000000000001")

    assert response.status_code == 404


def test_deleting_a_client_answers_the_200_its_document_says(api, document) -> None:
    responses = document["paths"]["/api/v1/clients/{client_id}"]["delete"]["responses"]
    assert "200" in responses
    assert "204" not in responses
    client_create(name="Shop", redirect_uris=["https://shop.example.com/cb"], client_id="shop")

    response = api.delete("/api/v1/clients/shop")

    assert response.status_code == 200
    assert response.json()["client_id"] == "shop"


def test_a_provider_auth_method_is_documented_with_the_providers_values(api, document) -> None:
    # The upstream provider's client_auth_method was documented with the enum of a client's
    # token_endpoint_auth_method (tls_client_auth …), which no provider ever answers.
    schemas = document["components"]["schemas"]
    field = schemas["Provider"]["properties"]["client_auth_method"]
    enum_name = (field.get("$ref") or field["allOf"][0]["$ref"]).rsplit("/", 1)[1]
    provider_create(
        actor_id=None,
        slug="acme",
        name="Acme SSO",
        kind="oidc",
        issuer="https://sso.acme.example",
        client_id="tessera",
        client_secret="upstream-secret-value",
    )

    answered = api.get("/api/v1/federation/providers").json()["results"][0]

    assert answered["client_auth_method"] == "client_secret_basic"
    assert answered["client_auth_method"] in schemas[enum_name]["enum"]


def test_a_form_body_without_mfa_required_changes_nothing(api) -> None:
    # DRF reads a boolean missing from a form-encoded body as false: an empty form PUT
    # lifted the requirement (schemathesis: a schema-violating request accepted).
    ada = user_create(email="ada@example.com", password=PASSWORD)
    path = f"/api/v1/users/{ada.pk}/mfa-required"
    assert api.put(path, {"mfa_required": True}, content_type="application/json").json()["changed"]

    response = api.put(path, "", content_type="application/x-www-form-urlencoded")

    assert response.status_code == 400
    assert list(response.json()) == ["mfa_required"]
    assert User.objects.get(pk=ada.pk).mfa_required is True


def test_a_bulk_request_without_csv_answers_the_documented_400(api, document) -> None:
    refused = document["components"]["schemas"]["BulkRefused"]
    organization = OrganizationFactory()

    bulk = f"/api/v1/organizations/{organization.pk}/members/bulk"
    response = api.post(bulk, {}, content_type="application/json")

    assert response.status_code == 400
    body = response.json()
    assert list(body) == ["csv"]
    assert set(refused.get("required", [])) <= set(body)  # the documented shape holds


def test_a_body_of_a_media_type_the_api_does_not_read_answers_the_documented_415(
    api, document
) -> None:
    assert "415" in document["paths"]["/api/v1/ratelimit/blocks/clear"]["post"]["responses"]

    response = api.post("/api/v1/ratelimit/blocks/clear", "kind=ip", content_type="text/plain")

    assert response.status_code == 415
