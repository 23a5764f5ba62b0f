"""Work that must follow a commit and must never fail the request that committed (queueing a
Celery task, a signal): transaction.on_commit(..., robust=True) for a call with arguments.

Not a functools.partial: Django 5.2 logs a failing robust callback by `func.__qualname__`,
which a partial lacks, so the AttributeError of the log line escaped after the commit, and a
broker outage failed a logout that had already happened."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import transaction


class Call:
    """The queued call: what functools.partial keeps (func, args, kwargs; tests read them),
    plus the __qualname__ Django's log line asks for."""

    def __init__(self, func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]):
        self.func, self.args, self.kwargs = func, args, kwargs
        self.__qualname__ = getattr(func, "__qualname__", type(func).__qualname__)

    def __call__(self) -> None:
        self.func(*self.args, **self.kwargs)


def after_commit(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> None:
    """Calls func(*args, **kwargs) once the current transaction commits (at once outside
    one); an exception it raises is logged by Django, never raised to the caller."""
    transaction.on_commit(Call(func, args, kwargs), robust=True)
