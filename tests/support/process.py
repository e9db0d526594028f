"""Starting, watching and stopping the real servers the tests run (PostgreSQL, Prometheus).

A service that cannot start raises :class:`ServiceStartError` with the command, the exit
code and the tail of the service's own log, so a fixture that cannot give a test its
server errors loudly instead of skipping.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

LOG_TAIL_LINES = 60


class ServiceStartError(RuntimeError):
    """A test service did not start (or was found missing); the message carries its log."""

    def __init__(self, service: str, problem: str, *, log: str = "", hint: str = "") -> None:
        self.service = service
        self.problem = problem
        self.log = log
        parts = [f"{service}: {problem}"]
        if hint:
            parts.append(f"how to fix: {hint}")
        if log:
            parts.append(f"--- its log ---\n{log}")
        super().__init__("\n".join(parts))


@dataclass(frozen=True, slots=True)
class Account:
    """A system account to run a server as (root may not run initdb or postgres)."""

    name: str
    uid: int
    gid: int


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the caller binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """A log's first 20 lines (where start-up errors are) and its last ``lines`` lines."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    all_lines = text.splitlines()
    if len(all_lines) <= lines + 20:
        return text
    return "\n".join([*all_lines[:20], "[...]", *all_lines[-lines:]])


def run_checked(
    service: str,
    argv: Sequence[str],
    *,
    timeout: float,
    hint: str = "",
    cwd: Path | None = None,
    account: Account | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a setup command to completion (as ``account`` if given); non-zero exit raises."""
    try:
        done = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            cwd=cwd,
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=[] if account else None,
        )
    except FileNotFoundError as exc:
        raise ServiceStartError(service, f"{argv[0]} not found", hint=hint) from exc
    except subprocess.TimeoutExpired as exc:
        raise ServiceStartError(service, f"{' '.join(argv)} ran over {timeout} s") from exc
    if done.returncode != 0:
        output = (done.stdout or "") + (done.stderr or "")
        raise ServiceStartError(
            service,
            f"{' '.join(argv)} exited {done.returncode}",
            log="\n".join(output.splitlines()[-LOG_TAIL_LINES:]),
            hint=hint,
        )
    return done


def wait_ready(
    service: str,
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    log_path: Path,
    timeout: float,
) -> None:
    """Poll ``ready`` until it answers True; raise with the log if the process dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise ServiceStartError(
                service, f"exited with code {code} before it was ready", log=log_tail(log_path)
            )
        if ready():
            return
        time.sleep(0.1)
    stop_process(proc)
    raise ServiceStartError(service, f"not ready after {timeout} s", log=log_tail(log_path))


def stop_process(
    proc: subprocess.Popen[bytes], *, sig: int = signal.SIGTERM, grace: float = 20.0
) -> int:
    """Stop a server we started: ``sig``, then SIGKILL after ``grace`` seconds; its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(grace)
    return proc.returncode
