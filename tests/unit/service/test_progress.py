"""The progress lines: counted requests by endpoint, logged only while a run is going."""

from __future__ import annotations

from structlog.testing import capture_logs

from chargeback.core.telemetry import NullTelemetry
from chargeback.service.progress import ProgressTelemetry


def test_progress_reports_requests_since_the_last_line_only_while_running() -> None:
    """Idle: no line. Running: the requests since the last line by endpoint, and in all."""
    running: list[str] = []
    progress = ProgressTelemetry(NullTelemetry(), lambda: list(running), interval_s=0.01)
    progress.api_request("h", "/billing/v1/costs", "200", 0.1)
    with capture_logs() as logs:
        assert not progress.report()  # nothing runs: nothing said
        running.append("prod")
        progress.api_request("h", "/billing/v1/costs", "200", 0.1)
        progress.api_request("h", "/cmk/v2/clusters", "200", 0.1)
        progress.api_retry("h", "429")
        progress.date_emitted()
        assert progress.report()
        assert progress.report()  # nothing new: says so
    first, second = logs
    assert first["event"] == "run progress"
    assert first["running"] == ["prod"]
    assert first["by_endpoint"] == {"/billing/v1/costs": 1, "/cmk/v2/clusters": 1}
    assert (first["api_requests"], first["api_requests_last"]) == (3, 2)
    assert (first["retries"], first["dates_emitted"]) == (1, 1)
    assert second["api_requests_last"] == 0
    assert str(second["by_endpoint"]).startswith("no API request")
