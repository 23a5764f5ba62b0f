from __future__ import annotations

import sys
from argparse import ArgumentParser
from typing import Any, TextIO

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from apps.accounts.models import StaffRole, User
from apps.accounts.services import staff_role_set, user_create


class Command(BaseCommand):
    help = (
        "Create an account and print its id. Passwords come on stdin, never in argv. With "
        "--staff-role (or --staff) and an address that has an account already, give that "
        "account the role instead (so a provisioning script may run it twice)."
    )
    stealth_options = ("stdin",)

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--email", required=True, help="the account's email address")
        parser.add_argument("--name", default="", help="the person's display name")
        parser.add_argument(
            "--password-stdin",
            action="store_true",
            help="read the password from standard input (without it: no usable password)",
        )
        parser.add_argument(
            "--email-verified",
            action="store_true",
            help="the address is known to be the person's (e.g. from a directory the operator "
            "trusts): no verification mail; without it the person verifies it as at sign-up",
        )
        parser.add_argument(
            "--staff-role",
            choices=StaffRole.values,
            default="",
            help="staff with this console role: viewer (reads), operator (also sessions, "
            "lockouts, memberships), administrator (also clients, keys, roles, staff)",
        )
        parser.add_argument(
            "--staff",
            action="store_true",
            help="the same as --staff-role administrator (what --staff meant before roles)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        password = None
        if options["password_stdin"]:
            password = _read_password(options.get("stdin") or sys.stdin)
        role = options["staff_role"] or (StaffRole.ADMINISTRATOR if options["staff"] else "")
        try:
            existing = User.objects.filter(email__iexact=options["email"].strip()).first()
            if existing is not None and role and password is None and not options["name"]:
                # Recorded as user.changed with no actor: the command line's operator.
                staff_role_set(user=existing, role=role, actor_id=None)
                user = existing
            else:
                user = user_create(
                    email=options["email"],
                    name=options["name"],
                    password=password,
                    staff_role=role,
                    email_verified=options["email_verified"],
                )
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(str(user.id))


def _read_password(stream: TextIO) -> str:
    password = stream.read()
    if password.endswith("\n"):  # the one newline `echo` or a here-string adds
        password = password[:-1].removesuffix("\r")
    if not password:
        raise CommandError("--password-stdin: no password on standard input.")
    return password
