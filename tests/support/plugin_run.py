"""One tenant's run of a built-in plugin on a real SQLite file, and what it stored.

For the tests of the Prometheus plugins (``self_managed_kafka``, ``generic_metrics``):
:func:`run_stored` runs the plugin in a real ``TenantRuntime`` over the given days (the
lookback and cutoff set so exactly those days are calculated), fails unless the run
succeeds, and reads back each day's lines and rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import httpx
from tests.support.prometheus import PrometheusServer

from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import RunStatus, RunSummary, TenantConfig
from chargeback.core.models import BillingLineItem, ChargebackRow
from chargeback.core.plugin.registry import PluginRegistry
from chargeback.core.storage.sqlite import SQLiteBackend

__all__ = ["Stored", "query_range_requests", "run_stored"]

S = TypeVar("S", bound="Stored")


class Stored:
    """What one run stored: lines and rows by date, and the run's summary."""

    def __init__(
        self,
        lines: dict[dt.date, list[BillingLineItem]],
        rows: dict[dt.date, list[ChargebackRow]],
        summary: RunSummary,
    ) -> None:
        self.lines = lines
        self.rows = rows
        self.summary = summary

    def parts(self, line: BillingLineItem) -> dict[str, int]:
        """The line's amount by identity, from its stored rows."""
        out: dict[str, int] = {}
        for row in self.rows[line.date]:
            if row.line_id == line.line_id:
                out[row.identity_id] = out.get(row.identity_id, 0) + row.amount
        return out


async def run_stored(
    stored: type[S],
    tmp_path: Path,
    *,
    tenant: str,
    ecosystem: str,
    plugin_settings: Mapping[str, Any],
    days: Sequence[dt.date],
    now: dt.datetime,
) -> tuple[S, SQLiteBackend]:
    """Run one tenant over ``days`` and read back what it stored (the storage left open)."""
    storage = SQLiteBackend(tmp_path / "chargeback.db")
    await storage.open()
    config = TenantConfig(
        name=tenant, ecosystem=ecosystem, plugin_settings=dict(plugin_settings),
        lookback_days=(now.date() - days[0]).days, cutoff_days=(now.date() - days[-1]).days,
    )  # fmt: skip
    plugin = PluginRegistry.discover().create(ecosystem)
    runtime = TenantRuntime(config, plugin, storage, clock=lambda: now)
    try:
        summary = await runtime.run("test")
        assert summary.status is RunStatus.SUCCESS, summary.error
    finally:
        await runtime.aclose()
    lines = {d: await storage.read_lines(tenant, d) for d in days}
    rows = {d: await storage.read_rows(tenant, d) for d in days}
    return stored(lines, rows, summary), storage


def query_range_requests(server: PrometheusServer) -> int:
    """The server's own count of answered ``query_range`` requests."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    pattern = r'prometheus_http_requests_total\{code="200",handler="/api/v1/query_range"\} (\d+)'
    found = re.search(pattern, text)
    return int(found.group(1)) if found else 0
