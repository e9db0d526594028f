"""The hook through which the engine and plugins report service metrics.

The daemon owns the Prometheus registry (DESIGN §8); code deep inside a plugin's HTTP
client reports through the :class:`Telemetry` in the current context instead of
importing the daemon. Outside the daemon (tests, ``chargeback once``) the default
does nothing.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Protocol

__all__ = ["NullTelemetry", "Telemetry", "current_telemetry", "set_telemetry"]


class Telemetry(Protocol):
    """Protocol: receives counts about the work being done.

    Called from the event loop only; implementations must not block.
    """

    def api_request(self, host: str, endpoint: str, status: str, seconds: float) -> None:
        """Count one finished HTTP request (``status``: the code, or an error class name)."""
        ...

    def api_retry(self, host: str, reason: str) -> None:
        """Count one retry of an HTTP request (``reason``: ``"429"``, ``"503"``, ``"timeout"``)."""
        ...


class NullTelemetry:
    """Telemetry that records nothing (the default outside the daemon)."""

    def api_request(self, host: str, endpoint: str, status: str, seconds: float) -> None:
        """Ignore a request."""

    def api_retry(self, host: str, reason: str) -> None:
        """Ignore a retry."""


_NULL = NullTelemetry()
_current: ContextVar[Telemetry | None] = ContextVar("chargeback_telemetry", default=None)


def current_telemetry() -> Telemetry:
    """Return the telemetry of the current context."""
    return _current.get() or _NULL


def set_telemetry(telemetry: Telemetry) -> None:
    """Install ``telemetry`` for the current context and the tasks it starts."""
    _current.set(telemetry)
