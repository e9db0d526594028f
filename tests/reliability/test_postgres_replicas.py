"""Replicas on PostgreSQL, killed at random during their backfills (DESIGN §18, issue 22).

Three ``chargeback run`` daemons share one PostgreSQL database and several tenants (all
on one ccloud_sim). While they backfill, random replicas are SIGKILLed at random
moments and started again. When the dust settles:

- every tenant-date is computed exactly once (``calc_seq`` 1: a takeover finds the
  dates its dead predecessor committed and skips them, none twice);
- every tenant's rows, sums and date states equal those of one clean ``chargeback
  once`` into a database of its own;
- no run is left ``running`` and no lease is held;
- fencing held: any commit refused for a lost lease is in a log, never in the data.

Sizes: ``CB_REPLICA_TENANTS`` (default 3) tenants, ``CB_REPLICA_KILLS`` (default 6)
kills; the issue's 6 tenants and 20 kills run with those set (see bench/README.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from tests.storage_targets import POSTGRESQL, postgres_cluster
from tests.support.process import free_port
from tests.support.sim import serve_sim

from chargeback.core.storage.factory import open_backend
from chargeback.settings import StorageSettings

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.timeout(600)]

REPLICAS = 3
TENANTS = int(os.environ.get("CB_REPLICA_TENANTS", "3"))
KILLS = int(os.environ.get("CB_REPLICA_KILLS", "6"))
LOOKBACK = int(os.environ.get("CB_REPLICA_LOOKBACK_DAYS", "15"))
CLI = [sys.executable, "-m", "chargeback.cli"]
ALL_TIME = (dt.date(2000, 1, 1), dt.date(2100, 1, 1))
SIM_NOW = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0).isoformat()
"""The sim's clock stands still (its inventory too), so the clean run and the replicas see
one organization; the daemons' own clock is real (the same UTC day, but for midnight)."""


def _wait(check: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One ccloud_sim for every tenant of every replica."""
    log_path = tmp_path_factory.mktemp("sim") / "sim.log"
    with serve_sim(log_path, scale="tiny", seed=9, now=SIM_NOW) as url:
        yield url


def _settings(var: Path, url: str, sim: str, port: int) -> str:
    tenants = "".join(
        f"  t{i}:\n    ecosystem: confluent_cloud\n    plugin_settings:\n"
        f"      api_key: SIMKEY\n      api_secret: SIMSECRET\n      base_url: {sim}\n"
        f"      telemetry_url: {sim}\n      flink_url: {sim}\n"
        for i in range(TENANTS)
    )
    return (
        f"storage: {{url: '{url}', lease_ttl_s: 1.5}}\n"
        f"http: {{host: 127.0.0.1, port: {port}}}\n"
        "logging: {level: info, format: json}\n"
        f"daemon: {{pid_file: {var / 'cb.pid'}, heartbeat_file: {var / 'hb'}}}\n"
        f"scheduling: {{lookback_days: {LOOKBACK}, cutoff_days: 3, recalc_days: 0, jitter_s: 0,"
        " schedule: '0 0 1 1 *', run_missed_on_startup: true, max_concurrent_tenants: 2}\n"
        f"tenants:\n{tenants}"
    )


class Replica:
    """One daemon process; ``kill`` is SIGKILL, ``start`` a fresh process (new owner id)."""

    def __init__(self, index: int, root: Path, url: str, sim: str) -> None:
        self.var = root / f"replica{index}"
        self.var.mkdir(parents=True)
        self.config = self.var / "settings.yaml"
        self.port = free_port()
        self.config.write_text(_settings(self.var, url, sim, self.port), encoding="utf-8")
        self.logs: list[Path] = []
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = self.var / f"daemon-{len(self.logs)}.log"
        self.logs.append(log)
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*CLI, "run", "--config", str(self.config)], stdout=out, stderr=subprocess.STDOUT
            )

    def holds(self, owners: list[str]) -> bool:
        """Whether one of these lease owner ids is this process (``host-pid-random``)."""
        pid = None if self.proc is None else self.proc.pid
        return any(o.split("-")[-2] == str(pid) for o in owners)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in self.logs)


def _live_owners(dsn: str, *, timeout_s: float) -> list[str]:
    """The owners of live leases, once there is one (or none after ``timeout_s``)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with psycopg.connect(dsn, password=postgres_cluster().password) as conn:
            try:
                rows = conn.execute(
                    "SELECT owner_id FROM tenant_leases WHERE expires_at > now() "
                    "AND owner_id IS NOT NULL"
                ).fetchall()
            except psycopg.errors.UndefinedTable:
                rows = []
        if rows:
            return [str(r[0]) for r in rows]
        time.sleep(0.1)
    return []


def _settled(dsn: str, expected_dates: int) -> bool:
    with psycopg.connect(dsn, password=postgres_cluster().password) as conn:
        try:
            row = conn.execute(
                "SELECT (SELECT COUNT(*) FROM date_state),"
                " (SELECT COUNT(*) FROM runs WHERE status = 'running'),"
                " (SELECT COUNT(DISTINCT tenant_id) FROM runs WHERE status = 'success')"
            ).fetchone()
        except psycopg.errors.UndefinedTable:  # no replica has migrated it yet
            return False
    assert row is not None
    return row == (expected_dates * TENANTS, 0, TENANTS)


async def _digest(settings: StorageSettings, tenant: str) -> tuple[Any, ...]:
    async with open_backend(settings, read_only=True) as store:
        states = await store.get_date_states(tenant, *ALL_TIME)
        rows = hashlib.sha256()
        for day in sorted(states):
            for row in await store.read_rows(tenant, day):
                rows.update(repr(tuple(row)).encode())
        sums = await store.reconcile(tenant, *ALL_TIME)
        kept = {d: (s.billing_fingerprint, s.inventory_fingerprint, s.billed_total,
                    s.allocated_total, s.row_count) for d, s in states.items()}  # fmt: skip
        return kept, rows.hexdigest(), sums, {d: s.calc_seq for d, s in states.items()}


def _probes(replica: Replica) -> tuple[dict[str, Any], str]:
    """``/healthz`` (lease state) and ``/metrics`` of a replica once it is ready."""
    base = f"http://127.0.0.1:{replica.port}"

    last: list[str] = []

    def ready() -> bool:
        try:
            answer = httpx.get(f"{base}/readyz", timeout=2)
        except httpx.HTTPError as exc:
            last[:] = [repr(exc)]
            return False
        last[:] = [answer.text]
        return answer.status_code == 200

    try:
        _wait(ready, 30, "/readyz of a replica")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; its last answer: {last}") from None
    index = httpx.get(f"{base}/api/v1/")  # the HTTP server's own read-only PostgreSQL backend
    assert index.status_code == 200, index.text
    assert all(f'"t{i}"' in index.text for i in range(TENANTS)), index.text
    return httpx.get(f"{base}/healthz").json(), httpx.get(f"{base}/metrics").text


class TestReplicasUnderKills:
    def test_random_sigkills_leave_every_date_computed_once_and_right(
        self, sim: str, tmp_path: Path
    ) -> None:
        """3 replicas, random SIGKILLs during backfills: the result equals one clean run."""
        clean = POSTGRESQL.make(tmp_path / "clean")
        assert clean.url is not None
        config = tmp_path / "clean.yaml"
        config.write_text(_settings(tmp_path, clean.url, sim, free_port()), encoding="utf-8")
        done = subprocess.run([*CLI, "once", "--config", str(config)], capture_output=True,
                              text=True, timeout=300, check=False)  # fmt: skip
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        reference = {f"t{i}": asyncio.run(_digest(clean, f"t{i}")) for i in range(TENANTS)}
        expected_dates = len(reference["t0"][0])
        assert expected_dates >= 8

        shared = POSTGRESQL.make(tmp_path / "shared")
        assert shared.url is not None
        replicas = [Replica(i, tmp_path, shared.url, sim) for i in range(REPLICAS)]
        rng = random.Random(22)  # noqa: S311  (reproducible kill times, not crypto)
        try:
            for replica in replicas:
                replica.start()
            for _ in range(KILLS):
                owners = _live_owners(shared.url, timeout_s=15)
                time.sleep(rng.uniform(0.0, 0.8))  # a random moment of the held run
                holders = [r for r in replicas if r.holds(owners)] or replicas
                victim = rng.choice(holders)
                victim.kill()
                victim.start()
            _wait(lambda: _settled(shared.url or "", expected_dates), 240, "every date computed")
            probes = _probes(replicas[0])
        finally:
            for replica in replicas:
                replica.stop()
        logs = "".join(r.text() for r in replicas)
        health, scrape = probes
        assert health["leases"]["owner"].endswith(tuple("0123456789abcdef"))
        assert health["leases"]["held"] == []  # settled: nothing runs
        assert "chargeback_leases_held 0.0" in scrape
        assert "chargeback_lease_claims_total" in scrape
        for tenant, (kept, rows, sums, seqs) in reference.items():
            got_kept, got_rows, got_sums, got_seqs = asyncio.run(_digest(shared, tenant))
            differ = {d: (kept.get(d), got_kept.get(d)) for d in kept | got_kept
                      if kept.get(d) != got_kept.get(d)}  # fmt: skip
            assert not differ, f"{tenant}: dates differ from the clean run: {differ}"
            assert (got_rows, got_sums) == (rows, sums), tenant
            assert set(got_seqs.values()) == {1}, f"{tenant}: a date was computed twice"
            assert set(seqs.values()) == {1}
        with psycopg.connect(shared.url, password=postgres_cluster().password) as conn:
            held = conn.execute(
                "SELECT COUNT(*) FROM tenant_leases WHERE expires_at > now()"
            ).fetchone()
        assert held == (0,)  # every replica released its leases at its stop
        assert "lease taken over" in logs  # the kills did hit running tenants
        assert "Traceback" not in logs.replace("LeaseLostError", "")
