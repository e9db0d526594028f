"""Logging: JSON lines with context, and no secret ever written (DESIGN §9)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from chargeback.logging import (
    REDACTED,
    clear_secrets,
    configure_logging,
    redact_secrets,
    register_secrets,
)

SECRET = "Sup3r-Distinctive-Secret"


@pytest.fixture(autouse=True)
def _secrets() -> Iterator[None]:
    """Register the test secret and forget it (and our root handler) afterwards."""
    register_secrets([SECRET])
    yield
    clear_secrets()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if handler.get_name() == "chargeback":
            root.removeHandler(handler)


def json_lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


class TestRedactionProcessor:
    """redact_secrets scrubs registered values, secret keys, URL credentials and tokens."""

    def test_registered_value_inside_text(self) -> None:
        """A secret embedded in a message or value is replaced."""
        with capture_logs(processors=[redact_secrets]) as logs:
            structlog.get_logger().info("request failed", detail=f"body had {SECRET} in it")
        assert logs[0]["detail"] == f"body had {REDACTED} in it"

    def test_secret_looking_keys(self) -> None:
        """Values under api_secret / password / Authorization keys are replaced, nested too."""
        with capture_logs(processors=[redact_secrets]) as logs:
            structlog.get_logger().info(
                "settings", api_secret="abc", headers={"Authorization": "Basic xyz"}, api_key="K1"
            )
        entry = logs[0]
        assert entry["api_secret"] == REDACTED
        assert entry["headers"] == {"Authorization": REDACTED}
        assert entry["api_key"] == "K1"

    def test_url_credentials_and_tokens(self) -> None:
        """user:password@ in URLs and Basic/Bearer tokens are replaced."""
        with capture_logs(processors=[redact_secrets]) as logs:
            structlog.get_logger().info(
                "calling", url="https://key:pw123@api.example/x", h="Bearer abcdef123456"
            )
        assert logs[0]["url"] == f"https://{REDACTED}@api.example/x"
        assert logs[0]["h"] == f"Bearer {REDACTED}"

    def test_objects_with_secret_repr(self) -> None:
        """A non-string value whose text holds a secret is replaced by scrubbed text."""

        class Thing:
            def __str__(self) -> str:
                return f"Thing({SECRET})"

        with capture_logs(processors=[redact_secrets]) as logs:
            structlog.get_logger().info("x", thing=Thing(), n=3)
        assert logs[0]["thing"] == f"Thing({REDACTED})"
        assert logs[0]["n"] == 3


class TestConfiguredOutput:
    """configure_logging writes JSON lines through the redaction for ours and stdlib's."""

    def test_json_lines_with_context_and_timestamp(self) -> None:
        """A line carries bound context, level and an ISO UTC timestamp."""
        buf = io.StringIO()
        configure_logging("info", "auto", stream=buf)  # StringIO is no TTY: JSON
        with structlog.contextvars.bound_contextvars(tenant_id="acme", run_id="r1"):
            structlog.get_logger("t").info("run started", trigger="signal")
        (line,) = json_lines(buf)
        assert line["event"] == "run started"
        assert (line["tenant_id"], line["run_id"], line["level"]) == ("acme", "r1", "info")
        assert str(line["timestamp"]).endswith("Z")

    def test_exception_text_is_redacted(self) -> None:
        """A traceback containing a secret is written without it."""
        buf = io.StringIO()
        configure_logging("info", "json", stream=buf)

        def fail() -> None:
            raise ValueError(f"auth failed for {SECRET}")

        try:
            fail()
        except ValueError:
            structlog.get_logger().exception("boom")
        text = buf.getvalue()
        assert SECRET not in text
        assert "auth failed for" in text
        assert REDACTED in json_lines(buf)[0]["exception"]  # type: ignore[operator]

    def test_level_filter(self) -> None:
        """Below the configured level nothing is written."""
        buf = io.StringIO()
        configure_logging("warning", "json", stream=buf)
        structlog.get_logger().info("quiet")
        structlog.get_logger().warning("loud")
        assert [line["event"] for line in json_lines(buf)] == ["loud"]

    def test_stdlib_loggers_routed_at_warning(self) -> None:
        """httpx INFO is dropped; a library WARNING goes through the redaction as JSON."""
        buf = io.StringIO()
        configure_logging("info", "json", stream=buf)
        logging.getLogger("httpx").info("HTTP Request: GET https://a:b@host/x")
        logging.getLogger("apscheduler.scheduler").warning("job missed: %s", SECRET)
        lines = json_lines(buf)
        assert len(lines) == 1
        assert lines[0]["event"] == f"job missed: {REDACTED}"
        assert lines[0]["level"] == "warning"
        assert SECRET not in buf.getvalue()

    def test_console_format(self) -> None:
        """The console renderer writes readable text, still redacted."""
        buf = io.StringIO()
        configure_logging("info", "console", stream=buf)
        structlog.get_logger().info("hello", secret_note=SECRET, other=SECRET)
        text = buf.getvalue()
        assert "hello" in text
        assert SECRET not in text
