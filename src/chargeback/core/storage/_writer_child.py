r"""The writer child's side (``python -m chargeback.core.storage._writer_child PATH BUSY_MS PPID``).

Reads frames (8-byte big-endian length, then a marshalled or pickled body, see
:func:`encode`) from stdin, each a date commit (its batches and its ``date_state``
record), runs it with
:func:`~chargeback.core.storage._transaction.write_transaction` and answers on stdout
``("ok", calc_seq)`` or ``("error", exception)``. A frame tagged :data:`USAGE` instead
holds usage-ledger cells and rows (:func:`encode_usage`), written by
:func:`~chargeback.core.storage._transaction.write_usage_transaction`; its answer is
``("ok", rows inserted)``. Ends at end-of-file on stdin.

Deliberately imports only the standard library and ``_transaction`` (and the
package ``__init__``\ s above them, which bring in ``chargeback.core.money`` and
``chargeback.errors``): the child costs ~15 MB plus SQLite's page cache, next to a
daemon that may be near its memory budget. It ignores the signals an operator sends
to the daemon (Ctrl-C reaches a whole process group): the daemon stops it by closing
stdin, after the commit in flight. It dies with the daemon (SIGKILL on the parent's
death, Linux), so a killed daemon leaves no writer behind and its commit in flight
rolls back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import marshal
import os
import pickle
import signal
import sqlite3
import struct
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import IO

from chargeback.core.storage._transaction import (
    Batch,
    StateRecord,
    write_transaction,
    write_usage_transaction,
)

__all__ = [
    "HEADER",
    "MARSHALLED",
    "PICKLED",
    "USAGE",
    "decode",
    "die_with_parent",
    "encode",
    "encode_usage",
    "read_frame",
    "serve",
]

HEADER = struct.Struct(">Q")
MARSHALLED = b"m"
PICKLED = b"p"
"""The first byte of a request frame: how the rest is serialized."""
USAGE = b"u"
"""The first byte of a usage-ledger write (marshalled cells and rows, not a date commit)."""
_IGNORED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")
_CACHE_KB = 8000
"""SQLite page cache of the child: a commit appends at the right edge of the table and
its index and deletes one date's contiguous rows, so a small cache is enough; the
backend's own connections keep 32 MB for reads."""


def encode(batches: Sequence[Batch], state: StateRecord) -> bytes:
    """A request frame's body: the commit's batches and state as plain tuples, marshalled
    (one C call, a third faster than pickle for tuples of text and numbers), or pickled
    when a plugin cell is of a type marshal does not know."""
    commit = ([tuple(b) for b in batches], tuple(state))
    try:
        return MARSHALLED + marshal.dumps(commit)  # type: ignore[arg-type]  # checked by marshal
    except ValueError:
        return PICKLED + pickle.dumps(commit, pickle.HIGHEST_PROTOCOL)


def decode(frame: bytes) -> tuple[list[Batch], StateRecord]:
    """The commit of a request frame from :func:`encode`."""
    body = memoryview(frame)[1:]
    if frame[:1] == MARSHALLED:
        batches, state = marshal.loads(body)  # noqa: S302  (our parent's)
    else:
        batches, state = pickle.loads(body)  # noqa: S301  (our parent's)
    return [Batch._make(b) for b in batches], StateRecord._make(state)


def encode_usage(cells: Sequence[tuple[object, ...]], rows: Sequence[tuple[object, ...]]) -> bytes:
    """A usage-ledger write's frame body: the cells to replace and the rows to insert,
    marshalled (every value is text, an int or ``None``)."""
    return USAGE + marshal.dumps((list(cells), list(rows)))


def _request(frame: bytes) -> Callable[[sqlite3.Connection], int]:
    """The transaction of one request frame: a usage-ledger write or a date commit."""
    if frame[:1] == USAGE:
        cells, rows = marshal.loads(memoryview(frame)[1:])  # noqa: S302  (our parent's)
        return partial(write_usage_transaction, cells=cells, rows=rows)
    batches, state = decode(frame)
    return partial(write_transaction, batches=batches, state=state)


def read_frame(stream: IO[bytes]) -> bytes | None:
    """One frame's body, or ``None`` at end-of-file (or a frame cut short)."""
    header = stream.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    size = HEADER.unpack(header)[0]
    body = stream.read(size)
    return body if len(body) == size else None


def _answer(stream: IO[bytes], status: str, value: object) -> None:
    try:
        body = pickle.dumps((status, value), pickle.HIGHEST_PROTOCOL)
    except Exception:  # an exception that does not pickle: send its text
        body = pickle.dumps((status, f"{type(value).__name__}: {value}"))
    stream.write(HEADER.pack(len(body)))
    stream.write(body)
    stream.flush()


def _connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute(f"PRAGMA cache_size = -{_CACHE_KB}")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA journal_size_limit = 67108864")
    return conn


_PR_SET_PDEATHSIG = 1


def die_with_parent(parent_pid: int) -> None:
    """Ask Linux for SIGKILL when the parent dies; exit now if it already has.

    Elsewhere (no ``prctl``) the end-of-file on stdin ends the child instead, after
    the commit in flight.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - every Linux libc has prctl
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        raise SystemExit(0)


def serve(path: str, busy_timeout_ms: int, requests: IO[bytes], answers: IO[bytes]) -> None:
    """One commit (or usage-ledger write) per frame until end-of-file."""
    for name in _IGNORED_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, signal.SIG_IGN)
    conn = _connect(path, busy_timeout_ms)
    try:
        while (frame := read_frame(requests)) is not None:
            try:
                transaction = _request(frame)
                del frame  # the decoded rows are enough; the frame's bytes go now
                _answer(answers, "ok", transaction(conn))
            except Exception as exc:
                _answer(answers, "error", exc)
    finally:
        conn.close()


if __name__ == "__main__":
    # stdout carries the answers: anything printed by accident must not corrupt them.
    _answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr
    die_with_parent(int(sys.argv[3]))
    serve(sys.argv[1], int(sys.argv[2]), sys.stdin.buffer, _answers)
