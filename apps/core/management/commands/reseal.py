from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core import reseal, sealing


class Command(BaseCommand):
    help = (
        "Re-seal every sealed secret (signing keys, TOTP secrets, federation providers' client "
        "secrets; settings.SEALED_ROWS) still under an old key-encryption key with "
        "IDP_KEY_ENCRYPTION_KEY, in batches, while the service runs; run it again at will. "
        "Exits 1 if a row does not open. --check only counts rows per key."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--check",
            action="store_true",
            help="count the rows each key-encryption key sealed, change nothing; exit 1 while "
            "a row is under another key than IDP_KEY_ENCRYPTION_KEY",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=reseal.BATCH_SIZE,
            help=f"rows per transaction (default {reseal.BATCH_SIZE})",
        )

    def handle(self, *args: Any, check: bool = False, batch_size: int, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be 1 or more")
        current = sealing.current_kek_id()
        old = [sealing.kek_id(kek) for kek in settings.KEY_ENCRYPTION_KEYS_OLD]
        self.stdout.write(
            f"key-encryption key {current} (IDP_KEY_ENCRYPTION_KEY); old: {', '.join(old) or '-'}"
        )
        kinds = reseal.sealed_kinds()
        if check:
            self._check(kinds, current=current, old=old)
        else:
            self._reseal(kinds, batch_size=batch_size)

    def _check(self, kinds: dict[str, reseal.SealedRows], *, current: str, old: list[str]) -> None:
        elsewhere: dict[str, int] = {}
        for kind, rows in kinds.items():
            counts = reseal.kek_counts(rows)
            if not counts:
                self.stdout.write(f"{kind}: no rows")
            for kek, count in counts.items():
                which = "current" if kek == current else "old" if kek in old else "not configured"
                self.stdout.write(f"{kind}: {count} under {kek} ({which})")
                if kek != current:
                    elsewhere[kek] = elsewhere.get(kek, 0) + count
        if elsewhere:
            named = ", ".join(f"{kek} ({count} rows)" for kek, count in elsewhere.items())
            raise CommandError(
                f"rows are still sealed under {named}: keep those keys, run `manage.py reseal`"
            )
        self.stdout.write(
            "every row is under the current key: IDP_KEY_ENCRYPTION_KEYS_OLD can be emptied"
        )

    def _reseal(self, kinds: dict[str, reseal.SealedRows], *, batch_size: int) -> None:
        unreadable: list[str] = []
        for kind, rows in kinds.items():
            tally = reseal.reseal_kind(kind, rows, batch_size=batch_size, progress=self._progress)
            self.stdout.write(
                f"{kind}: done, {tally.resealed} resealed, {tally.current} already current, "
                f"{len(tally.unreadable)} unreadable"
            )
            unreadable += [f"{kind} {pk}" for pk in tally.unreadable]
        if unreadable:
            raise CommandError(
                f"{len(unreadable)} rows do not open with IDP_KEY_ENCRYPTION_KEY or "
                f"IDP_KEY_ENCRYPTION_KEYS_OLD and stay as they are: {', '.join(unreadable)}. "
                "Configure the key they name as an old key and run again, or replace those "
                "secrets (a new authenticator, the provider's secret entered again)"
            )

    def _progress(self, tally: reseal.Tally) -> None:
        self.stdout.write(
            f"{tally.kind}: {tally.examined} examined, {tally.resealed} resealed, "
            f"{tally.current} already current, {len(tally.unreadable)} unreadable"
        )
