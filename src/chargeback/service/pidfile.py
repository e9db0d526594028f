"""The daemon's pid file: written at start, removed at exit (``chargeback rerun`` signals it)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import structlog

__all__ = ["remove_pid", "write_pid"]

log = structlog.get_logger(__name__)


def write_pid(path: Path) -> None:
    """Write this process's pid to ``path`` (a stale file is overwritten, a live one warned of)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError, ValueError):
        other = int(path.read_text(encoding="utf-8").strip())
        if other != os.getpid():
            os.kill(other, 0)  # raises if no such process: a stale file
            log.warning("pid file names a running process; overwriting", pid=other)
    path.write_text(f"{os.getpid()}\n", encoding="utf-8")


def remove_pid(path: Path) -> None:
    """Remove ``path`` if it still names this process."""
    with contextlib.suppress(FileNotFoundError, ValueError, OSError):
        if int(path.read_text(encoding="utf-8").strip()) == os.getpid():
            path.unlink()
