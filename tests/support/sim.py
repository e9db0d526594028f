"""ccloud_sim as its own process, as a deployment talks to it (HTTP over loopback).

:func:`serve_sim` starts ``ccloud-sim serve`` on a free port with a frozen clock and the
Metrics API keeping every day (these tests backfill beyond the real 7-day retention on
purpose), waits until it answers, yields its URL and stops it.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from tests.support.process import free_port

__all__ = ["serve_sim"]


@contextlib.contextmanager
def serve_sim(
    log_path: Path, *, scale: str, seed: int, now: str, timeout_s: float = 30
) -> Iterator[str]:
    """Run a ccloud_sim (``scale``, ``seed``, clock at ``now``) logging to ``log_path``.

    Raises:
        AssertionError: it did not answer within ``timeout_s`` (with its log).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ccloud_sim", "serve", "--port", str(port), "--seed", str(seed),
             "--scale", scale, "--now", now, "--metrics-retention-days", "unlimited"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    httpx.get(f"{url}/_sim/stats", timeout=1)
                    break
                except httpx.TransportError as exc:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise AssertionError(
                            f"ccloud_sim did not start: {log_path.read_text()}"
                        ) from exc
                    time.sleep(0.1)
            yield url
        finally:
            proc.terminate()
            proc.wait(10)
