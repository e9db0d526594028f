"""The service's own Prometheus metrics (DESIGN §8, STYLE habit 12).

Everything is registered in the daemon's own :class:`CollectorRegistry`, never the
global one. Names follow Prometheus conventions: base units (seconds, currency
units), ``_total`` only on counters, labels from bounded sets (tenant names, API
hosts and endpoint templates, emitter names, statuses).

====================================================  =======================================
``chargeback_runs_total{tenant,status}``              counter: finished runs (success/failed/
                                                      cancelled/timeout)
``chargeback_run_duration_seconds{tenant}``           histogram: wall time of a run
``chargeback_last_success_timestamp_seconds{tenant}`` gauge: end of the last successful run
``chargeback_dates_calculated_total{tenant}``         counter: tenant-dates committed
``chargeback_billing_lines_read_total{tenant}``       counter: billing lines read
``chargeback_rows_written_total{tenant}``             counter: chargeback rows written
``chargeback_usage_unavailable_lines_total{tenant}`` counter: lines split by
                                                      ``usage_unavailable`` (DESIGN §13)
``chargeback_refused_lines_total{tenant}``            counter: billing lines whose amount was
                                                      refused (kept at 0 with the reason)
``chargeback_scrape_gap_lines_total{tenant}``         counter: lines without data on their day
                                                      (``scrape_gap``), stored at 0
``chargeback_unallocated_amount{tenant}``             gauge: cost on UNALLOCATED on the
                                                      latest calculated day (currency units)
``chargeback_unattributed_amount{tenant}``            gauge: UNALLOCATED + sentinel identities
                                                      + principals not in the inventory, same day
``chargeback_api_requests_total{host,endpoint,status}`` counter: ecosystem API requests
``chargeback_api_request_duration_seconds{host}``     histogram: their latency
``chargeback_api_retries_total{host,reason}``         counter: retried requests
``chargeback_emits_total{emitter,status}``            counter: emitter calls (success/failed)
``chargeback_tenants_running``                        gauge: tenants running now
``chargeback_period_closed{tenant,period}``           gauge: 1 when the month is closed
``chargeback_restatements_total{tenant}``             counter: closed days restated (from
                                                      storage; :mod:`.period_metrics`)
====================================================  =======================================
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from chargeback.core.engine.types import RunSummary
from chargeback.core.money import to_decimal
from chargeback.service.budget_metrics import BudgetMetrics
from chargeback.service.period_metrics import PeriodMetrics

__all__ = ["ServiceMetrics"]

_RUN_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_API_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _Factory:
    """Builds the daemon's metrics in one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def counter(self, name: str, doc: str, labels: tuple[str, ...]) -> Counter:
        return Counter(name, doc, labels, registry=self._registry)

    def gauge(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Gauge:
        return Gauge(name, doc, labels, registry=self._registry)

    def histogram(self, name: str, doc: str, label: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(name, doc, (label,), buckets=buckets, registry=self._registry)


class ServiceMetrics:
    """The daemon's metrics; also the :class:`~chargeback.core.telemetry.Telemetry` hook.

    Args:
        registry: the registry to register in (the daemon's own).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        make = _Factory(registry)
        self._add_run_metrics(make)
        self._add_api_metrics(make)
        self.emits = make.counter(
            "chargeback_emits",
            "Emitter calls for one tenant-date, by outcome.",
            ("emitter", "status"),
        )
        self.running = make.gauge("chargeback_tenants_running", "Tenant runs in progress.")
        self.periods = PeriodMetrics(registry)
        self.budgets = BudgetMetrics(registry)

    def _add_run_metrics(self, make: _Factory) -> None:
        """The metrics of tenant runs and what they calculated."""
        self.runs = make.counter(
            "chargeback_runs", "Finished tenant runs by outcome.", ("tenant", "status")
        )
        self.run_duration = make.histogram(
            "chargeback_run_duration_seconds",
            "Wall time of one tenant run.",
            "tenant",
            _RUN_BUCKETS,
        )
        self.last_success = make.gauge(
            "chargeback_last_success_timestamp_seconds",
            "Unix time at which the last successful run of the tenant finished.",
            ("tenant",),
        )
        self.dates_calculated = make.counter(
            "chargeback_dates_calculated", "Tenant-dates calculated and committed.", ("tenant",)
        )
        self.lines_read = make.counter(
            "chargeback_billing_lines_read", "Billing lines read from the cost input.", ("tenant",)
        )
        self.rows_written = make.counter(
            "chargeback_rows_written", "Chargeback rows written to storage.", ("tenant",)
        )
        self.usage_unavailable = make.counter(
            "chargeback_usage_unavailable_lines",
            "Billing lines split by usage_unavailable: their usage was beyond the source's "
            "retention and never collected.",
            ("tenant",),
        )
        self.refused_lines = make.counter(
            "chargeback_refused_lines",
            "Billing lines of committed dates whose reported amount was refused (out of "
            "range, or nothing to derive it from): kept at 0 with the reason.",
            ("tenant",),
        )
        self.scrape_gaps = make.counter(
            "chargeback_scrape_gap_lines",
            "Billing lines with no amount because their quantity had no samples on their "
            "day (scrape_gap): reported, never billed as zero.",
            ("tenant",),
        )
        self.unallocated = make.gauge(
            "chargeback_unallocated_amount",
            "Cost charged to UNALLOCATED on the latest calculated day, in currency units.",
            ("tenant",),
        )
        self.unattributed = make.gauge(
            "chargeback_unattributed_amount",
            "Cost on no known, real identity on the latest calculated day (UNALLOCATED, "
            "sentinel identities, principals not in the inventory), in currency units.",
            ("tenant",),
        )

    def _add_api_metrics(self, make: _Factory) -> None:
        """The metrics of the ecosystem API requests plugins make (the Telemetry hook)."""
        self.api_requests = make.counter(
            "chargeback_api_requests",
            "Ecosystem API requests by host, endpoint template and status.",
            ("host", "endpoint", "status"),
        )
        self.api_duration = make.histogram(
            "chargeback_api_request_duration_seconds",
            "Latency of ecosystem API requests.",
            "host",
            _API_BUCKETS,
        )
        self.api_retries = make.counter(
            "chargeback_api_retries",
            "Retried ecosystem API requests by host and reason.",
            ("host", "reason"),
        )

    # -- Telemetry ------------------------------------------------------------------------
    def api_request(self, host: str, endpoint: str, status: str, seconds: float) -> None:
        """Count one finished HTTP request."""
        self.api_requests.labels(host=host, endpoint=endpoint, status=status).inc()
        self.api_duration.labels(host=host).observe(max(seconds, 0.0))

    def api_retry(self, host: str, reason: str) -> None:
        """Count one retry of an HTTP request."""
        self.api_retries.labels(host=host, reason=reason).inc()

    # -- the daemon's events ----------------------------------------------------------------
    def tenant_added(self, tenant: str) -> None:
        """Create the tenant's series at zero so dashboards and alerts see them at once."""
        for status in ("success", "failed", "cancelled", "timeout"):
            self.runs.labels(tenant=tenant, status=status)
        self.dates_calculated.labels(tenant=tenant)
        self.lines_read.labels(tenant=tenant)
        self.rows_written.labels(tenant=tenant)
        self.usage_unavailable.labels(tenant=tenant)
        self.refused_lines.labels(tenant=tenant)
        self.scrape_gaps.labels(tenant=tenant)

    def tenant_removed(self, tenant: str) -> None:
        """Drop the per-tenant gauges of a tenant removed from the settings."""
        for gauge in (self.last_success, self.unallocated, self.unattributed):
            with contextlib.suppress(KeyError):
                gauge.remove(tenant)
        self.periods.forget(tenant)
        self.budgets.forget(tenant)

    def run_finished(self, summary: RunSummary, seconds: float, *, status: str) -> None:
        """Record one finished run (``status`` may be ``timeout`` on top of RunStatus)."""
        tenant = summary.tenant_id
        self.runs.labels(tenant=tenant, status=status).inc()
        self.run_duration.labels(tenant=tenant).observe(max(seconds, 0.0))
        self.dates_calculated.labels(tenant=tenant).inc(summary.dates_calculated)
        self.lines_read.labels(tenant=tenant).inc(summary.lines_read)
        self.rows_written.labels(tenant=tenant).inc(summary.rows_written)
        self.usage_unavailable.labels(tenant=tenant).inc(summary.usage_unavailable_lines)
        self.refused_lines.labels(tenant=tenant).inc(summary.refused_lines)
        self.scrape_gaps.labels(tenant=tenant).inc(summary.scrape_gap_lines)
        if status == "success" and summary.finished_at is not None:
            self.last_success.labels(tenant=tenant).set(summary.finished_at.timestamp())

    def run_aborted(self, tenant: str, seconds: float, *, status: str) -> None:
        """Record a run that ended without a summary (timeout, cancelled, start-up failure)."""
        self.runs.labels(tenant=tenant, status=status).inc()
        self.run_duration.labels(tenant=tenant).observe(max(seconds, 0.0))

    def set_last_success(self, tenant: str, timestamp: float) -> None:
        """Restore the last success time from storage at start-up."""
        self.last_success.labels(tenant=tenant).set(timestamp)

    def set_unallocated(self, tenant: str, minor: int) -> None:
        """Set the unallocated cost of the tenant's latest calculated day (minor units)."""
        self.unallocated.labels(tenant=tenant).set(float(to_decimal(minor)))

    def set_unattributed(self, tenant: str, minor: int) -> None:
        """Set the unattributed cost of the tenant's latest calculated day (minor units)."""
        self.unattributed.labels(tenant=tenant).set(float(to_decimal(minor)))

    def emitted(self, emitter: str, *, ok: bool) -> None:
        """Count one emitter call."""
        self.emits.labels(emitter=emitter, status="success" if ok else "failed").inc()
