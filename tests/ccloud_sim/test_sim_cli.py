# mypy: allow-untyped-defs
"""The ``ccloud-sim`` CLI: ``truth`` in-process and ``serve`` as a real subprocess."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from ccloud_sim import Organization
from ccloud_sim.cli import main

NOW = "2026-03-15T12:00:00Z"


class TestTruthCommand:
    def test_truth_of_one_line(self, capsys):
        """`truth --line-id` prints the ground truth of that line as JSON."""
        org = Organization(5, "tiny", Organization(5, "tiny").anchor)
        line = next(
            x for x in org.billing_lines(org.anchor.replace(day=1))
            if x.line_type == "KAFKA_NETWORK_WRITE"
        )  # fmt: skip
        args = ["truth", "--seed", "5", "--scale", "tiny", "--date", str(line.day)]
        assert main([*args, "--line-id", line.id]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["line_id"] == line.id
        assert out["basis"] == "request_bytes"
        assert sum(out["principals"].values()) > 0

    def test_truth_of_a_day(self, capsys):
        """Without --line-id, truth lists every line of the date."""
        args = ["truth", "--seed", "5", "--date", "2026-03-01", "--anchor", "2026-03-15"]
        assert main(args) == 0
        out = json.loads(capsys.readouterr().out)
        assert isinstance(out, list)
        assert {t["line_type"] for t in out} >= {"SUPPORT", "KAFKA_STORAGE"}

    def test_unknown_line(self, capsys):
        """An unknown line id exits 1 with a message."""
        assert main(["truth", "--date", "2026-03-01", "--line-id", "cost-x"]) == 1
        assert "cost-x" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def server() -> Iterator[str]:
    """A real `python -m ccloud_sim serve` on a free loopback port."""
    port = _free_port()
    cmd = [sys.executable, "-m", "ccloud_sim", "serve", "--port", str(port), "--seed", "3",
           "--now", NOW]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{base}/_sim/stats", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        banner, _ = proc.communicate(timeout=10)
        assert "SIMKEY:SIMSECRET" in banner
        assert base in banner
        assert "metrics retention 7 days" in banner


@pytest.mark.e2e
class TestServe:
    def test_serves_over_http(self, server):
        """The subprocess serves billing, metrics and auth over real HTTP."""
        with httpx.Client(base_url=server, auth=("SIMKEY", "SIMSECRET"), timeout=10) as c:
            r = c.get(
                "/billing/v1/costs", params={"start_date": "2026-03-01", "end_date": "2026-03-05"}
            )
            assert r.status_code == 200
            assert r.json()["data"]
            nxt = c.get(
                "/iam/v2/api-keys", params={"page_size": 3}
            ).json()["metadata"]["next"]  # fmt: skip
            assert nxt.startswith(server)
            assert c.get(nxt).status_code == 200
            assert c.get("/org/v2/environments", auth=("x", "y")).status_code == 401

    def test_dropped_connection_closes_socket(self, server):
        """With rate_drop=1 the real server closes the connection mid-response."""
        with httpx.Client(base_url=server, auth=("SIMKEY", "SIMSECRET"), timeout=10) as c:
            c.post("/_sim/faults", json={"rate_drop": 1.0})
            with pytest.raises(httpx.TransportError):
                c.get("/iam/v2/users")
            c.post("/_sim/faults", json={"rate_drop": 0.0})
            assert c.get("/iam/v2/users").status_code == 200
