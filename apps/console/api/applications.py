"""The admin API's applications and keys (/api/v1/clients, /api/v1/keys): what the console's
pages do (apps.console.applications), through the same services (apps.tokens.clients_admin,
apps.keys.services). Staff read; administrators change (AdministratorWrites). Bad input is a
400 naming each field at fault, with the messages `createclient` gives."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.request import Request
from rest_framework.response import Response

from apps.console.api.serializers import StrictBoolean
from apps.console.api.views import FIELD_ERRORS, _call, _input, _valid
from apps.console.forms import ALG_CHOICES, ClientSearchForm
from apps.console.lookups import client_or_404
from apps.console.permissions import AdministratorWrites
from apps.keys.services import key_chains, keys_rotate_now
from apps.tokens import clients_admin, mtls
from apps.tokens.models import Client
from apps.tokens.resources import MAX_ALLOWED_RESOURCES, MAX_RESOURCE_LENGTH
from apps.tokens.services import GRANT_TYPES

# RFC 8705 client metadata (RFC 7591 §2 token_endpoint_auth_method and jwks; §2.1.2 subject
# identifiers; §3.4 tls_client_certificate_bound_access_tokens)
MTLS_FIELDS = (
    "token_endpoint_auth_method", *mtls.IDENTIFIERS, "jwks",
    "tls_client_certificate_bound_access_tokens",
)  # fmt: skip
_AUTH_METHOD_HELP = (
    'Blank: a client secret. "tls_client_auth": a certificate of the client CA naming the one '
    'identifier given (RFC 8705 section 2.1); "self_signed_tls_client_auth": one of the '
    "certificates in jwks x5c (section 2.2). Confidential clients only; they get no secret."
)


def _uri() -> serializers.CharField:
    return serializers.CharField(max_length=2000)


class ClientSerializer(serializers.ModelSerializer[Client]):
    """An OAuth client's registration (never its secret: only a hash is kept)."""

    public = serializers.SerializerMethodField()
    grant_types = serializers.SerializerMethodField()
    redirect_uris = serializers.SerializerMethodField()
    post_logout_redirect_uris = serializers.SerializerMethodField()
    skip_consent = serializers.BooleanField(source="skip_authorization")
    id_token_alg = serializers.CharField(source="id_token_signed_response_alg")
    disabled = serializers.SerializerMethodField()
    allowed_scopes = serializers.SerializerMethodField()
    allowed_resources = serializers.SerializerMethodField()

    class Meta:
        model = Client
        fields: tuple[str, ...] = (
            "client_id", "name", "client_type", "public", "grant_types", "redirect_uris",
            "post_logout_redirect_uris", "skip_consent", "id_token_alg", "require_pkce",
            "require_mfa", "require_par", "backchannel_logout_uri", "frontchannel_logout_uri",
            "disabled", "disabled_at", "created", "updated", *MTLS_FIELDS, "allowed_scopes",
            "allowed_resources",
        )  # fmt: skip

    def get_public(self, client: Client) -> bool:
        return bool(client.client_type == Client.CLIENT_PUBLIC)

    def get_grant_types(self, client: Client) -> list[str]:
        return client.grant_types.split()

    def get_redirect_uris(self, client: Client) -> list[str]:
        return str(client.redirect_uris).split()

    def get_post_logout_redirect_uris(self, client: Client) -> list[str]:
        return str(client.post_logout_redirect_uris).split()

    def get_disabled(self, client: Client) -> bool:
        return client.disabled_at is not None

    def get_allowed_scopes(self, client: Client) -> list[str]:
        return client.allowed_scopes.split()

    def get_allowed_resources(self, client: Client) -> list[str]:
        return client.allowed_resources.split()


class ClientPageSerializer(serializers.Serializer[Any]):
    results = ClientSerializer(many=True)
    next = serializers.IntegerField(
        allow_null=True, help_text="Pass as `after` for the next page; null on the last page."
    )


_SCOPES_HELP = (
    "The scopes the client may be granted (OWASP ASVS 10.4.11): a request for one off the list "
    "is refused with invalid_scope. admin only for a first-party client, offline_access only "
    "with the refresh_token grant."
)
_RESOURCES_HELP = (
    "The absolute URIs the client may name as `resource` (RFC 8707), matched exactly; the "
    'default audience is always allowed. Empty: the default audience only; ["*"]: any '
    "absolute URI (what clients registered before the list were given)."
)


def _allowed_scopes(help_text: str = _SCOPES_HELP, **kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.ChoiceField(choices=list(settings.SCOPES)),
        max_length=len(settings.SCOPES),
        help_text=help_text,
        **kwargs,
    )


def _allowed_resources(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=serializers.CharField(max_length=MAX_RESOURCE_LENGTH),
        max_length=MAX_ALLOWED_RESOURCES,
        help_text=_RESOURCES_HELP,
        **kwargs,
    )


class ClientChangeSerializer(serializers.Serializer[Any]):
    """What an edit may change (PATCH: any subset). URIs are kept exactly as sent."""

    name = serializers.CharField(max_length=255)
    redirect_uris = serializers.ListField(child=_uri(), max_length=100)
    post_logout_redirect_uris = serializers.ListField(child=_uri(), max_length=100)
    grant_types = serializers.ListField(
        child=serializers.ChoiceField(choices=GRANT_TYPES), min_length=1, max_length=3
    )
    skip_consent = serializers.BooleanField(help_text="First-party: no consent page.")
    id_token_alg = serializers.ChoiceField(choices=[a for a, _ in ALG_CHOICES])
    require_pkce = serializers.BooleanField(
        help_text="False only for a confidential client whose library cannot do PKCE (its "
        "authorization requests must carry a nonce)."
    )
    require_mfa = StrictBoolean(
        help_text="Every authorization needs the MFA level (acr "
        "urn:tessera:acr:mfa or above); a person without a second factor enrols at sign-in."
    )
    require_par = StrictBoolean(
        help_text="Every authorization request must be pushed to /oauth/par first (RFC 9126 "
        "section 6); an unpushed one gets invalid_request."
    )
    backchannel_logout_uri = serializers.CharField(max_length=2000, allow_blank=True)
    frontchannel_logout_uri = serializers.CharField(max_length=2000, allow_blank=True)
    token_endpoint_auth_method = serializers.ChoiceField(
        choices=Client.AuthMethod.choices, allow_blank=True, help_text=_AUTH_METHOD_HELP
    )
    tls_client_auth_subject_dn = serializers.CharField(
        max_length=1000, allow_blank=True, help_text="RFC 4514, e.g. CN=billing,O=Example,C=DE"
    )
    tls_client_auth_san_dns = serializers.CharField(max_length=255, allow_blank=True)
    tls_client_auth_san_uri = serializers.CharField(max_length=2000, allow_blank=True)
    tls_client_auth_san_ip = serializers.CharField(max_length=45, allow_blank=True)
    tls_client_auth_san_email = serializers.CharField(max_length=254, allow_blank=True)
    jwks = serializers.JSONField(
        allow_null=True, help_text='A JWK Set {"keys": [...]} whose keys carry x5c certificates.'
    )
    tls_client_certificate_bound_access_tokens = StrictBoolean(
        help_text="Every access token is bound to the client's certificate: a token request "
        "without one is refused (RFC 8705 section 3)."
    )
    allowed_scopes = _allowed_scopes()
    allowed_resources = _allowed_resources()


class ClientRegistrationSerializer(ClientChangeSerializer):
    """A registration: `createclient`'s options, with its defaults."""

    redirect_uris = serializers.ListField(child=_uri(), max_length=100, default=list)
    post_logout_redirect_uris = serializers.ListField(child=_uri(), max_length=100, default=list)
    grant_types = serializers.ListField(
        child=serializers.ChoiceField(choices=GRANT_TYPES),
        min_length=1,
        max_length=3,
        default=["authorization_code", "refresh_token"],
    )
    skip_consent = serializers.BooleanField(default=False)
    id_token_alg = serializers.ChoiceField(choices=[a for a, _ in ALG_CHOICES], default="RS256")
    require_pkce = serializers.BooleanField(default=True)
    require_mfa = StrictBoolean(default=False)
    require_par = StrictBoolean(default=False)
    backchannel_logout_uri = serializers.CharField(max_length=2000, allow_blank=True, default="")
    frontchannel_logout_uri = serializers.CharField(max_length=2000, allow_blank=True, default="")
    token_endpoint_auth_method = serializers.ChoiceField(
        choices=Client.AuthMethod.choices, allow_blank=True, default="", help_text=_AUTH_METHOD_HELP
    )
    tls_client_auth_subject_dn = serializers.CharField(
        max_length=1000, allow_blank=True, default="", help_text="RFC 4514"
    )
    tls_client_auth_san_dns = serializers.CharField(max_length=255, allow_blank=True, default="")
    tls_client_auth_san_uri = serializers.CharField(max_length=2000, allow_blank=True, default="")
    tls_client_auth_san_ip = serializers.CharField(max_length=45, allow_blank=True, default="")
    tls_client_auth_san_email = serializers.CharField(max_length=254, allow_blank=True, default="")
    jwks = serializers.JSONField(allow_null=True, default=None)
    tls_client_certificate_bound_access_tokens = StrictBoolean(default=False)
    allowed_scopes = _allowed_scopes(
        required=False,
        help_text=f"{_SCOPES_HELP} Absent: what the registration implies (openid profile email "
        "with authorization_code, offline_access with refresh_token too, admin when "
        "first-party).",
    )
    allowed_resources = _allowed_resources(default=list)
    public = serializers.BooleanField(default=False, help_text="No secret; PKCE only.")
    client_id = serializers.CharField(
        required=False, max_length=100, help_text="Chosen id (migrations); generated if absent."
    )


class ClientRegisteredSerializer(ClientSerializer):
    client_secret = serializers.CharField(
        allow_null=True,
        help_text="In clear, this once (null for a public client or one authenticating with its "
        "certificate); only its hash is kept.",
    )

    class Meta(ClientSerializer.Meta):
        fields = (*ClientSerializer.Meta.fields, "client_secret")


class SecretSerializer(serializers.Serializer[Any]):
    client_id = serializers.CharField()
    client_secret = serializers.CharField(
        help_text="In clear, this once; the previous secret no longer works."
    )


class ClientDeletedSerializer(serializers.Serializer[Any]):
    client_id = serializers.CharField()
    refresh_tokens_revoked = serializers.IntegerField()
    access_tokens_revoked = serializers.IntegerField(
        help_text="Stored access tokens put on the revocation list."
    )
    offline_grants_ended = serializers.IntegerField()
    sessions_told = serializers.IntegerField(
        help_text="Live sessions whose back-channel Logout Token is queued to the client."
    )


class KeySerializer(serializers.Serializer[Any]):
    kid = serializers.CharField(help_text="RFC 7638 thumbprint; the JWS header's kid.")
    alg = serializers.CharField()
    generation = serializers.IntegerField()
    state = serializers.ChoiceField(choices=["next", "active", "retired"])
    created_at = serializers.DateTimeField(help_text="Published in the JWKS from then.")
    activates_at = serializers.DateTimeField(help_text="Signs from then.")
    retired_at = serializers.DateTimeField(allow_null=True, help_text="Stopped signing then.")
    published_until = serializers.DateTimeField(
        allow_null=True, help_text="Leaves the JWKS then (its last token has expired)."
    )


class KeyChainSerializer(serializers.Serializer[Any]):
    alg = serializers.CharField()
    keys = KeySerializer(many=True, help_text="Newest first.")


@extend_schema(
    methods=["GET"],
    operation_id="clients_list",
    summary=f"OAuth clients, newest first, {clients_admin.CLIENT_PAGE_SIZE} a page",
    parameters=[
        OpenApiParameter("q", str, description="A client id (exact) or part of a name."),
        OpenApiParameter("after", int, description="The `next` value of the previous page."),
    ],
    responses={200: ClientPageSerializer, 400: FIELD_ERRORS},
)
@extend_schema(
    methods=["POST"],
    operation_id="clients_register",
    summary="Register a client (the rules of `manage.py createclient`); the secret is in "
    "this answer only",
    request=ClientRegistrationSerializer,
    responses={201: ClientRegisteredSerializer, 400: FIELD_ERRORS},
)
@api_view(["GET", "POST"])
@permission_classes([AdministratorWrites])
def clients(request: Request) -> Response:
    if request.method == "POST":
        registration = _input(ClientRegistrationSerializer(data=request.data))
        client, secret = _call(
            clients_admin.client_register, actor_id=request.user.pk, **registration
        )
        body = {**ClientSerializer(client).data, "client_secret": secret}
        return Response(body, status=status.HTTP_201_CREATED)
    form = _valid(ClientSearchForm(request.query_params))
    page = clients_admin.client_page(query=form.cleaned_data["q"], after=form.cleaned_data["after"])
    return Response(
        {"results": ClientSerializer(page.clients, many=True).data, "next": page.next_cursor}
    )


@extend_schema(methods=["GET"], summary="One client", responses=ClientSerializer)
@extend_schema(
    methods=["PATCH"],
    summary="Change a client's registration (any of the fields; the type and id stay)",
    request=ClientChangeSerializer,
    responses={200: ClientSerializer, 400: FIELD_ERRORS},
)
@extend_schema(
    methods=["DELETE"],
    summary="Delete a client: its refresh tokens revoked and deleted, its stored access "
    "tokens on the revocation list, its offline grants ended, its live sessions told over "
    "back-channel logout",
    responses={200: ClientDeletedSerializer},
)
@api_view(["GET", "PATCH", "DELETE"])
@permission_classes([AdministratorWrites])
def client(request: Request, client_id: str) -> Response:
    found = client_or_404(client_id)
    if request.method == "PATCH":
        changes = _input(ClientChangeSerializer(data=request.data, partial=True))
        _call(clients_admin.client_update, client=found, actor_id=request.user.pk, **changes)
    elif request.method == "DELETE":
        deleted = clients_admin.client_delete(client=found, actor_id=request.user.pk)
        return Response(ClientDeletedSerializer(deleted).data)
    return Response(ClientSerializer(found).data)


@extend_schema(
    operation_id="clients_secret_rotate",
    summary="A new secret for a confidential client, in this answer only; the old one stops "
    "working at once",
    request=None,
    responses={200: SecretSerializer, 400: FIELD_ERRORS},
)
@api_view(["POST"])
@permission_classes([AdministratorWrites])
def client_secret_rotate(request: Request, client_id: str) -> Response:
    found = client_or_404(client_id)
    secret = _call(clients_admin.client_secret_rotate, client=found, actor_id=request.user.pk)
    return Response({"client_id": found.client_id, "client_secret": secret})


@extend_schema(
    operation_id="clients_disable",
    summary="Disable a client: refused everywhere, its stored access tokens revoked, its "
    "refresh tokens kept for when it is enabled (no change if it was disabled)",
    request=None,
    responses=ClientSerializer,
)
@api_view(["POST"])
@permission_classes([AdministratorWrites])
def client_disable(request: Request, client_id: str) -> Response:
    found = client_or_404(client_id)
    clients_admin.client_disable(client=found, actor_id=request.user.pk)
    return Response(ClientSerializer(found).data)


@extend_schema(
    operation_id="clients_enable",
    summary="Enable a disabled client again (no change if it was not disabled)",
    request=None,
    responses=ClientSerializer,
)
@api_view(["POST"])
@permission_classes([AdministratorWrites])
def client_enable(request: Request, client_id: str) -> Response:
    found = client_or_404(client_id)
    clients_admin.client_enable(client=found, actor_id=request.user.pk)
    return Response(ClientSerializer(found).data)


@extend_schema(
    operation_id="keys_list",
    summary="Signing keys per algorithm, newest first, with state (next, active, retired) "
    "and dates",
    responses=inline_serializer("KeyChainList", {"results": KeyChainSerializer(many=True)}),
)
@api_view(["GET"])
@permission_classes([AdministratorWrites])
def keys(request: Request) -> Response:
    return Response({"results": KeyChainSerializer(key_chains(), many=True).data})


@extend_schema(
    operation_id="keys_rotate",
    summary="Rotate every algorithm's key now: new keys publish and sign at once; the old "
    "ones stop signing and stay in the JWKS until their tokens have expired",
    request=None,
    responses=inline_serializer("KeysRotated", {"created": KeySerializer(many=True)}),
)
@api_view(["POST"])
@permission_classes([AdministratorWrites])
def keys_rotate(request: Request) -> Response:
    created = keys_rotate_now(actor_id=request.user.pk)
    return Response({"created": KeySerializer(created, many=True).data})
