"""manage.py threat_baselines [--days N]: rebuilds every person's threat baseline from the
audit trail now, as the daily job does (apps/threat/baselines.py; docs/threat.md
"Baselines"), printing progress and the report."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError
from redis import RedisError

from apps.core.signin_history import SignInHistoryUnavailable
from apps.threat.baselines import BASELINE_DAYS_MAX, RebuildReport, baselines_rebuild


class Command(BaseCommand):
    help = (
        "Rebuilds every person's threat baseline (Redis) from their successful sign-ins in "
        "the audit store, and deletes the baselines of people with none left in the window."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=settings.THREAT_BASELINE_DAYS,
            help=f"days of sign-ins, 1 to {BASELINE_DAYS_MAX} (default "
            f"IDP_THREAT_BASELINE_DAYS, {settings.THREAT_BASELINE_DAYS})",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        days: int = options["days"]
        if not 1 <= days <= BASELINE_DAYS_MAX:
            raise CommandError(f"--days is from 1 to {BASELINE_DAYS_MAX} (the baseline TTL)")
        try:
            report = baselines_rebuild(days=days, progress=self._progress)
        except SignInHistoryUnavailable as error:
            raise CommandError(f"the audit store did not answer: {error}") from None
        except RedisError as error:
            raise CommandError(f"Redis: {type(error).__name__}: {error}") from None
        except DatabaseError as error:
            raise CommandError(f"the database: {type(error).__name__}: {error}") from None
        self.stdout.write(f"threat baselines rebuilt: {report.summary()}")

    def _progress(self, report: RebuildReport) -> None:
        self.stdout.write(f"... {report.summary()}")
