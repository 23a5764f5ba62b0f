"""Writing upstream providers (apps/federation/providers.py): the secret sealed under the
key-encryption key and bound to its row, every field checked with a message naming it, each
change recorded before/after without the secret, and every process told once it commits."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from django.core.exceptions import ValidationError
from django.test import override_settings

from apps.accounts.models import StaffRole
from apps.core import sealing
from apps.core.cache import CHANNEL
from apps.core.events import EventType
from apps.federation import selectors
from apps.federation.models import FederatedIdentity, Provider
from apps.federation.providers import (
    identity_unlink,
    provider_create,
    provider_delete,
    provider_secret,
    provider_set_enabled,
    provider_update,
)
from tests.accounts.factories import OrganizationFactory, RoleFactory, UserFactory
from tests.events import recorded

pytestmark = pytest.mark.django_db

SECRET = "s3cr3t-from-the-upstream"


@pytest.fixture
def admin():
    return UserFactory(is_staff=True, staff_role=StaffRole.ADMINISTRATOR)


def _create(admin: Any, **fields: Any) -> Provider:
    values = {
        "slug": "acme",
        "name": "Acme SSO",
        "kind": "oidc",
        "issuer": "https://sso.acme.example",
        "client_id": "tessera",
        "client_secret": SECRET,
    } | fields
    return provider_create(actor_id=admin.pk, **values)


def _errors(raised: pytest.ExceptionInfo[ValidationError]) -> dict[str, str]:
    return {field: " ".join(messages) for field, messages in raised.value.message_dict.items()}


def _pem(key: Any) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


# --- the secret ------------------------------------------------------------------------------


def test_the_secret_is_sealed_at_rest_and_opens_for_its_row(admin) -> None:
    provider = _create(admin)
    stored = Provider.objects.get(pk=provider.pk)
    assert SECRET.encode() not in bytes(stored.sealed_secret)
    assert stored.kek_id == sealing.current_kek_id()
    assert provider_secret(stored) == SECRET


def test_a_sealed_secret_copied_to_another_row_does_not_open(admin) -> None:
    # The AAD names the row: a value moved by someone with write access to the table is
    # refused rather than used as the other provider's credential.
    first = _create(admin)
    second = _create(admin, slug="other", name="Other", client_secret="another secret")
    Provider.objects.filter(pk=second.pk).update(
        sealed_secret=bytes(first.sealed_secret), kek_id=first.kek_id
    )
    with pytest.raises(sealing.SealAltered):
        provider_secret(Provider.objects.get(pk=second.pk))


def test_update_keeps_the_secret_when_none_is_given_and_replaces_it_when_one_is(admin) -> None:
    provider = _create(admin)
    with recorded() as events:
        provider_update(provider=provider, actor_id=admin.pk, name="Acme", client_secret="")
    assert provider_secret(Provider.objects.get(pk=provider.pk)) == SECRET
    [event] = events
    assert event.metadata["secret_changed"] is False
    assert event.metadata["changed"] == ["name"]
    with recorded() as events:
        provider_update(provider=provider, actor_id=admin.pk, client_secret="rotated upstream")
    assert provider_secret(Provider.objects.get(pk=provider.pk)) == "rotated upstream"
    [event] = events
    assert event.metadata["secret_changed"] is True
    assert event.metadata["changed"] == []
    assert "rotated upstream" not in str(event.metadata)


def test_giving_the_same_secret_again_changes_nothing(admin) -> None:
    provider = _create(admin)
    with recorded() as events:
        provider_update(provider=provider, actor_id=admin.pk, client_secret=SECRET)
    assert events == []


def test_private_key_jwt_takes_an_rsa_or_p256_key_and_nothing_weaker(admin) -> None:
    rsa_key = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    provider = _create(admin, client_auth_method="private_key_jwt", client_secret=rsa_key)
    assert provider_secret(provider) == rsa_key
    p256 = _pem(ec.generate_private_key(ec.SECP256R1()))
    _create(admin, slug="ec", client_auth_method="private_key_jwt", client_secret=p256)

    weak = _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505 - the weak key refused
    p384 = _pem(ec.generate_private_key(ec.SECP384R1()))
    for secret, expected in (
        (weak, "at least 2048 bits (1024 given)"),
        (p384, "EC P-256"),
        ("not a key", "unencrypted PEM private key"),
    ):
        with pytest.raises(ValidationError) as raised:
            _create(admin, slug="weak", client_auth_method="private_key_jwt", client_secret=secret)
        assert expected in _errors(raised)["client_secret"]


def test_switching_to_private_key_jwt_needs_the_key(admin) -> None:
    provider = _create(admin)
    with pytest.raises(ValidationError) as raised:
        provider_update(provider=provider, actor_id=admin.pk, client_auth_method="private_key_jwt")
    assert "private key in PEM" in _errors(raised)["client_secret"]
    assert Provider.objects.get(pk=provider.pk).client_auth_method == "client_secret_basic"


# --- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"slug": "Acme SSO"}, "slug", "lower-case letters"),
        ({"slug": "link"}, "slug", "reserved"),
        ({"slug": ""}, "slug", "required"),
        ({"name": " "}, "name", "required"),
        ({"name": "x" * 101}, "name", "at most 100"),
        ({"kind": "saml"}, "kind", "one of oidc, github, google"),
        ({"issuer": ""}, "issuer", "needs its issuer URL"),
        ({"issuer": "http://sso.acme.example"}, "issuer", "https://"),
        ({"issuer": "https://sso.acme.example/?tenant=1"}, "issuer", "no query or fragment"),
        ({"issuer": "https://user:pw@sso.acme.example"}, "issuer", "no user name"),
        ({"issuer": "https://sso.acme.example:99999"}, "issuer", "not a URL"),
        ({"issuer": "ftp://sso.acme.example"}, "issuer", "https://"),
        ({"client_id": ""}, "client_id", "required"),
        ({"client_secret": ""}, "client_secret", "required"),
        ({"client_secret": "two\nlines"}, "client_secret", "control characters"),
        ({"client_auth_method": "none"}, "client_auth_method", "one of"),
        ({"scopes": "email profile"}, "scopes", "include openid"),
        ({"scopes": 'openid "quoted"'}, "scopes", "RFC 6749 §3.3"),
        ({"extra_params": {"state": "x"}}, "extra_params", "protocol's own parameter"),
        ({"extra_params": {"Redirect_URI": "x"}}, "extra_params", "protocol's own parameter"),
        ({"extra_params": {"prompt": 1}}, "extra_params", "is text"),
        ({"extra_params": {"prompt": {"nested": "x"}}}, "extra_params", "is text"),
        ({"extra_params": ["prompt"]}, "extra_params", "mapping"),
        ({"enabled": "yes"}, "enabled", "true or false"),
        ({"hosted_domains": ["acme.example"]}, "hosted_domains", "Only a Google provider"),
        ({"login_domains": ["not a domain"]}, "login_domains", "not a domain name"),
        ({"login_domains": "acme.example"}, "login_domains", "list of domain names"),
        ({"mapping_rules": [{"claim": "groups"}]}, "mapping_rules", "Rule 1: value"),
        ({"mapping_rules": "groups"}, "mapping_rules", "a list"),
    ],
)
def test_each_wrong_field_is_named_with_what_to_do(admin, fields, field, message) -> None:
    with pytest.raises(ValidationError) as raised:
        _create(admin, **fields)
    errors = _errors(raised)
    assert message in errors[field], errors
    assert not Provider.objects.exists()


def test_several_wrong_fields_are_named_at_once(admin) -> None:
    with pytest.raises(ValidationError) as raised:
        _create(admin, slug="Bad Slug", kind="saml", client_id="")
    assert {"slug", "kind", "client_id"} <= set(_errors(raised))


def test_github_and_google_have_their_issuers_and_scopes_by_default(admin) -> None:
    github = _create(admin, slug="github", name="GitHub", kind="github", issuer="")
    google = _create(admin, slug="google", name="Google", kind="google", issuer="")
    assert (github.issuer, github.scopes) == ("https://github.com", "read:user user:email")
    assert (google.issuer, google.scopes) == ("https://accounts.google.com", "openid email profile")
    with pytest.raises(ValidationError) as raised:
        _create(admin, slug="gh", kind="github", client_auth_method="private_key_jwt")
    assert "not private_key_jwt" in _errors(raised)["client_auth_method"]


def test_an_http_issuer_is_taken_only_on_loopback_when_the_setting_allows(admin) -> None:
    with override_settings(FEDERATION_ALLOW_LOOPBACK_HTTP=True):
        provider = _create(admin, issuer="http://127.0.0.1:8123")
        assert provider.issuer == "http://127.0.0.1:8123"
        with pytest.raises(ValidationError) as raised:
            _create(admin, slug="remote", issuer="http://sso.acme.example")
        assert "https://" in _errors(raised)["issuer"]
    with override_settings(FEDERATION_ALLOW_LOOPBACK_HTTP=False):
        with pytest.raises(ValidationError) as raised:
            _create(admin, slug="local", issuer="http://localhost:8123")
        assert "IDP_FEDERATION_ALLOW_LOOPBACK_HTTP" in _errors(raised)["issuer"]


def test_the_slug_and_a_login_domain_belong_to_one_provider(admin) -> None:
    _create(admin, login_domains=["Acme.Example"])
    with pytest.raises(ValidationError) as raised:
        _create(admin, name="Again")
    assert "exists already" in _errors(raised)["slug"]
    with pytest.raises(ValidationError) as raised:
        _create(admin, slug="other", login_domains=["acme.example"])
    assert "acme.example is already a login domain of Acme SSO" in _errors(raised)["login_domains"]


def test_update_refuses_fields_it_does_not_know(admin) -> None:
    provider = _create(admin)
    with pytest.raises(ValidationError) as raised:
        provider_update(provider=provider, actor_id=admin.pk, sealed_secret=b"x")
    assert "cannot be changed" in _errors(raised)["sealed_secret"]


def test_mapping_rules_name_an_existing_organization_and_a_role_usable_there(admin) -> None:
    acme = OrganizationFactory(slug="acme")
    RoleFactory(name="member")  # built-in
    other = OrganizationFactory(slug="other")
    RoleFactory(organization=other, name="auditor")
    rule = {"claim": "groups", "value": "staff", "organization": "acme", "role": "member"}
    provider = _create(admin, mapping_rules=[rule])
    assert provider.mapping_rules == [rule]
    for wrong, message in (
        ({"organization": "gone"}, "Rule 1: no organization has the slug “gone”"),
        ({"role": "auditor"}, f"Rule 1: “{acme.name}” has no role “auditor”"),
        ({"claim": ""}, "Rule 1: claim is a non-empty string"),
        ({"extra": "x"}, "Rule 1: unknown key “extra”"),
    ):
        with pytest.raises(ValidationError) as raised:
            provider_update(provider=provider, actor_id=admin.pk, mapping_rules=[rule | wrong])
        assert message in _errors(raised)["mapping_rules"]


# --- events and the cache ---------------------------------------------------------------------


def test_create_records_the_provider_without_its_secret(admin) -> None:
    with recorded() as events:
        provider = _create(admin, extra_params={"prompt": "select_account"})
    [event] = events
    assert event.event_type == EventType.FEDERATION_PROVIDER_CHANGED
    assert event.action == "created"
    assert event.actor_id == str(admin.pk)
    assert (event.resource_type, event.resource_id) == ("provider", str(provider.pk))
    assert event.metadata["before"] is None
    assert event.metadata["after"]["issuer"] == "https://sso.acme.example"
    assert event.metadata["after"]["extra_params"] == {"prompt": "select_account"}
    assert event.metadata["secret_changed"] is True
    assert SECRET not in str(event.metadata)
    assert "sealed_secret" not in event.metadata["after"]


def test_update_records_only_what_changed(admin) -> None:
    provider = _create(admin)
    with recorded() as events:
        provider_update(
            provider=provider, actor_id=admin.pk, name="Acme", scopes="openid email groups"
        )
    [event] = events
    assert event.action == "updated"
    assert event.metadata["changed"] == ["name", "scopes"]
    assert event.metadata["before"] == {"name": "Acme SSO", "scopes": "openid email profile"}
    assert event.metadata["after"] == {"name": "Acme", "scopes": "openid email groups"}
    assert provider.name == "Acme"  # the caller's instance follows
    with recorded() as events:
        provider_update(provider=provider, actor_id=admin.pk, name="Acme")
    assert events == []


def test_enable_and_disable_are_recorded_once_and_the_sign_in_list_follows(admin) -> None:
    provider = _create(admin)
    assert [p.slug for p in selectors.providers_enabled()] == ["acme"]
    with recorded() as events:
        provider_set_enabled(provider=provider, enabled=False, actor_id=admin.pk)
        provider_set_enabled(provider=provider, enabled=False, actor_id=admin.pk)
    [event] = events
    assert event.action == "disabled"
    assert (event.metadata["before"], event.metadata["after"]) == (
        {"enabled": True},
        {"enabled": False},
    )
    # This process stops serving its cached list at once (publish_on_commit).
    assert selectors.providers_enabled() == ()
    provider_set_enabled(provider=provider, enabled=True, actor_id=admin.pk)
    assert [p.slug for p in selectors.providers_enabled()] == ["acme"]


def test_a_change_is_published_to_every_process_once_it_commits(
    admin, redis_client, django_capture_on_commit_callbacks
) -> None:
    pubsub = redis_client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    try:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            provider = _create(admin)
        assert pubsub.get_message(timeout=0.2) is None  # not before the commit
        for callback in callbacks:
            callback()
        message = pubsub.get_message(timeout=2.0)
        assert message is not None
        assert message["data"] == f"{selectors.CACHE_NAME} *".encode()
        with django_capture_on_commit_callbacks(execute=True):
            provider_delete(provider=provider, actor_id=admin.pk)
        message = pubsub.get_message(timeout=2.0)
        assert message is not None
        assert message["data"] == f"{selectors.CACHE_NAME} *".encode()
    finally:
        pubsub.close()


# --- delete, linked identities, unlink ---------------------------------------------------------


def test_delete_is_refused_while_people_are_linked(admin) -> None:
    provider = _create(admin)
    person = UserFactory()
    identity = FederatedIdentity.objects.create(user=person, provider=provider, subject="u-1")
    with recorded() as events, pytest.raises(ValidationError) as raised:
        provider_delete(provider=provider, actor_id=admin.pk)
    assert "1 person is linked through Acme SSO; disable it instead" in raised.value.messages[0]
    assert events == []
    assert Provider.objects.filter(pk=provider.pk).exists()

    with recorded() as events:
        identity_unlink(identity=identity, actor_id=admin.pk, reason="operator")
        identity_unlink(identity=identity, actor_id=admin.pk, reason="operator")  # gone: no-op
    [event] = events
    assert event.event_type == EventType.FEDERATION_UNLINKED
    assert (event.user_id, event.actor_id) == (str(person.pk), str(admin.pk))
    assert event.metadata == {"provider": "acme", "subject": "u-1", "reason": "operator"}

    with recorded() as events:
        provider_delete(provider=provider, actor_id=admin.pk)
    [event] = events
    assert event.action == "deleted"
    assert event.resource_id == str(provider.pk)
    assert event.metadata["before"]["slug"] == "acme"
    assert event.metadata["after"] is None
    assert not Provider.objects.filter(pk=provider.pk).exists()


def test_issuer_and_kind_stay_while_people_are_linked(admin) -> None:
    # OIDC Core §5.7: sub is unique only within its issuer; another issuer's "u-1" is
    # someone else, who must not sign in to this person's account.
    provider = _create(admin)
    FederatedIdentity.objects.create(user=UserFactory(), provider=provider, subject="u-1")
    with pytest.raises(ValidationError) as raised:
        provider_update(provider=provider, actor_id=admin.pk, issuer="https://evil.example")
    assert "Create a new provider instead" in _errors(raised)["issuer"]
    with pytest.raises(ValidationError) as raised:
        provider_update(provider=provider, actor_id=admin.pk, kind="github", scopes="user:email")
    assert "Create a new provider instead" in _errors(raised)["kind"]
    assert Provider.objects.get(pk=provider.pk).issuer == "https://sso.acme.example"


def test_a_secret_sealed_under_an_old_key_encryption_key_still_opens_and_is_resealed_on_change(
    admin, settings
) -> None:
    provider = _create(admin)
    old = settings.KEY_ENCRYPTION_KEY
    settings.KEY_ENCRYPTION_KEY = bytes(32)  # rotated: the old key kept to open what it sealed
    settings.KEY_ENCRYPTION_KEYS_OLD = [old]
    stored = Provider.objects.get(pk=provider.pk)
    assert stored.kek_id == sealing.kek_id(old)
    assert provider_secret(stored) == SECRET
    provider_update(provider=stored, actor_id=admin.pk, client_secret="after rotation")
    assert stored.kek_id == sealing.kek_id(bytes(32))
    assert provider_secret(Provider.objects.get(pk=provider.pk)) == "after rotation"
