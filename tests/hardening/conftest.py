"""Fixtures of the console's tests (an operator signed in, with CSRF checks on), for the
hostile-input tests of issue 20."""

from __future__ import annotations

from tests.console.conftest import _audit_store, operator, staff
from tests.rp import person, rp

__all__ = ["_audit_store", "operator", "person", "rp", "staff"]
