"""`manage.py federation_provider` (issue 17: providers are data, also for a script): every
field as a flag, the secret from a file or standard input only, JSON output, and one line
naming the field with exit status 1 for bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.core.management import CommandError, call_command

from apps.core.models import SecurityEvent
from apps.federation.models import FederatedIdentity, Provider
from apps.federation.providers import provider_secret
from tests.accounts.factories import OrganizationFactory, RoleFactory, UserFactory
from tests.accounts.test_createuser import run_manage

if TYPE_CHECKING:
    from tests.servers import TestServers

pytestmark = pytest.mark.django_db


def federation_provider(*args: str, stdin: str | None = None) -> Any:
    out = io.StringIO()
    extra = {} if stdin is None else {"stdin": io.StringIO(stdin)}
    call_command("federation_provider", *args, "--json", stdout=out, **extra)
    return json.loads(out.getvalue())


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret"
    path.write_text("from-the-upstream-console\n")
    return path


ADD = ["add", "--slug", "acme", "--name", "Acme SSO", "--kind", "oidc", "--client-id", "tessera"]


def test_add_takes_every_field_and_the_secret_from_a_file(secret_file) -> None:
    OrganizationFactory(slug="acme")
    RoleFactory(name="member")
    answer = federation_provider(
        *ADD,
        "--issuer", "https://sso.acme.example",
        "--client-secret-file", str(secret_file),
        "--client-auth-method", "client_secret_post",
        "--scopes", "openid email groups",
        "--extra-param", "prompt=select_account",
        "--login-domain", "acme.example",
        "--mapping-rule", "groups", "staff", "acme", "member",
        "--use-userinfo",
        "--jit-provisioning",
        "--no-enabled",
    )  # fmt: skip
    assert answer["status"] == "created"
    provider = Provider.objects.get(pk=answer["id"])
    # The file's one trailing newline is not part of the secret.
    assert provider_secret(provider) == "from-the-upstream-console"
    assert answer == {
        "status": "created",
        "id": str(provider.pk),
        "slug": "acme",
        "name": "Acme SSO",
        "kind": "oidc",
        "issuer": "https://sso.acme.example",
        "client_id": "tessera",
        "client_auth_method": "client_secret_post",
        "scopes": "openid email groups",
        "extra_params": {"prompt": "select_account"},
        "use_userinfo": True,
        "enabled": False,
        "jit_provisioning": True,
        "hosted_domains": [],
        "login_domains": ["acme.example"],
        "mapping_rules": [
            {"claim": "groups", "value": "staff", "organization": "acme", "role": "member"}
        ],
        "linked": 0,
    }
    assert "from-the-upstream-console" not in json.dumps(answer)


def test_edit_changes_what_is_given_and_keeps_the_secret_without_one(secret_file) -> None:
    federation_provider(
        *ADD, "--issuer", "https://sso.acme.example", "--client-secret-file", str(secret_file)
    )
    answer = federation_provider("edit", "acme", "--name", "Acme", "--extra-param", "prompt=login")
    assert answer["status"] == "changed"
    assert (answer["name"], answer["extra_params"]) == ("Acme", {"prompt": "login"})
    provider = Provider.objects.get(slug="acme")
    assert provider_secret(provider) == "from-the-upstream-console"
    again = federation_provider("edit", "acme", "--name", "Acme")
    assert again["status"] == "unchanged"
    cleared = federation_provider("edit", str(provider.pk), "--clear-extra-params")
    assert cleared["extra_params"] == {}
    rotated = federation_provider("edit", "acme", "--client-secret-stdin", stdin="rotated\n")
    assert rotated["status"] == "changed"
    assert provider_secret(Provider.objects.get(slug="acme")) == "rotated"


def test_list_enable_disable_and_delete(secret_file) -> None:
    federation_provider(
        *ADD, "--issuer", "https://sso.acme.example", "--client-secret-file", str(secret_file)
    )
    github = federation_provider(
        "add", "--slug", "github", "--name", "GitHub", "--kind", "github", "--client-id", "Iv1",
        "--client-secret-file", str(secret_file),
    )  # fmt: skip
    assert github["issuer"] == "https://github.com"
    FederatedIdentity.objects.create(
        user=UserFactory(), provider=Provider.objects.get(slug="github"), subject="583231"
    )
    listed = federation_provider("list")
    assert [(row["slug"], row["linked"]) for row in listed] == [("acme", 0), ("github", 1)]

    assert federation_provider("disable", "github")["status"] == "disabled"
    assert federation_provider("disable", "github")["status"] == "unchanged"
    assert federation_provider("enable", "github")["status"] == "enabled"
    with pytest.raises(CommandError, match="1 person is linked through GitHub; disable it"):
        federation_provider("delete", "github")
    assert federation_provider("delete", "acme")["status"] == "deleted"
    assert list(Provider.objects.values_list("slug", flat=True)) == ["github"]
    actions = list(
        SecurityEvent.objects.filter(event_type="federation.provider_changed")
        .order_by("occurred_at")
        .values_list("action", flat=True)
    )
    assert actions == ["created", "created", "disabled", "enabled", "deleted"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "oidc", "--slug", "Bad Slug"], "slug: Use 2-63 lower-case letters"),
        (["--issuer", "http://sso.acme.example"], "issuer: An issuer is an https:// URL"),
        (["--extra-param", "state=x"], "extra_params: “state” is the protocol's own parameter"),
        (["--extra-param", "prompt"], "--extra-param 'prompt': write NAME=VALUE."),
        (["--mapping-rule", "groups", "staff", "nowhere", "member"], "mapping_rules: Rule 1"),
    ],
)
def test_bad_input_is_one_line_naming_the_field(secret_file, args, message) -> None:
    with pytest.raises(CommandError) as raised:
        federation_provider(
            *ADD,
            "--issuer",
            "https://sso.acme.example",
            "--client-secret-file",
            str(secret_file),
            *args,
        )
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert not Provider.objects.exists()


def test_an_unreadable_secret_file_or_an_empty_secret_is_named(tmp_path) -> None:
    with pytest.raises(CommandError, match="--client-secret-file: cannot read"):
        federation_provider(*ADD, "--client-secret-file", str(tmp_path / "missing"))
    with pytest.raises(CommandError, match="--client-secret-stdin: no secret"):
        federation_provider(*ADD, "--client-secret-stdin", stdin="\n")
    with pytest.raises(CommandError, match="No provider 'nope'"):
        federation_provider("enable", "nope")


@pytest.mark.django_db(transaction=True)
def test_the_process_reads_the_secret_from_a_pipe_and_fails_with_one_line(
    servers: TestServers,
) -> None:
    result = run_manage(
        servers,
        "federation_provider",
        *ADD,
        "--issuer",
        "https://sso.acme.example",
        "--client-secret-stdin",
        "--json",
        stdin="piped secret\n",
    )
    assert result.returncode == 0, result.stderr
    provider = Provider.objects.get(pk=json.loads(result.stdout)["id"])
    assert provider_secret(provider) == "piped secret"

    # No flag takes the secret itself (it would show in `ps`).
    result = run_manage(servers, "federation_provider", *ADD, "--client-secret", "x", stdin="")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr

    result = run_manage(
        servers,
        "federation_provider",
        "edit",
        "acme",
        "--issuer",
        "https://other.example",
        "--kind",
        "saml",
        stdin="",
    )
    assert result.returncode == 1
    assert result.stderr.startswith("CommandError: argument --kind: invalid choice: 'saml'")
    assert result.stderr.count("\n") == 1

    result = run_manage(
        servers, "federation_provider", "edit", "acme", "--scopes", "email", stdin=""
    )
    assert (result.returncode, result.stderr) == (
        1,
        "CommandError: scopes: An OpenID Connect provider's scopes include openid.\n",
    )
