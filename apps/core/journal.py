"""The per-process journal of security events recorded outside a database transaction.

HashiCorp Vault's file audit device is the model: an event is written before the response, and
a request whose event cannot be written fails (core.errors.AuditUnavailable, answered with 503).
An event recorded inside a transaction is not journaled: core.outbox inserts it in that
transaction, where it commits with the change it records.

- Append: one complete JSON line, one write(2) on an O_APPEND file descriptor, before emit()
  returns. The file belongs to this process: `<AUDIT_JOURNAL_DIR>/<pid>-<uuid>.journal`,
  created under a temporary name, exclusively flock()ed and only then renamed into place, and
  held locked for the life of the process. The kernel drops the lock when the process dies,
  however it dies (SIGKILL, OOM), so a journal whose lock can be taken belongs to nobody.
- Drain: a thread per process moves appended records into the outbox (core_security_event) in
  batches, woken by each append and letting a burst gather for BATCH_WINDOW (well inside the
  50 ms of issue 11).
- Exactly once: each batch's rows and its journal's checkpoint (core_journal_checkpoint:
  journal name -> bytes drained) are written in ONE database transaction. Chosen over
  INSERT ... ON CONFLICT (id): the audit shipper deletes shipped rows from the outbox, after
  which a conflict check can no longer see them; the checkpoint outlives them. Dying before
  COMMIT leaves rows and checkpoint unwritten, after it leaves both written; a drainer always
  starts at the larger of the stored checkpoint and what it knows it did.
- Replay: at start and every REPLAY_INTERVAL seconds, a process takes the lock of each journal
  in the directory with LOCK_NB; one it gets belongs to a process that died: it is moved to the
  outbox from its checkpoint, then unlinked while still locked (and its checkpoint deleted in
  the same transaction). Two replayers race on the lock, not on timing; one that opened the
  file before the other unlinked it sees st_nlink == 0 once it holds the lock, and skips it.
- Shutdown: shutdown() (atexit; multiprocessing's exit finalizers in granian's and Celery's
  workers, which skip atexit; gunicorn's worker_exit, Celery's worker_process_shutdown)
  drains and removes this process's journal. A process that cannot reach the database then
  leaves the file to be replayed by the next one.
- fork: a child (gunicorn or Celery prefork) closes the descriptors it inherited — the lock
  stays with the parent — and opens a journal of its own on its first event.

What this promises: nothing is lost when a process is killed; a crash of the whole host may lose
what the kernel had not yet written to disk (no fsync per event), as PostgreSQL's
synchronous_commit=off may. AUDIT_JOURNAL=False keeps a synchronous INSERT per event instead.
"""

from __future__ import annotations

import atexit
import fcntl
import json
import logging
import multiprocessing.util
import os
import threading
import time
import uuid
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from django.conf import settings
from django.db import DataError, IntegrityError, connection, transaction

from apps.core.errors import AuditUnavailable

log = logging.getLogger("tessera.audit")

SUFFIX = ".journal"
_NEW = ".new"  # a journal being created, not yet locked and renamed: never appended to
# Seconds the drain thread lets appends gather after a wake, so a burst is one INSERT batch.
# 20 ms, not 10: one drain round trip costs about 300 µs of CPU, so at one client's pace twice
# the events share it; drain latency stays inside issue 11's 50 ms (benchmarks/README.md).
BATCH_WINDOW = 0.02
# Seconds between looks for journals of processes that died.
REPLAY_INTERVAL = 5.0
# Seconds without an event after which the drain thread gives its database connection back
# (a connection opened for each burst would cost its setup inside the 50 ms).
IDLE_CLOSE = 30.0
# Seconds between attempts while the database refuses a batch.
RETRY_INTERVAL = 1.0
# A journal file this long is closed for appends and a new one begun; the old one is removed
# once drained, so a long-lived process does not keep a file that only grows.
ROTATE_BYTES = 64 * 1024 * 1024
# Bytes read and inserted per transaction.
BATCH_BYTES = 4 * 1024 * 1024

_CHECKPOINT_SELECT = "SELECT drained_bytes FROM core_journal_checkpoint WHERE journal = %s"
_CHECKPOINT_UPSERT = (
    "INSERT INTO core_journal_checkpoint (journal, drained_bytes) VALUES (%s, %s) "
    "ON CONFLICT (journal) DO UPDATE SET drained_bytes = excluded.drained_bytes"
)
_CHECKPOINT_DELETE = "DELETE FROM core_journal_checkpoint WHERE journal = %s"


@dataclass(eq=False)
class _Segment:
    """One journal file of this process. size: bytes appended (under the append lock);
    drained: bytes known to be in the outbox (under the drain lock)."""

    path: Path
    fd: int
    size: int = 0
    drained: int = 0

    @property
    def name(self) -> str:
        return self.path.name


def _open_segment(directory: Path) -> _Segment:
    """A new journal file, locked before any other process can see it under its name."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = f"{os.getpid()}-{uuid.uuid4().hex}{SUFFIX}"
    temporary = directory / f"{name}{_NEW}"
    # 0600: events carry IP addresses and identifiers as typed (personal data).
    fd = os.open(temporary, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.rename(temporary, directory / name)
    except OSError:
        os.close(fd)
        with suppress(OSError):
            temporary.unlink()
        raise
    return _Segment(directory / name, fd)


# orjson escapes every control character inside values (JSON requires it), so a record is
# one line; it writes UUIDs and aware datetimes as PostgreSQL reads them. Measured on the
# outbox's 19-field row: 3 µs against 25 µs for the standard library's encoder plus the
# row's copy with its id and time as text (issue 11: the append was most of emit()'s cost).
_OPTIONS = orjson.OPT_APPEND_NEWLINE | orjson.OPT_NON_STR_KEYS
# The fallback for what orjson refuses (a lone surrogate, a value of a type it does not
# know): the standard library escapes the former and fails on the latter as it always did.
_encoder = json.JSONEncoder(separators=(",", ":"))


def _encode(values: Mapping[str, Any]) -> bytes:
    try:
        return orjson.dumps(values, option=_OPTIONS)
    except TypeError:
        record = dict(values, id=str(values["id"]), occurred_at=values["occurred_at"].isoformat())
        return _encoder.encode(record).encode() + b"\n"


def _decode(line: bytes) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(line)
    values["id"] = uuid.UUID(values["id"])
    values["occurred_at"] = datetime.fromisoformat(values["occurred_at"])
    return values


def _checkpoint(name: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(_CHECKPOINT_SELECT, [name])
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _move(name: str, fd: int, *, known: int, end: int, verify: bool = True) -> int:
    """Move the complete records of bytes [checkpoint, end) of one journal to the outbox, one
    transaction per BATCH_BYTES; returns the offset drained to. Needs the journal's lock (the
    process's own drain lock for its journal, the flock for another's).

    verify: read the stored checkpoint first. A replayer must; a process draining its own
    journal knows where it is (a new file has no checkpoint) until a batch fails, when the
    answer to its COMMIT may have been lost.
    """
    done = known
    careful = False  # a batch the database refused is tried again row by row
    while done < end:
        try:
            cut = _move_batch(name, fd, done, end, verify=verify, careful=careful)
        except (DataError, IntegrityError):
            if careful:
                raise
            careful = True
            continue
        if cut is None:
            break
        done, careful = cut, False
    return done


def _move_batch(
    name: str, fd: int, done: int, end: int, *, verify: bool, careful: bool
) -> int | None:
    """Rows and checkpoint, atomically; returns the new offset, None when nothing is left to
    move."""
    from apps.core import outbox  # outbox imports this module: the one way round at import

    if not verify and not careful and connection.vendor == "postgresql":
        # The common case: one statement, atomic by itself, so one round trip per batch.
        chunk = _read(fd, done, end)
        if chunk is None:
            return None
        lines, cut = chunk
        outbox.insert_json(lines, checkpoint=(name, done + cut))
        return done + cut
    with transaction.atomic():
        if verify:
            # The larger: the table may be behind what this process knows (a test database
            # flushed) or ahead of it (a COMMIT whose answer was lost).
            done = max(done, _checkpoint(name))
            if done >= end:
                return done  # moved before, by this process or a replayer that died after
        chunk = _read(fd, done, end)
        if chunk is None:
            return None
        lines, cut = chunk
        if careful:
            _insert_one_by_one(name, lines)
        elif connection.vendor == "postgresql":
            outbox.insert_json(lines)  # PostgreSQL reads the records as they are
        else:
            outbox.insert_rows([_decode(line) for line in lines])
        with connection.cursor() as cursor:
            cursor.execute(_CHECKPOINT_UPSERT, [name, done + cut])
    return done + cut


def _read(fd: int, done: int, end: int) -> tuple[list[bytes], int] | None:
    """The complete records from `done` (up to BATCH_BYTES, or one longer record) and their
    length in bytes; None when there is none."""
    data = os.pread(fd, min(end - done, BATCH_BYTES), done)
    cut = data.rfind(b"\n") + 1
    if cut == 0 and len(data) < end - done:  # one record longer than a batch
        data = os.pread(fd, end - done, done)
        cut = data.rfind(b"\n") + 1
    if cut == 0:
        return None  # a torn last record: an append that failed (its request got 503)
    return data[:cut].splitlines(), cut


def _insert_one_by_one(name: str, lines: list[bytes]) -> None:
    """After the database refused a batch: each record in a savepoint; one that cannot be read
    or that the database refuses (a value too long for its column) is logged with its content
    and skipped, rather than holding back every event after it forever."""
    from apps.core import outbox

    for line in lines:
        try:
            values = _decode(line)
        except (ValueError, KeyError, TypeError) as error:
            log.error("audit journal %s: unreadable record skipped (%s): %r",
                      name, error, line[:500])  # fmt: skip
            continue
        try:
            with transaction.atomic():
                outbox.insert_rows([values])
        except (DataError, IntegrityError) as error:
            log.error(
                "audit journal %s: event refused by the database (%s), recorded only here: %s",
                name, error, line.decode(errors="replace"),
            )  # fmt: skip


def _remove(segment: _Segment) -> None:
    """Unlink a drained journal and forget its checkpoint, in that order inside one
    transaction: a failure leaves at worst a checkpoint without its file, never a file whose
    checkpoint is gone (which a replayer would move again from byte 0)."""
    if segment.drained == 0:
        segment.path.unlink()  # nothing was ever moved: there is no checkpoint
    else:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(_CHECKPOINT_DELETE, [segment.name])
            segment.path.unlink()
    with suppress(OSError):
        os.close(segment.fd)


class _Journal:
    """This process's journal: the segment appends go to, retired segments still to drain,
    and the drain thread."""

    def __init__(self, directory: Path) -> None:
        self.pid = os.getpid()
        self.directory = directory
        self.current: _Segment | None = _open_segment(directory)
        self.retired: list[_Segment] = []
        self.append_lock = threading.Lock()
        self.drain_lock = threading.Lock()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.failing_since: float | None = None
        # Whether the checkpoints may be ahead of what this process knows (after a failure).
        self.uncertain = False

    def append(self, line: bytes) -> None:
        with self.append_lock:
            segment = self.current
            try:
                if segment is None or segment.size >= ROTATE_BYTES:
                    if segment is not None:
                        self.retired.append(segment)
                        self.current = None
                    segment = self.current = _open_segment(self.directory)
                written = os.write(segment.fd, line)
            except OSError as error:
                raise AuditUnavailable(f"cannot append to the audit journal: {error}") from error
            if written != len(line):  # a short write: the disk filled up mid-record
                try:
                    os.ftruncate(segment.fd, segment.size)
                except OSError:
                    # The torn record stays at the end: append no more to this file (drained
                    # up to `size`, then removed); the next event opens a new one.
                    self.retired.append(segment)
                    self.current = None
                raise AuditUnavailable(
                    f"cannot append to the audit journal: wrote {written} of {len(line)} bytes"
                )
            segment.size += written
        if not self.wake.is_set():  # set() takes a lock; under load it is mostly set already
            self.wake.set()

    def pending(self) -> int:
        with self.append_lock:
            segments = [*self.retired, *([self.current] if self.current else [])]
            return sum(segment.size - segment.drained for segment in segments)

    def drain(self) -> None:
        """Move everything appended so far to the outbox; remove retired files once drained."""
        with self.drain_lock:
            with self.append_lock:
                work = [(segment, segment.size) for segment in self.retired]
                if self.current is not None:
                    work.append((self.current, self.current.size))
            try:
                for segment, end in work:
                    if segment.drained < end:
                        segment.drained = _move(segment.name, segment.fd, known=segment.drained,
                                                end=end, verify=self.uncertain)  # fmt: skip
            except BaseException:
                self.uncertain = True  # did the failed batch's COMMIT happen? ask next time
                raise
            self.uncertain = False
            with self.append_lock:
                finished = [s for s in self.retired if s.drained >= s.size]
            for segment in finished:
                _remove(segment)
                with self.append_lock:
                    self.retired.remove(segment)

    def close(self) -> None:
        """Drain and remove every file of this journal (at shutdown)."""
        with self.append_lock:
            if self.current is not None:
                self.retired.append(self.current)
                self.current = None
        self.drain()

    def start(self) -> None:
        if self.thread is None:
            self.thread = threading.Thread(
                target=self._run, name="tessera-audit-journal", daemon=True
            )
            self.thread.start()

    def _run(self) -> None:
        next_replay = 0.0  # at start: journals left by processes that died before this one
        busy = time.monotonic()
        while not self.stopping.is_set():
            woke = self.wake.wait(timeout=max(0.0, next_replay - time.monotonic()))
            if woke:
                self.stopping.wait(BATCH_WINDOW)  # let the rest of a burst arrive
                busy = time.monotonic()
            self.wake.clear()
            # Everything that may raise is inside the try, the connection's upkeep included
            # (checking an open connection asks the database): this thread is the process's
            # only drainer, and one exception escaping it would leave every later event in
            # the file until the process exits, out of the audit store the whole time.
            try:
                self.drain()
                if time.monotonic() >= next_replay:
                    replay_dead(self.directory)
                    next_replay = time.monotonic() + REPLAY_INTERVAL
                self._recovered()
                if time.monotonic() - busy > IDLE_CLOSE:
                    connection.close()  # quiet: no connection held by an idle drain thread
                else:
                    connection.close_if_unusable_or_obsolete()  # CONN_MAX_AGE, as requests do
            except Exception as error:  # the records wait in the file; retry
                self._failed(error)
                with suppress(Exception):
                    connection.close()
                self.stopping.wait(RETRY_INTERVAL)
                self.wake.set()  # what failed is still pending
        with suppress(Exception):
            connection.close()

    def _failed(self, error: Exception) -> None:
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.error(
                "audit journal: cannot move events to the outbox, they wait in %s: %s",
                self.directory, f"{type(error).__name__}: {error}"[:500],
            )  # fmt: skip

    def _recovered(self) -> None:
        if self.failing_since is not None:
            log.info(
                "audit journal: moving events to the outbox again after %.0fs",
                time.monotonic() - self.failing_since,
            )
            self.failing_since = None

    def stop(self, timeout: float) -> None:
        self.stopping.set()
        self.wake.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def abandon(self) -> None:
        """In a forked child: let go of the parent's files without touching them."""
        for segment in [*self.retired, *([self.current] if self.current else [])]:
            with suppress(OSError):
                os.close(segment.fd)


_live: _Journal | None = None
_live_lock = threading.Lock()


def _journal() -> _Journal:
    journal = _live
    if journal is not None and journal.pid == os.getpid():
        return journal
    return _open()


def _open() -> _Journal:
    global _live
    with _live_lock:
        if _live is not None and _live.pid != os.getpid():
            _live.abandon()  # forked without the at-fork hook having run (defensive)
            _live = None
        if _live is None:
            try:
                _live = _Journal(settings.AUDIT_JOURNAL_DIR)
            except OSError as error:
                raise AuditUnavailable(f"cannot open an audit journal: {error}") from error
            with suppress(RuntimeError):  # at interpreter exit: left for replay
                _live.start()
            _drain_at_process_exit()
        return _live


_exit_hook_pid: int | None = None


def _drain_at_process_exit() -> None:
    """A process started by multiprocessing (granian's and Celery's workers) leaves through
    os._exit() after its own finalizers, never running atexit: the journal drains in one of
    those too. Registered in the process that opens the journal: a forked child starts with
    its parent's finalizers cleared. shutdown() runs once, whichever comes first."""
    global _exit_hook_pid
    if _exit_hook_pid != os.getpid():
        _exit_hook_pid = os.getpid()
        multiprocessing.util.Finalize(None, shutdown, exitpriority=10)


def append(values: Mapping[str, Any]) -> None:
    """Append one event (a Python value per outbox field) before the caller answers.

    Raises AuditUnavailable when it cannot be written; the request must then fail.
    """
    _journal().append(_encode(values))


def start() -> None:
    """Open this process's journal and start its drain thread (which replays journals of dead
    processes at once). For server processes at start-up; append() also starts it lazily."""
    if settings.AUDIT_JOURNAL:
        try:
            _journal()
        except AuditUnavailable as error:
            log.error("audit journal: %s; requests that record an event will fail", error)


def drain_now() -> None:
    """Move everything this process has journaled into the outbox before returning."""
    journal = _live
    if journal is not None and journal.pid == os.getpid():
        journal.drain()


def shutdown(timeout: float = 10.0) -> None:
    """Drain and remove this process's journal and stop its thread (graceful exit)."""
    global _live
    with _live_lock:
        journal = _live
        if journal is None or journal.pid != os.getpid():
            return
        _live = None
    journal.stop(timeout)
    try:
        journal.close()
    except Exception as error:  # the file stays; the next process replays it
        log.error(
            "audit journal: could not drain at exit, %d bytes left for replay in %s: %s",
            journal.pending(), journal.directory, f"{type(error).__name__}: {error}"[:500],
        )  # fmt: skip


def replay_dead(directory: Path | None = None) -> int:
    """Move the journals of processes that died into the outbox, then remove them; returns how
    many journals were replayed. Journals of live processes (locked) are left alone."""
    directory = directory or settings.AUDIT_JOURNAL_DIR
    try:
        paths = sorted(directory.iterdir())
    except FileNotFoundError:
        return 0
    replayed = 0
    for path in paths:
        if path.name.endswith(SUFFIX):
            replayed += _replay(path)
        elif path.name.endswith(SUFFIX + _NEW):
            _remove_unborn(path)
    return replayed


def _claim(path: Path) -> int | None:
    """An open, exclusively locked descriptor of a journal nobody holds, or None."""
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None  # another replayer removed it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held, named = os.fstat(fd), os.stat(path)
    except (BlockingIOError, FileNotFoundError):
        os.close(fd)  # alive (locked), or removed by the replayer we waited for
        return None
    if held.st_nlink == 0 or (held.st_dev, held.st_ino) != (named.st_dev, named.st_ino):
        os.close(fd)  # replayed and unlinked by another process between open() and flock()
        return None
    return fd


def _replay(path: Path) -> int:
    fd = _claim(path)
    if fd is None:
        return 0
    segment = _Segment(path, fd, size=os.fstat(fd).st_size)
    removed = False
    try:
        segment.drained = _move(segment.name, fd, known=0, end=segment.size)
        if segment.drained < segment.size:
            log.error(
                "audit journal %s: %d bytes of a torn last record dropped (its append failed "
                "and its request was refused)", segment.name, segment.size - segment.drained,
            )  # fmt: skip
        _remove(segment)  # unlinks, then closes fd (which releases the lock)
        removed = True
    finally:
        if not removed:  # closed once only: a second close could hit a descriptor another
            with suppress(OSError):  # thread has opened since under the same number
                os.close(fd)
    log.info("audit journal %s of a process that died: replayed into the outbox", path.name)
    return 1


def _remove_unborn(path: Path) -> None:
    fd = _claim(path)
    if fd is not None:  # its creator died before renaming it: it never held a record
        try:
            path.unlink()
        finally:
            os.close(fd)


def _after_fork_in_child() -> None:
    global _live, _live_lock
    _live_lock = threading.Lock()  # the parent's may have been held by one of its threads
    if _live is not None:
        _live.abandon()
        _live = None


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(shutdown)
