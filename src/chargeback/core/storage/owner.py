"""Who started a run: the process that wrote its ``runs`` row, and whether it still lives.

Every run row records its owner as ``host/pid/start`` (the host name, the process id and
the process's start time in clock ticks since boot, from ``/proc``). A run still
``running`` whose owner is gone was killed (``kill -9``, a crash, a container stop): any
process that opens the database for writing marks such runs ``interrupted``, so the
daemon, ``chargeback once`` and ``rerun --now`` can share a database without one closing
another's live run. The start time tells a reused pid from the original (a container's
daemon is pid 1 after every restart).

A run of another host is never judged: its process cannot be seen from here. A run row
written before owners were recorded (no owner) counts as orphaned, as it always did.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path

__all__ = ["current_owner", "owner_alive_here", "owner_is_gone"]


def _start_ticks(pid: int) -> str | None:
    """The process's start time from ``/proc/<pid>/stat`` (field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name in parentheses may hold spaces
    return fields[19] if len(fields) > 19 else None


@functools.cache
def _host() -> str:
    return socket.gethostname()


def current_owner() -> str:
    """The owner string of this process (``host/pid/start``)."""
    pid = os.getpid()
    return f"{_host()}/{pid}/{_start_ticks(pid) or '-'}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


def owner_is_gone(owner: str | None) -> bool:
    """Whether the process recorded as ``owner`` has certainly ended (on this host)."""
    if not owner:
        return True
    if owner.partition("/")[0] != _host():
        return False
    return not owner_alive_here(owner)


def owner_alive_here(owner: str | None) -> bool:
    """Whether ``owner`` is a live process of this host (the very process it was)."""
    if not owner:
        return False
    host, _, rest = owner.partition("/")
    pid_text, _, start = rest.partition("/")
    if host != _host():
        return False
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if not _pid_alive(pid):
        return False
    now_start = _start_ticks(pid)
    return start in ("", "-") or now_start is None or now_start == start
