"""Fixtures of tests/tokens (a registered client, a signed-in browser that already consented),
shared with the fuzz tests; `person` and `rp` come from tests/rp.py for the whole suite."""

from __future__ import annotations

from tests.tokens import conftest as tokens

register, signed_in, flow = tokens.register, tokens.signed_in, tokens.flow
