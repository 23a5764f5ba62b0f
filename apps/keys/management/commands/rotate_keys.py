from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from apps.keys.keys import ALGORITHMS, keys_rotate, signing_key_at


class Command(BaseCommand):
    help = (
        "Rotate the signing keys now, for every algorithm (e.g. after a suspected compromise): "
        "new keys sign at once, in every process within a second (one pub/sub message); the old "
        "ones stay in the JWKS until their tokens have expired."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--scheduled",
            action="store_true",
            help="run the normal schedule step instead (what the hourly beat task does)",
        )

    def handle(self, *args: Any, scheduled: bool = False, **options: Any) -> None:
        now = timezone.now()
        replaced = {alg: signing_key_at(alg=alg, now=now) for alg in ALGORITHMS}
        created = keys_rotate(now=now, immediate=not scheduled)
        for key in created:
            previous = replaced[key.alg]
            self.stdout.write(
                f"{key.alg} kid={key.kid} signs from {key.activates_at.isoformat()} "
                f"replacing kid={previous.kid if previous else '(none)'}"
            )
        if not created:
            self.stdout.write("no new key: every algorithm's key is within its rotation period")
