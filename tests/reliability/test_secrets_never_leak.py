"""The API secret (and its Basic auth value) never appears in logs, errors, files or metrics."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from structlog.testing import capture_logs
from tests.reliability.conftest import (
    API_KEY,
    API_SECRET,
    TENANT,
    HarnessFactory,
    SimHarness,
)

from chargeback.core.emitters.prometheus import make_prometheus_emitter
from chargeback.core.engine.types import NamedEmitter, RunStatus, RunSummary
from chargeback.core.telemetry import set_telemetry
from chargeback.service.metrics import ServiceMetrics

BASIC = base64.b64encode(f"{API_KEY}:{API_SECRET}".encode()).decode()
NEEDLES = {
    "secret": API_SECRET,
    "secret (base64 basic auth)": BASIC,
    "secret (url-encoded)": API_SECRET.replace("-", "%2D"),
    "secret (reversed half)": API_SECRET[len(API_SECRET) // 2 :],
}


def leaks(text: str) -> list[str]:
    """Names of the needles found in ``text``."""
    return [name for name, needle in NEEDLES.items() if needle in text]


def everything_on_disk(h: SimHarness) -> str:
    """The database (with its -wal) and every CSV file, as text."""
    parts: list[bytes] = []
    for path in [*h.db_path.parent.glob(h.db_path.name + "*"), *h.csv_dir.rglob("*")]:
        if Path(path).is_file():
            parts.append(Path(path).read_bytes())
    return b"\n".join(parts).decode("utf-8", errors="replace")


class TestSecretsNeverLeak:
    async def test_no_path_leaks_the_secret(
        self, make_harness: HarnessFactory, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Success, 401, fault storms and an outage: no output anywhere holds the secret."""
        caplog.set_level(logging.DEBUG)  # httpx/httpcore/aiosqlite debug lines included
        registry = CollectorRegistry()
        set_telemetry(ServiceMetrics(registry))
        h = make_harness(lookback_days=6)
        storage = await h.open_storage()
        prom = make_prometheus_emitter(storage_backend=storage)
        registry.register(prom)
        summaries: list[RunSummary] = []
        texts: list[str] = []

        async def run(**kw: Any) -> RunSummary:
            runtime = await h.runtime(storage, **kw)
            runtime.emitters = (*runtime.emitters, NamedEmitter("prometheus", prom))
            summary = await runtime.run()
            summaries.append(summary)
            texts.append(repr(runtime.config))
            texts.append(repr(runtime.plugin.settings))  # type: ignore[attr-defined]
            return summary

        with capture_logs() as logs:
            assert (await run()).status is RunStatus.SUCCESS  # success
            await storage.request_rerun(TENANT, h.days()[0], h.days()[-1], h.now())
            h.app.state.sim.credentials[API_KEY] = "not-the-secret-you-sent"
            unauthorized = await run()  # 401
            assert unauthorized.status is RunStatus.FAILED
            assert "401" in (unauthorized.error or "")
            h.app.state.sim.credentials[API_KEY] = API_SECRET
            h.app.state.faults.update(
                {"seed": 3, "rate_429": 0.3, "rate_503": 0.2, "rate_drop": 0.1,
                 "rate_cut_body": 0.1, "retry_after": 0}
            )  # fmt: skip
            await run()  # faults: success or a clean failure
            h.app.state.faults.update({"outage": True})
            assert (
                await run(http={"requests_per_second": None, "max_retries": 2})
            ).status is RunStatus.FAILED  # outage
            h.app.state.faults.update({"outage": False, "rate_429": 0, "rate_503": 0})
            h.app.state.faults.update({"rate_drop": 0, "rate_cut_body": 0})
            assert (await run()).status is RunStatus.SUCCESS
        await prom.refresh()
        await h.aclose()

        assert len(logs) > 50
        assert any(e.get("event") == "http request retry" for e in logs)
        texts += [repr(e) for e in logs]
        texts += [r.getMessage() + repr(r.__dict__) for r in caplog.records]
        texts += [str(s) + repr(s) for s in summaries]
        texts.append(generate_latest(registry).decode())
        texts.append(everything_on_disk(h))
        assert "401" in everything_on_disk(h)  # the runs table holds the errors that were scanned
        found = {name for text in texts for name in leaks(text)}
        assert found == set(), f"secret material found: {sorted(found)}"
