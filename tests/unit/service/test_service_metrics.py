"""ServiceMetrics: Prometheus names, units and the Telemetry hook (DESIGN §8)."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from chargeback.core.engine.types import RunStatus, RunSummary
from chargeback.core.telemetry import current_telemetry, set_telemetry
from chargeback.service.metrics import ServiceMetrics

T0 = dt.datetime(2026, 3, 1, 6, 0, tzinfo=dt.UTC)


def summary(**kw: object) -> RunSummary:
    base: dict[str, object] = {
        "run_id": "r1",
        "tenant_id": "acme",
        "trigger": "schedule",
        "started_at": T0,
        "finished_at": T0 + dt.timedelta(seconds=5),
        "dates_calculated": 3,
        "lines_read": 40,
        "rows_written": 120,
    }
    base.update(kw)
    return RunSummary(**base)  # type: ignore[arg-type]


class TestServiceMetrics:
    """Each daemon event lands in the right series of the daemon's own registry."""

    def test_successful_run(self) -> None:
        """A success counts the run, its work, its duration and sets last success time."""
        reg = CollectorRegistry()
        m = ServiceMetrics(reg)
        m.run_finished(summary(), 5.0, status="success")
        labels = {"tenant": "acme"}
        assert reg.get_sample_value("chargeback_runs_total", {**labels, "status": "success"}) == 1
        assert reg.get_sample_value("chargeback_dates_calculated_total", labels) == 3
        assert reg.get_sample_value("chargeback_billing_lines_read_total", labels) == 40
        assert reg.get_sample_value("chargeback_rows_written_total", labels) == 120
        assert reg.get_sample_value("chargeback_run_duration_seconds_count", labels) == 1
        assert reg.get_sample_value(
            "chargeback_last_success_timestamp_seconds", labels
        ) == pytest.approx((T0 + dt.timedelta(seconds=5)).timestamp())

    def test_failed_run_keeps_last_success(self) -> None:
        """A failure is counted and does not move the last success time."""
        reg = CollectorRegistry()
        m = ServiceMetrics(reg)
        m.run_finished(summary(status=RunStatus.FAILED), 1.0, status="failed")
        assert (
            reg.get_sample_value("chargeback_runs_total", {"tenant": "acme", "status": "failed"})
            == 1
        )
        assert (
            reg.get_sample_value("chargeback_last_success_timestamp_seconds", {"tenant": "acme"})
            is None
        )

    def test_tenant_added_creates_zero_series(self) -> None:
        """A new tenant's run counters exist at zero before its first run."""
        reg = CollectorRegistry()
        ServiceMetrics(reg).tenant_added("acme")
        assert (
            reg.get_sample_value("chargeback_runs_total", {"tenant": "acme", "status": "failed"})
            == 0
        )

    def test_unallocated_in_currency_units(self) -> None:
        """The unallocated gauge converts minor units (nanos) to currency units."""
        reg = CollectorRegistry()
        ServiceMetrics(reg).set_unallocated("acme", 12_500_000_000)
        assert reg.get_sample_value("chargeback_unallocated_amount", {"tenant": "acme"}) == 12.5

    def test_unattributed_in_currency_units_and_dropped_with_its_tenant(self) -> None:
        """The unattributed gauge converts nanos too, and goes when its tenant goes."""
        reg = CollectorRegistry()
        metrics = ServiceMetrics(reg)
        metrics.set_unattributed("acme", 7_250_000_000)
        assert reg.get_sample_value("chargeback_unattributed_amount", {"tenant": "acme"}) == 7.25
        metrics.tenant_removed("acme")
        assert reg.get_sample_value("chargeback_unattributed_amount", {"tenant": "acme"}) is None

    def test_telemetry_hook(self) -> None:
        """Installed as telemetry, API requests and retries are counted by host."""
        reg = CollectorRegistry()
        m = ServiceMetrics(reg)
        set_telemetry(m)
        current_telemetry().api_request("api.confluent.cloud", "/billing/v1/costs", "200", 0.2)
        current_telemetry().api_retry("api.confluent.cloud", "429")
        assert (
            reg.get_sample_value(
                "chargeback_api_requests_total",
                {"host": "api.confluent.cloud", "endpoint": "/billing/v1/costs", "status": "200"},
            )
            == 1
        )
        assert (
            reg.get_sample_value(
                "chargeback_api_retries_total", {"host": "api.confluent.cloud", "reason": "429"}
            )
            == 1
        )

    def test_emits_and_global_registry_untouched(self) -> None:
        """Emitter outcomes are counted in our registry only, never the global one."""
        reg = CollectorRegistry()
        m = ServiceMetrics(reg)
        m.emitted("csv", ok=True)
        m.emitted("csv", ok=False)
        assert (
            reg.get_sample_value("chargeback_emits_total", {"emitter": "csv", "status": "failed"})
            == 1
        )
        assert b"chargeback_" not in generate_latest(REGISTRY)
