r"""A child process that writes large date commits, so SQLite runs on the second core.

A large organisation's date is ~55k chargeback rows. Binding and inserting them is
~0.4 s of CPU, and in this process it cannot overlap anything: ``executemany`` takes
the GIL back once per row, so a writer *thread* next to the next date's allocation
slows both down (measured). In a child process it overlaps fully: the backend sends
the date's parameter tuples (marshalled) and the engine allocates
the next date while the child writes this one.

The child is ``python -m chargeback.core.storage._writer_child PATH BUSY_MS``: a plain
subprocess, not :mod:`multiprocessing`, so it never re-imports the parent's
``__main__`` and needs no start-method care, and it imports only the standard library
and :mod:`~chargeback.core.storage._transaction` with the package ``__init__``\ s above
it (~15 MB). It owns one connection with
the backend's pragmas (a smaller page cache) and runs
:func:`~chargeback.core.storage._transaction.write_transaction`, the same function as
the in-thread path, so both paths write identical rows.

Protocol on the child's stdin/stdout: frames of an 8-byte big-endian length and a
body. The parent sends the commit's batches and ``date_state`` record, marshalled
(or pickled when a plugin cell needs it, tagged by the first byte); the child
answers (pickled) ``("ok", calc_seq)`` or ``("error", exception)``. Every commit is one
``BEGIN IMMEDIATE`` transaction: a child killed mid-commit (OOM, SIGKILL) loses that
date's commit, never half of it; the parent reports :class:`WriterDiedError` and the
next commit starts a new child.

The child ignores the signals operators send (Ctrl-C in a terminal reaches the whole
process group): the parent decides when it stops, by closing its stdin, and a commit
in flight finishes first. If the parent dies (SIGKILL, OOM), the child is killed too
(Linux ``PR_SET_PDEATHSIG``; elsewhere it exits at end-of-file), so nothing writes
after a killed daemon: a commit in flight rolls back, exactly as in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence

import structlog

from chargeback.core.storage._commit import PreparedCommit
from chargeback.core.storage._writer_child import HEADER, encode, encode_usage, read_frame

__all__ = ["CommitWriter", "WriterDiedError"]

log = structlog.get_logger(__name__)

_CHILD_MODULE = "chargeback.core.storage._writer_child"
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
        """Serialize a commit for :meth:`commit` (:func:`._writer_child.encode`).

        Done by the caller, on its thread, before it waits for its turn to write.
        """
        return encode(prepared.batches, prepared.state)

    @staticmethod
    def encode_usage(
        cells: Sequence[tuple[object, ...]], rows: Sequence[tuple[object, ...]]
    ) -> bytes:
        """Serialize a usage-ledger write for :meth:`commit` (its answer: the rows
        inserted), see :func:`._writer_child.encode_usage`."""
        return encode_usage(cells, rows)

    async def commit(self, payload: bytes) -> int:
        """Run a commit from :meth:`encode` in the child; return the new ``calc_seq``
        (for a usage-ledger write from :meth:`encode_usage`: the rows inserted).

        The exchange runs on a worker thread, which sleeps in ``write``/``read``
        without the GIL while the child works. If the awaiting task is cancelled, this
        still waits for the child's answer (a transaction cannot stop half-way, and
        the caller holds the write lock until it is over), then re-raises the
        cancellation.

        Raises:
            sqlite3.Error: the transaction failed and was rolled back (the child's
                error, with its SQLite error code).
            WriterDiedError: the child exited during the commit; nothing of it was kept.
        """
        proc = self._child()  # on the caller's thread: see _child
        exchange = asyncio.ensure_future(asyncio.to_thread(self._exchange, proc, payload))
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
        """The running child, started if needed.

        Started from the event loop's thread, not a pool thread: the child asks to be
        killed when the thread that started it ends (``PR_SET_PDEATHSIG``), which for
        the loop's thread means when the daemon dies.
        """
        proc = self._proc
        if proc is None or proc.poll() is not None:
            argv = [sys.executable, "-m", _CHILD_MODULE, self._path, str(self._busy_timeout_ms)]
            proc = subprocess.Popen(  # noqa: S603  (our own module, no shell)
                [*argv, str(os.getpid())],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            self._proc = proc
            log.debug("writer process started", path=self._path, pid=proc.pid)
        return proc

    def _exchange(self, proc: subprocess.Popen[bytes], payload: bytes) -> tuple[str, object]:
        with self._pipes:
            stdin, stdout = proc.stdin, proc.stdout
            if stdin is None or stdout is None:  # pragma: no cover - both are PIPEs
                raise WriterDiedError("the writer process has no pipes")
            try:
                stdin.write(HEADER.pack(len(payload)))
                stdin.write(payload)
                stdin.flush()
                answer = read_frame(stdout)
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
