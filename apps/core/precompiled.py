"""Querysets of one parameter, compiled to SQL once per process and database.

The ORM spends most of a hot query's time turning the queryset into SQL, not in the database:
profiled on a refresh_token grant (issue 11), compiling its two reads — the refresh token with
its session, person and access token, and the person's memberships as one UNION ALL — took
about 3.4 of the 15 ms of CPU the whole request used. Their shape never changes, only one
value does, so `Precompiled` compiles the queryset once, remembers where that value sits among
the statement's parameters, and afterwards only executes the SQL and hands the rows back
through the same compiler (its converters, and for models `from_db` plus the select_related
populators), so callers get what the queryset itself would have returned.

Measured (benchmarks/caches_and_jose.py, section "precompiled"): see benchmarks/README.md.
Django has no public API for this; the pieces used here (`SQLCompiler.as_sql`,
`results_iter(results=…)`, `get_related_populators`) are the ones `ModelIterable` and
`ValuesListIterable` use, and tests/core/test_precompiled.py compares every result with the
plain queryset's, so a Django upgrade that changes them fails there first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from django.db import connections, router
from django.db.models import Field, Model, QuerySet
from django.db.models.query import get_related_populators
from django.db.models.sql.compiler import SQLCompiler

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple[Any, ...]
    slots: tuple[int, ...]  # where the argument goes among params
    compiler: SQLCompiler


class Precompiled(Generic[M]):
    """`build(value)` returns the queryset for `value`; `field` is the model field the value
    is compared with (it adapts the value for the database, as the ORM would).

    Two different sample values are compiled once to find which parameters carry the value:
    those must differ between the two compilations, and every other parameter must not.
    """

    def __init__(
        self,
        build: Callable[[Any], QuerySet[M, Any]],
        field: Field[Any, Any],
        samples: tuple[Any, Any],
    ) -> None:
        self._build = build
        self._field = field
        self._samples = samples
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def models(self, value: Any) -> list[M]:
        """The model instances the queryset would return, select_related objects included."""
        compiled, rows, alias = self._run(value)
        compiler = compiled.compiler
        klass_info = compiler.klass_info
        assert klass_info is not None, "models() needs a model queryset, not values()"
        select = compiler.select
        fields = klass_info["select_fields"]
        start, end = fields[0], fields[-1] + 1
        names = [column[0].target.attname for column in select[start:end]]
        # django-stubs describe Django 6's signature (a fetch_mode argument); 5.2 has three.
        populators = get_related_populators(klass_info, select, alias)  # type: ignore[call-arg]
        model: type[M] = klass_info["model"]
        found: list[M] = []
        for row in compiler.results_iter(results=[rows]):
            instance = model.from_db(alias, names, row[start:end])
            for populator in populators:
                populator.populate(row, instance)
            found.append(instance)
        return found

    def values(self, value: Any) -> list[tuple[Any, ...]]:
        """The rows a values_list() queryset would return, as tuples."""
        compiled, rows, _ = self._run(value)
        return [tuple(row) for row in compiled.compiler.results_iter(results=[rows])]

    def _run(self, value: Any) -> tuple[_Compiled, list[Sequence[Any]], str]:
        alias = router.db_for_read(self._field.model)
        connection = connections[alias]
        compiled = self._compiled.get(connection.vendor) or self._compile(alias)
        params = list(compiled.params)
        prepared = self._field.get_db_prep_value(value, connection, prepared=False)
        for slot in compiled.slots:
            params[slot] = prepared
        with connection.cursor() as cursor:
            cursor.execute(compiled.sql, params)
            rows: list[Sequence[Any]] = cursor.fetchall()
        return compiled, rows, alias

    def _compile(self, alias: str) -> _Compiled:
        connection = connections[alias]
        with self._lock:
            if connection.vendor in self._compiled:
                return self._compiled[connection.vendor]
            first, second = (
                self._build(sample).query.get_compiler(using=alias) for sample in self._samples
            )
            sql, params = first.as_sql()
            other_sql, other_params = second.as_sql()
            if sql != other_sql or len(params) != len(other_params):
                raise ValueError("the queryset's SQL depends on the value: it cannot be reused")
            pairs = enumerate(zip(params, other_params, strict=True))
            slots = tuple(i for i, (a, b) in pairs if a != b)
            if not slots:
                raise ValueError("the value does not appear among the statement's parameters")
            compiled = _Compiled(sql, tuple(params), slots, first)
            self._compiled[connection.vendor] = compiled
            return compiled
