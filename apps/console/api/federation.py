"""The admin API's identity providers (issue 17): what the console's Identity providers pages
and the person page's linked identities show and do (apps.console.federation), through the
same services (apps.federation.providers). Staff read; administrators change providers
(AdministratorWrites, as clients); operators unlink a person's identity (OperatorWrites, as
every act on a person). A secret is written (client_secret), never returned.

Input is typed strictly: a string where a string is expected (not 12), JSON booleans, lists
and mappings of strings, every length bounded; a field the API does not know is refused, not
ignored, so a typo (`enable` for `enabled`) is a 400 rather than a silent no-op."""

from __future__ import annotations

import uuid
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import api_view, permission_classes
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from apps.console.api.directory import StrictText
from apps.console.api.serializers import StrictBoolean
from apps.console.api.views import FIELD_ERRORS, _call, _input
from apps.console.lookups import user_or_404, viewed_user_or_404
from apps.console.permissions import AdministratorWrites, OperatorWrites, StaffRead
from apps.federation import providers
from apps.federation.mapping import CLAIM_MAX, MAX_RULES, VALUE_MAX
from apps.federation.models import ClientAuthMethod, FederatedIdentity, Provider, ProviderKind
from apps.federation.selectors import identities_of

NOT_FOUND = OpenApiResponse(description='No such row: {"detail": "…"}.')


# --- what the API shows ---------------------------------------------------------------------


class IdentitySerializer(serializers.ModelSerializer[FederatedIdentity]):
    """An upstream identity linked to the person: who they are at the provider."""

    provider = serializers.CharField(source="provider.slug", help_text="The provider's slug.")
    provider_name = serializers.CharField(source="provider.name")
    provider_id = serializers.UUIDField()

    class Meta:
        model = FederatedIdentity
        fields = (
            "id", "provider", "provider_name", "provider_id", "subject", "email",
            "email_verified", "display", "created_at", "last_used_at",
        )  # fmt: skip


class IdentityListSerializer(serializers.Serializer[Any]):
    results = IdentitySerializer(many=True)


# --- a provider, both ways ---------------------------------------------------------------------


class ProviderSerializer(serializers.Serializer[Any]):
    """A provider as administrators write and read it (one shape both ways; the secret is
    write-only). What each value must be (an https issuer, a PEM key that loads, rules
    naming organizations that exist) is checked by apps.federation.providers, its message
    under the field."""

    id = serializers.UUIDField(read_only=True)
    slug = StrictText(max_length=63, help_text="In the callback URL: a-z, 0-9 and -.")
    name = StrictText(max_length=100, help_text='On the button: "Sign in with <name>".')
    kind = serializers.ChoiceField(choices=ProviderKind.choices)
    issuer = StrictText(
        max_length=500,
        required=False,
        allow_blank=True,
        help_text="OpenID Connect: the issuer URL. Empty: Google's or GitHub's own.",
    )
    client_id = StrictText(max_length=255)
    client_secret = StrictText(
        max_length=providers.SECRET_MAX,
        write_only=True,
        trim_whitespace=False,
        allow_blank=True,
        help_text="Write-only. private_key_jwt: the PEM private key. PATCH: empty or absent "
        "keeps the current one.",
    )
    client_auth_method = serializers.ChoiceField(
        choices=ClientAuthMethod.choices,
        required=False,
        default=ClientAuthMethod.CLIENT_SECRET_BASIC,
    )
    scopes = StrictText(
        max_length=500, required=False, allow_blank=True, help_text="Empty: the kind's default."
    )
    extra_params = serializers.DictField(
        child=StrictText(max_length=providers.EXTRA_PARAM_VALUE_MAX, allow_blank=True),
        required=False,
        help_text="Added to the authorization request; never the protocol's own parameters.",
    )
    use_userinfo = StrictBoolean(required=False, default=False)
    enabled = StrictBoolean(required=False, default=True)
    jit_provisioning = StrictBoolean(required=False, default=False)
    hosted_domains = serializers.ListField(
        child=StrictText(max_length=253), max_length=providers.DOMAINS_MAX, required=False
    )
    login_domains = serializers.ListField(
        child=StrictText(max_length=253), max_length=providers.DOMAINS_MAX, required=False
    )
    mapping_rules = serializers.ListField(
        child=serializers.DictField(
            child=StrictText(max_length=max(CLAIM_MAX, VALUE_MAX), allow_blank=True)
        ),
        max_length=MAX_RULES,
        required=False,
        help_text='[{"claim", "value", "organization" (slug), "role" (name)}]: the '
        "organizations named follow the claims at each sign-in.",
    )
    created_at = serializers.DateTimeField(read_only=True)
    updated_at = serializers.DateTimeField(read_only=True)
    linked = serializers.IntegerField(read_only=True, help_text="People linked through it.")


class ProviderListSerializer(serializers.Serializer[Any]):
    results = ProviderSerializer(many=True)


def _taken(request: Request, *, partial: bool) -> dict[str, Any]:
    """The body, checked: no field the API does not know, each known one typed."""
    given = ProviderSerializer(data=request.data, partial=partial)
    if isinstance(request.data, dict):
        writable = {name for name, field in given.fields.items() if not field.read_only}
        unknown = sorted(str(key)[:64] for key in request.data if key not in writable)
        if unknown:
            raise ValidationError(
                {key: ["This field is not a provider's, or cannot be written."] for key in unknown}
            )
    return _input(given)


def _view(provider: Provider, linked: int | None = None) -> dict[str, Any]:
    return {
        "id": provider.pk,
        **providers.provider_settings(provider),
        "created_at": provider.created_at,
        "updated_at": provider.updated_at,
        "linked": providers.provider_linked_count(provider) if linked is None else linked,
    }


def _provider_or_404(provider_id: uuid.UUID) -> Provider:
    found = providers.provider_find(str(provider_id))
    if found is None:
        raise Http404("No identity provider has this id.")
    return found


# --- providers ------------------------------------------------------------------------------


@extend_schema(
    methods=["GET"],
    operation_id="federation_providers_list",
    summary="Every identity provider, enabled or not, by name, with the people linked",
    responses=ProviderListSerializer,
)
@extend_schema(
    methods=["POST"],
    operation_id="federation_providers_create",
    summary="Add an identity provider; recorded as federation.provider_changed (never the "
    "secret) with the caller as actor",
    request=ProviderSerializer,
    responses={201: ProviderSerializer, 400: FIELD_ERRORS},
)
@api_view(["GET", "POST"])
@permission_classes([AdministratorWrites])
def federation_providers(request: Request) -> Response:
    if request.method == "POST":
        given = _taken(request, partial=False)
        created = _call(providers.provider_create, actor_id=request.user.pk, **given)
        return Response(ProviderSerializer(_view(created, 0)).data, status=201)
    rows = [_view(row.provider, row.linked) for row in providers.provider_list()]
    return Response(ProviderListSerializer({"results": rows}).data)


@extend_schema(
    methods=["GET"],
    operation_id="federation_providers_retrieve",
    responses={200: ProviderSerializer, 404: NOT_FOUND},
)
@extend_schema(
    methods=["PATCH"],
    operation_id="federation_providers_update",
    summary="Change an identity provider (any of its fields; enabled: false disables it; an "
    "empty or absent client_secret keeps it); recorded with before and after",
    request=ProviderSerializer(partial=True),
    responses={200: ProviderSerializer, 400: FIELD_ERRORS, 404: NOT_FOUND},
)
@extend_schema(
    methods=["DELETE"],
    operation_id="federation_providers_destroy",
    summary="Delete an identity provider nobody is linked through (409 otherwise: disable it)",
    responses={
        204: None,
        404: NOT_FOUND,
        409: OpenApiResponse(description='People are linked through it: {"detail": "…"}.'),
    },
)
@api_view(["GET", "PATCH", "DELETE"])
@permission_classes([AdministratorWrites])
def federation_provider(request: Request, provider_id: uuid.UUID) -> Response:
    found = _provider_or_404(provider_id)
    if request.method == "PATCH":
        changes = _taken(request, partial=True)
        _call(providers.provider_update, provider=found, actor_id=request.user.pk, **changes)
    elif request.method == "DELETE":
        try:
            providers.provider_delete(provider=found, actor_id=request.user.pk)
        except DjangoValidationError as refused:
            return Response({"detail": " ".join(refused.messages)}, status=409)
        return Response(status=status.HTTP_204_NO_CONTENT)
    return Response(ProviderSerializer(_view(found)).data)


# --- a person's linked identities -----------------------------------------------------------


@extend_schema(
    operation_id="users_identities_list",
    summary="The upstream identities linked to a user, oldest first (recorded as "
    "operator.viewed_user)",
    responses={200: IdentityListSerializer, 404: NOT_FOUND},
)
@api_view(["GET"])
@permission_classes([StaffRead])
def user_identities(request: Request, user_id: uuid.UUID) -> Response:
    user = viewed_user_or_404(request, user_id)
    found = identities_of(user_id=user.pk)
    return Response(IdentityListSerializer({"results": found}).data)


@extend_schema(
    operation_id="users_identities_destroy",
    summary="Unlink an upstream identity from a user: it no longer signs in to the account; "
    "recorded as federation.unlinked with the caller as actor. Sessions stay open.",
    responses={204: None, 404: NOT_FOUND},
)
@api_view(["DELETE"])
@permission_classes([OperatorWrites])
def user_identity(request: Request, user_id: uuid.UUID, identity_id: uuid.UUID) -> Response:
    user = user_or_404(user_id)
    identity = next((i for i in identities_of(user_id=user.pk) if i.pk == identity_id), None)
    if identity is None:
        raise Http404("This user has no linked identity with this id.")
    providers.identity_unlink(identity=identity, actor_id=request.user.pk, reason="operator")
    return Response(status=status.HTTP_204_NO_CONTENT)
