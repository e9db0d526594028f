"""The daemon's pid file: written at start, removed at exit (``chargeback rerun`` signals it)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import structlog

from chargeback.errors import ChargebackError

__all__ = ["remove_pid", "write_pid"]

log = structlog.get_logger(__name__)


def write_pid(path: Path) -> None:
    """Write this process's pid to ``path`` (a stale file is overwritten, a live one warned of).

    Raises:
        ChargebackError: the file or its directory cannot be written (one line naming
            the path and ``daemon.pid_file``).
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "a file is in the way" if isinstance(exc, FileExistsError) else exc.strerror
        raise ChargebackError(
            f"cannot create the pid file's directory {path.parent}: {why}; create "
            "it, or point daemon.pid_file at a writable place"
        ) from None
    with contextlib.suppress(OSError, ValueError):
        other = int(path.read_text(encoding="utf-8").strip())
        if other != os.getpid():
            os.kill(other, 0)  # raises if no such process: a stale file
            log.warning("pid file names a running process; overwriting", pid=other)
    try:
        path.write_text(f"{os.getpid()}\n", encoding="utf-8")
    except OSError as exc:
        raise ChargebackError(
            f"cannot write the pid file {path}: {exc.strerror}; make it writable, or point "
            "daemon.pid_file at a writable place"
        ) from None


def remove_pid(path: Path) -> None:
    """Remove ``path`` if it still names this process."""
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        if int(path.read_text(encoding="utf-8").strip()) == os.getpid():
            path.unlink()
