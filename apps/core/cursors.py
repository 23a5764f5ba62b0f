"""Keyset paging: where a page ends in an order of (time, id), newest first, and its text
form for "older" links. A page after it costs what the first does (no OFFSET, no COUNT)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Self

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class KeysetCursor:
    at: datetime
    id: uuid.UUID

    def __str__(self) -> str:
        micros = (self.at - _EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.id.hex}"

    @classmethod
    def parse(cls, text: str) -> Self:
        """Raises ValueError unless `text` is what str() gave."""
        micros, _, hex_id = text.partition(".")
        if not micros.isdigit() or len(micros) > 17:  # digits only, inside datetime's range
            raise ValueError("malformed cursor")
        return cls(_EPOCH + timedelta(microseconds=int(micros)), uuid.UUID(hex=hex_id))
