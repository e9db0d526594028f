"""A child process that writes large date commits, so SQLite runs on the second core.

A large organisation's date is ~55k chargeback rows. Binding and inserting them is
~0.4 s of CPU, and in this process it cannot overlap anything: ``executemany`` takes
the GIL back once per row, so a writer *thread* next to the next date's allocation
slows both down (measured). In a child process it overlaps fully: the parent sends
the :class:`~chargeback.core.storage._commit.PreparedCommit` (pickled, ~45 ms for
55k rows, on a worker thread) and allocates the next date while the child writes
this one.

The child is ``python -m chargeback.core.storage._writer PATH BUSY_MS``: a plain
subprocess, not :mod:`multiprocessing`, so it never re-imports the parent's
``__main__`` and needs no start-method care. It owns one connection with the
backend's pragmas and runs :func:`~chargeback.core.storage._commit.write_commit`, the
same function as the in-thread path, so both paths write identical rows.

Protocol on the child's stdin/stdout: frames of an 8-byte big-endian length and a
pickle. The parent sends a ``PreparedCommit``; the child answers ``("ok", calc_seq)``
or ``("error", exception)``. Every commit is one ``BEGIN IMMEDIATE`` transaction: a
child killed mid-commit (OOM, SIGKILL) loses that date's commit, never half of it;
the parent reports :class:`WriterDiedError` and the next commit starts a new child.

The child ignores the signals operators send (Ctrl-C in a terminal reaches the whole
process group): the parent decides when it stops, by closing its stdin, and a commit
in flight finishes first. If the parent dies, the child reads end-of-file and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
from typing import IO

import structlog

from chargeback.core.storage._commit import PreparedCommit, write_commit

__all__ = ["CommitWriter", "WriterDiedError"]

log = structlog.get_logger(__name__)

_HEADER = struct.Struct(">Q")
_IGNORED_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2")
_CHILD_STOP_S = 30.0
"""How long :meth:`CommitWriter.close` waits for the child after closing its stdin."""


class WriterDiedError(RuntimeError):
    """The writer process exited before it answered; its transaction was rolled back."""


class CommitWriter:
    """One lazily started writer process for one database file.

    Commits are sent one at a time (the backend's write lock serialises them with its
    own writes, and a thread lock guards the pipes).
    """

    def __init__(self, path: str, *, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout_ms = busy_timeout_ms
        self._proc: subprocess.Popen[bytes] | None = None
        self._pipes = threading.Lock()

    @property
    def pid(self) -> int | None:
        """The child's pid while it runs."""
        return None if self._proc is None else self._proc.pid

    @staticmethod
    def encode(prepared: PreparedCommit) -> bytes:
        """Pickle a commit for :meth:`commit` (one C call, ~45 ms for 55k rows).

        Done by the caller, on its thread, before it waits for its turn to write.
        """
        return pickle.dumps(prepared, pickle.HIGHEST_PROTOCOL)

    async def commit(self, payload: bytes) -> int:
        """Run a commit from :meth:`encode` in the child; return the new ``calc_seq``.

        The exchange runs on a worker thread, which sleeps in ``write``/``read``
        without the GIL while the child works. If the awaiting
        task is cancelled, this still waits for the child's answer (a transaction
        cannot stop half-way, and the caller holds the write lock until it is over),
        then re-raises the cancellation.

        Raises:
            sqlite3.Error: the transaction failed and was rolled back (the child's
                error, with its SQLite error code).
            WriterDiedError: the child exited during the commit; nothing of it was kept.
        """
        exchange = asyncio.ensure_future(asyncio.to_thread(self._exchange, payload))
        try:
            status, value = await asyncio.shield(exchange)
        except asyncio.CancelledError:
            await asyncio.wait({exchange})
            raise
        if status == "ok" and isinstance(value, int):
            return value
        if isinstance(value, BaseException):
            raise value
        raise WriterDiedError(f"the writer process failed: {value}")

    def _child(self) -> subprocess.Popen[bytes]:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            proc = subprocess.Popen(  # noqa: S603  (our own module, no shell)
                [sys.executable, "-m", __name__, self._path, str(self._busy_timeout_ms)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self._proc = proc
            log.debug("writer process started", path=self._path, pid=proc.pid)
        return proc

    def _exchange(self, payload: bytes) -> tuple[str, object]:
        with self._pipes:
            proc = self._child()
            stdin, stdout = proc.stdin, proc.stdout
            if stdin is None or stdout is None:  # pragma: no cover - both are PIPEs
                raise WriterDiedError("the writer process has no pipes")
            try:
                stdin.write(_HEADER.pack(len(payload)))
                stdin.write(payload)
                stdin.flush()
                answer = _read_frame(stdout)
            except OSError:
                answer = None
            if answer is None:
                self._reap(proc)
                raise WriterDiedError(
                    f"the writer process exited during the commit (exit code "
                    f"{proc.returncode}); nothing of it was kept"
                )
        status, value = pickle.loads(answer)  # noqa: S301  (our own child)
        return str(status), value

    def _reap(self, proc: subprocess.Popen[bytes]) -> None:
        if self._proc is proc:
            self._proc = None
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    async def close(self) -> None:
        """Stop the child (after the commit in flight, if any). Idempotent."""
        await asyncio.to_thread(self._stop)

    def _stop(self) -> None:
        with self._pipes:
            proc, self._proc = self._proc, None
            if proc is None:
                return
            if proc.stdin is not None:
                with contextlib.suppress(OSError):
                    proc.stdin.close()
            try:
                proc.wait(_CHILD_STOP_S)
            except subprocess.TimeoutExpired:
                log.warning("writer process did not stop; killing it", pid=proc.pid)
                self._reap(proc)
            if proc.stdout is not None:
                proc.stdout.close()
            log.debug("writer process stopped", path=self._path, code=proc.returncode)


# -- the child -------------------------------------------------------------------------
def _connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA temp_store = MEMORY")
    conn.execute("PRAGMA cache_size = -32000")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("PRAGMA journal_size_limit = 67108864")
    return conn


def _read_frame(stream: IO[bytes]) -> bytes | None:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        return None
    size = _HEADER.unpack(header)[0]
    body = stream.read(size)
    return body if len(body) == size else None


def _answer(stream: IO[bytes], status: str, value: object) -> None:
    try:
        body = pickle.dumps((status, value), pickle.HIGHEST_PROTOCOL)
    except Exception:  # an exception that does not pickle: send its text
        body = pickle.dumps((status, f"{type(value).__name__}: {value}"))
    stream.write(_HEADER.pack(len(body)))
    stream.write(body)
    stream.flush()


def serve(path: str, busy_timeout_ms: int, requests: IO[bytes], answers: IO[bytes]) -> None:
    """The child's loop: one commit per frame until end-of-file."""
    for name in _IGNORED_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is not None:
            signal.signal(signum, signal.SIG_IGN)
    conn = _connect(path, busy_timeout_ms)
    try:
        while (frame := _read_frame(requests)) is not None:
            try:
                prepared = pickle.loads(frame)  # noqa: S301  (from our parent)
                _answer(answers, "ok", write_commit(conn, prepared))
            except Exception as exc:
                _answer(answers, "error", exc)
    finally:
        conn.close()


if __name__ == "__main__":
    # stdout carries the answers: anything printed by accident must not corrupt them.
    _answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout = sys.stderr
    serve(sys.argv[1], int(sys.argv[2]), sys.stdin.buffer, _answers)
