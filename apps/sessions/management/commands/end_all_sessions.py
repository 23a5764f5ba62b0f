from __future__ import annotations

import getpass
import sys
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.accounts.models import StaffRole, User
from apps.sessions.services import (
    END_EVERYONE_BATCH,
    sessions_end_everyone,
    sessions_live_count,
)

PHRASE = "end all sessions"


class Command(BaseCommand):
    help = (
        "End every session of every person now (incident response, e.g. a suspected "
        "compromise of the session store; OWASP ASVS 7.4.5): everyone is signed out, the "
        "tokens issued under their sessions stop working and relying parties are told over "
        "the back channel. Offline grants stay. Sessions end in batches, each its own "
        "transaction; run it again to finish a run that was cut short."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--yes", action="store_true", help="do not ask: for scripts (the default asks)"
        )
        parser.add_argument(
            "--operator",
            metavar="EMAIL",
            default="",
            help="the staff member (operator role or above) recorded as the actor",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=END_EVERYONE_BATCH,
            help=f"sessions a transaction (default {END_EVERYONE_BATCH})",
        )

    def handle(self, *args: Any, yes: bool, operator: str, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more.")
        actor = self._operator(operator) if operator else None
        total = sessions_live_count()
        if total == 0:
            self.stdout.write("no session to end")
            return
        if not yes:
            self._confirm(total)
        started = time.monotonic()

        def progress(ended: int) -> None:
            rate = ended / max(time.monotonic() - started, 1e-6)
            self.stdout.write(
                f"ended {ended} of {total} ({100 * ended // total}%, {rate:.0f} a second)"
            )

        ended = sessions_end_everyone(
            reason="operator",
            actor_id=actor.pk if actor else None,
            batch_size=batch_size,
            progress=progress if total > batch_size else None,
            metadata={"via": "manage.py end_all_sessions", "os_user": getpass.getuser()},
        ).ended
        seconds = time.monotonic() - started
        self.stdout.write(f"ended={ended} seconds={seconds:.1f}")

    def _operator(self, email: str) -> User:
        user = User.objects.filter(email=email.strip().lower(), is_active=True).first()
        if user is None or not user.has_staff_role(StaffRole.OPERATOR):
            raise CommandError(f"{email} is not an active staff member with the operator role.")
        return user

    def _confirm(self, total: int) -> None:
        if not sys.stdin.isatty():
            raise CommandError("Not a terminal: pass --yes to end every session.")
        typed = input(f"{total} sessions will end. Type “{PHRASE}” to go on: ")
        if typed.strip().casefold() != PHRASE:
            raise CommandError("Not confirmed: nothing was ended.")
