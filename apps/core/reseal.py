"""Port: every row that holds a value sealed under the key-encryption key (apps.core.sealing),
moved to the current key by `manage.py reseal`, so that an old key can be dropped
(docs/operations.md, "The key-encryption key").

core imports no other app (DESIGN). Each app that seals a column implements SealedRows, and
settings.SEALED_ROWS names the implementations by kind: the app knows the associated data of
its rows and what else must follow a re-seal (a signing key's event, a cache); this module
walks the rows in batches, locks the ones to re-seal, and counts.

Safe while the service runs: a batch locks its stale rows (SELECT ... FOR UPDATE SKIP LOCKED;
a row held elsewhere is re-sealed after the batch, alone) and looks at each row's kek_id again
under the lock, so a row that another run, the hourly rotation task or an enrolment moved
meanwhile is counted as current and not sealed twice, and a concurrent writer of the same row
(a TOTP code's step, a provider's new secret) waits for the batch and then reads the
re-sealed row.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Model
from django.utils.module_loading import import_string

from apps.core import sealing

logger = logging.getLogger(__name__)

BATCH_SIZE = 500  # rows read, and at most locked, per transaction


class SealedRows(Protocol):
    """One kind of row with a sealed value; `model` has a `kek_id` column (sealing.kek_id of
    the key that sealed the row)."""

    model: type[Model]

    def reseal(self, row: Any) -> None:
        """Opens the locked `row`'s value with its own associated data, seals it under the
        current key and saves the row. Raises sealing.UnsealError when it does not open."""

    def batch_resealed(self) -> None:
        """After a batch that re-sealed rows has committed (e.g. to reload a cache)."""


@dataclass
class Tally:
    """What a re-seal of one kind did."""

    kind: str
    examined: int = 0
    resealed: int = 0
    current: int = 0  # already under the current key
    unreadable: list[str] = field(default_factory=list)  # row ids: unknown key, or altered


def sealed_kinds() -> dict[str, SealedRows]:
    """settings.SEALED_ROWS, in its order: kind → implementation."""
    return {kind: import_string(path)() for kind, path in settings.SEALED_ROWS.items()}


def kek_counts(rows: SealedRows) -> dict[str, int]:
    """How many rows each key-encryption key sealed (kek_id → count); changes nothing."""
    counted = rows.model._default_manager.values("kek_id").annotate(rows=Count("pk"))
    return {entry["kek_id"]: entry["rows"] for entry in counted.order_by("kek_id")}


def reseal_kind(
    kind: str,
    rows: SealedRows,
    *,
    batch_size: int = BATCH_SIZE,
    progress: Callable[[Tally], None] | None = None,
) -> Tally:
    """Re-seals every row of `kind` not under the current key, `batch_size` rows at a time in
    primary-key order (one transaction per batch; `progress` after each). A row that does not
    open is logged with its id and counted, never raised: the others still move."""
    current = sealing.current_kek_id()
    manager = rows.model._default_manager
    tally = Tally(kind)
    last: object = None
    while True:
        page = manager.order_by("pk")
        if last is not None:
            page = page.filter(pk__gt=last)
        batch = list(page.values_list("pk", "kek_id")[:batch_size])
        if not batch:
            return tally
        last = batch[-1][0]
        tally.examined += len(batch)
        stale = [pk for pk, kek in batch if kek != current]
        tally.current += len(batch) - len(stale)
        if stale and _reseal_batch(kind, rows, stale, current=current, tally=tally):
            rows.batch_resealed()
        if progress is not None:
            progress(tally)


def _reseal_batch(
    kind: str, rows: SealedRows, pks: list[Any], *, current: str, tally: Tally
) -> bool:
    """Locks the batch's free rows and re-seals them; a row another transaction holds is
    re-sealed after the batch, alone. So the command never waits for a lock while it holds
    others, and cannot deadlock with a writer that locks several rows in another order (a
    person's TOTP devices by creation time)."""
    manager = rows.model._default_manager
    resealed = 0
    busy = set(pks)  # held elsewhere, or deleted since the batch was read
    with transaction.atomic():
        for row in manager.select_for_update(skip_locked=True).filter(pk__in=pks).order_by("pk"):
            busy.discard(row.pk)
            resealed += _reseal_row(kind, rows, row, current=current, tally=tally)
    for pk in sorted(busy):
        with transaction.atomic():
            alone = manager.select_for_update().filter(pk=pk).first()
            if alone is not None:
                resealed += _reseal_row(kind, rows, alone, current=current, tally=tally)
    tally.resealed += resealed
    return resealed > 0


def _reseal_row(kind: str, rows: SealedRows, row: Any, *, current: str, tally: Tally) -> int:
    """1 when the locked `row` was re-sealed, else 0 (counted as current or unreadable)."""
    if row.kek_id == current:  # moved since the batch was read (compared under the lock)
        tally.current += 1
        return 0
    try:
        rows.reseal(row)
    except sealing.UnsealError as error:
        reason = "unknown key" if isinstance(error, sealing.UnknownKek) else "altered"
        logger.error(
            "reseal: %s %s does not open (%s, kek_id %s): configure that key in "
            "IDP_KEY_ENCRYPTION_KEYS_OLD, or replace the secret",
            kind,
            row.pk,
            reason,
            row.kek_id,
        )
        tally.unreadable.append(str(row.pk))
        return 0
    return 1
