"""Work that must follow a commit and must never fail the request that committed (queueing a
Celery task, a signal): transaction.on_commit(..., robust=True) for a call with arguments.

Not a functools.partial: Django 5.2 logs a failing robust callback by `func.__qualname__`,
which a partial lacks, so the AttributeError of the log line escaped after the commit, and a
broker outage failed a logout that had already happened.

A Celery task is queued through `queue_after_commit`: a publish the broker refuses (down,
frozen: each attempt bounded in idp/settings.py) is one WARNING line, not Django's ERROR with
a traceback for every request of an outage (issue 20, "Faults"). What brings such a task
back, task by task, is in docs/operations.md ("The broker down")."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from celery import Task, current_app
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import RedisError

log = logging.getLogger("tessera.tasks")

# What a publish raises when the broker cannot take it: kombu wraps the transport's errors
# (connection refused, a command timed out) in its OperationalError; the rest in case a
# transport lets its own through.
PUBLISH_ERRORS = (BrokerError, RedisError, OSError)

_unqueued: ContextVar[list[str] | None] = ContextVar("tessera_unqueued", default=None)


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


class Publish:
    """The queued publish of one task: its name and arguments (tests read `args`)."""

    def __init__(self, name: str, args: tuple[Any, ...]) -> None:
        self.name, self.args = name, args
        self.__qualname__ = f"Publish({name})"  # for Django's line, should anything else fail

    def __call__(self) -> None:
        try:
            # ignore_result: nothing reads these results (CELERY_TASK_IGNORE_RESULT), but a
            # task sent by name does not read that setting, and with a result the sender
            # first subscribes to the result backend (Celery's on_task_call), which logs an
            # ERROR and a CRITICAL of its own when the broker is down.
            current_app.send_task(self.name, args=list(self.args), ignore_result=True)
        except PUBLISH_ERRORS as error:
            unqueued = _unqueued.get()
            if unqueued is not None:
                unqueued.append(self.name)
            detail = f"{type(error).__name__}: {str(error)[:300]}"
            # The request id, when there is a request, is on every line (core/logging.py).
            log.warning(
                "task %s not queued: %s", self.name, detail,
                extra={"task": self.name, "error": detail},
            )  # fmt: skip


def queue_after_commit(task: str | Task[Any, Any], /, *args: Any) -> None:
    """Queues Celery task `task` (the task or its name; by name where importing it would
    reverse an import arrow) with `args` once the current transaction commits (at once
    outside one). Never raises: a publish the broker refuses is logged as one WARNING line
    and, inside `unqueued_tasks()`, listed there."""
    transaction.on_commit(Publish(task if isinstance(task, str) else task.name, args), robust=True)


@contextmanager
def unqueued_tasks() -> Iterator[list[str]]:
    """The names of the tasks that could not be queued while the block ran (its own commits
    included): a page can then tell the person a mail may not come, rather than promise it."""
    names: list[str] = []
    token = _unqueued.set(names)
    try:
        yield names
    finally:
        _unqueued.reset(token)
