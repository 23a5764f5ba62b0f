"""`manage.py directory`: provisioning through the directory services, idempotent, with JSON
output and a non-zero exit on bad input (issue 13)."""

from __future__ import annotations

import io
import json
from typing import TYPE_CHECKING

import pytest
from django.core.management import CommandError, call_command

from apps.accounts.models import Organization, OrganizationMembership, Role, Workspace
from apps.accounts.selectors import claims_preview
from apps.core.models import SecurityEvent
from tests.accounts.factories import UserFactory
from tests.accounts.test_createuser import run_manage

if TYPE_CHECKING:
    from tests.servers import TestServers

pytestmark = pytest.mark.django_db


def directory(*args: str) -> dict[str, str]:
    out = io.StringIO()
    call_command("directory", *args, "--json", stdout=out)
    answer: dict[str, str] = json.loads(out.getvalue())
    return answer


PROVISIONING = [
    ["org-create", "--slug", "acme", "--name", "Acme"],
    ["workspace-create", "--org", "acme", "--slug", "eng", "--name", "Engineering"],
    ["group-create", "--org", "acme", "--workspace", "eng", "--name", "on-call"],
    ["permission-create", "--resource", "documents", "--action", "read", "--scope", "workspace"],
    [
        "role-create", "--org", "acme", "--name", "editor", "--description", "Edits documents",
        "--permission", "documents:read:workspace", "--permission", "documents:write:workspace",
    ],
    ["member-add", "--email", "ada@example.com", "--org", "acme", "--role", "editor"],
    [
        "member-add", "--email", "ada@example.com", "--org", "acme", "--workspace", "eng",
        "--role", "editor",
    ],
    [
        "group-member-add", "--email", "ada@example.com", "--org", "acme", "--workspace", "eng",
        "--group", "on-call",
    ],
]  # fmt: skip


def test_a_provisioning_script_run_twice_changes_nothing_the_second_time() -> None:
    ada = UserFactory(email="ada@example.com")

    first = [directory(*step) for step in PROVISIONING]
    events = SecurityEvent.objects.filter(event_type="permission.changed").count()
    second = [directory(*step) for step in PROVISIONING]

    assert [answer["status"] for answer in first] == ["created"] * len(PROVISIONING)
    assert [answer["status"] for answer in second] == ["unchanged"] * len(PROVISIONING)
    assert [a["id"] for a in first] == [a["id"] for a in second]
    assert SecurityEvent.objects.filter(event_type="permission.changed").count() == events
    claims = claims_preview(user=ada)
    assert claims["orgs"][0]["role"] == "editor"
    assert len(claims["workspaces"]) == 1
    assert len(claims["groups"]) == 1
    assert {p["action"] for p in claims["perms"]} == {"read", "write"}


def test_a_run_with_other_values_changes_what_differs() -> None:
    UserFactory(email="ada@example.com")
    directory("org-create", "--slug", "acme", "--name", "Acme")
    directory("role-create", "--name", "viewer")
    directory("role-create", "--name", "owner")
    directory("member-add", "--email", "ada@example.com", "--org", "acme", "--role", "viewer")

    renamed = directory("org-create", "--slug", "acme", "--name", "Acme Corp")
    promoted = directory(
        "member-add", "--email", "ada@example.com", "--org", "acme", "--role", "owner"
    )
    role = directory("role-create", "--name", "owner", "--description", "Everything")

    assert [renamed["status"], promoted["status"], role["status"]] == ["changed"] * 3
    assert Organization.objects.get().name == "Acme Corp"
    assert OrganizationMembership.objects.get().role.name == "owner"
    assert Role.objects.get(name="owner").description == "Everything"


def test_plain_output_says_what_happened() -> None:
    out = io.StringIO()
    call_command("directory", "org-create", "--slug", "acme", "--name", "Acme", stdout=out)
    org = Organization.objects.get()
    assert out.getvalue().strip() == f"created: organization Acme ({org.pk})"


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["org-create", "--slug", "Acme!", "--name", "Acme"], "lower-case letters"),
        (["workspace-create", "--org", "nope", "--slug", "eng", "--name", "E"], "No organization"),
        (["role-create", "--name", "r", "--permission", "documents:read"], "resource:action:scope"),
        (["member-add", "--email", "x@example.com", "--org", "acme", "--role", "r"], "No account"),
        (["member-add", "--email", "ada@example.com", "--org", "acme", "--role", "r"], "no role"),
    ],
)
def test_bad_input_is_a_command_error_that_says_why(args: list[str], says: str) -> None:
    UserFactory(email="ada@example.com")
    Organization.objects.create(name="Acme", slug="acme")
    with pytest.raises(CommandError, match=says):
        directory(*args)
    assert not Workspace.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_process_exits_non_zero_with_one_line(servers: TestServers) -> None:
    result = run_manage(
        servers, "directory", "org-create", "--slug", "new", "--name", "New", "--json", stdin=""
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "CommandError: “new” is reserved; choose another slug.\n"

    result = run_manage(
        servers, "directory", "org-create", "--slug", "acme", "--name", "Acme", "--json", stdin=""
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "created"
