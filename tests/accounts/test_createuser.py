"""`manage.py createuser`: accounts from the command line, passwords on stdin only."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from apps.accounts.models import User
from apps.core.models import SecurityEvent

if TYPE_CHECKING:
    from tests.servers import TestServers

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.django_db


def createuser(*args: str, stdin: str = "") -> str:
    out = io.StringIO()
    call_command("createuser", *args, stdin=io.StringIO(stdin), stdout=out)
    return out.getvalue().strip()


def test_createuser_prints_the_new_users_id() -> None:
    printed = createuser("--email", "Ada@Example.com", "--name", "Ada Lovelace")

    user = User.objects.get(id=uuid.UUID(printed))
    assert (user.email, user.name) == ("ada@example.com", "Ada Lovelace")
    assert not user.is_staff
    assert SecurityEvent.objects.get().resource_id == printed


def test_password_from_stdin_loses_exactly_one_trailing_newline() -> None:
    printed = createuser(
        "--email", "ada@example.com", "--password-stdin", stdin="a long passphrase \n\n"
    )

    user = User.objects.get(id=printed)
    assert user.check_password("a long passphrase \n")
    assert not user.check_password("a long passphrase ")


def test_password_from_stdin_without_a_newline_is_taken_as_it_is() -> None:
    printed = createuser(
        "--email", "ada@example.com", "--password-stdin", stdin="a long passphrase"
    )

    assert User.objects.get(id=printed).check_password("a long passphrase")


def test_password_from_stdin_ending_in_crlf_loses_the_whole_line_ending() -> None:
    printed = createuser(
        "--email", "ada@example.com", "--password-stdin", stdin="a long passphrase\r\n"
    )

    assert User.objects.get(id=printed).check_password("a long passphrase")


def test_without_password_stdin_the_account_has_no_usable_password() -> None:
    printed = createuser("--email", "ada@example.com", stdin="ignored passphrase\n")

    assert not User.objects.get(id=printed).has_usable_password()


def test_email_verified_flag_marks_the_address_proven_and_only_with_it() -> None:
    verified = createuser("--email", "ada@example.com", "--email-verified")
    unverified = createuser("--email", "grace@example.com")

    assert User.objects.get(id=verified).email_verified is True
    assert User.objects.get(id=unverified).email_verified is False


def test_staff_flag_makes_a_staff_user_who_is_not_a_superuser() -> None:
    printed = createuser("--email", "operator@example.com", "--staff")

    user = User.objects.get(id=printed)
    assert user.is_staff
    assert not user.is_superuser


def test_empty_stdin_is_refused_rather_than_read_as_a_password() -> None:
    with pytest.raises(CommandError, match="no password on standard input"):
        createuser("--email", "ada@example.com", "--password-stdin", stdin="\n")

    assert not User.objects.exists()


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("--email", "nobody"), "", "“nobody” is not a valid email address."),
        (
            ("--email", "ada@example.com", "--password-stdin"),
            "short\n",
            "Use at least 12 characters (this one has 5). A few unrelated words make a long "
            "password that is easy to remember.",
        ),
    ],
)
def test_invalid_input_is_a_command_error_with_the_reason(
    args: tuple[str, ...], stdin: str, message: str
) -> None:
    with pytest.raises(CommandError) as error:
        createuser(*args, stdin=stdin)

    assert str(error.value) == message
    assert not User.objects.exists()


def test_taken_email_is_a_command_error() -> None:
    createuser("--email", "ada@example.com")

    with pytest.raises(CommandError, match="already exists"):
        createuser("--email", "ADA@example.com")
    assert User.objects.count() == 1


def run_manage(servers: TestServers, *args: str, stdin: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": servers.postgres.url(settings.DATABASES["default"]["NAME"]),
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.mark.django_db(transaction=True)
def test_createuser_process_reads_the_password_from_a_pipe(servers: TestServers) -> None:
    result = run_manage(
        servers,
        "createuser",
        "--email",
        "ada@example.com",
        "--password-stdin",
        stdin="a long passphrase\n",
    )

    assert result.returncode == 0, result.stderr
    user = User.objects.get(id=uuid.UUID(result.stdout.strip()))
    assert user.check_password("a long passphrase")


@pytest.mark.django_db(transaction=True)
def test_createuser_process_fails_with_one_line_and_no_traceback(servers: TestServers) -> None:
    User.objects.create_user(email="ada@example.com")

    result = run_manage(servers, "createuser", "--email", "Ada@example.com", stdin="")

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == "CommandError: An account with this email address already exists.\n"
    assert User.objects.count() == 1
