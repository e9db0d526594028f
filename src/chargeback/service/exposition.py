"""What the daemon's ``/metrics`` serves: its own registry, then the chargeback series.

The service registry is small and rendered per scrape; the chargeback series (tens of
thousands on a big organization) come pre-rendered, and pre-compressed, from each
``prometheus`` emitter's last refresh. Both methods are called on the HTTP server's
thread (:class:`~chargeback.service.http.Exposition`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from chargeback.core.emitters.prometheus import PrometheusEmitter
from chargeback.service.http import gzip_stream

__all__ = ["DaemonExposition"]


class DaemonExposition:
    """The ``/metrics`` body of one daemon.

    Args:
        registry: the daemon's own service registry.

    Attributes:
        emitters: the ``prometheus`` emitters whose series are served after it.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.emitters: list[PrometheusEmitter] = []

    def exposition(self) -> bytes:
        """Return the service metrics, then the chargeback series, as text."""
        return generate_latest(self.registry) + b"".join(e.exposition() for e in self.emitters)

    def exposition_gzip(self) -> bytes:
        """Return :meth:`exposition`'s families as one gzip member, compressing little.

        The chargeback part was compressed at its last refresh; only the small service
        registry is compressed per scrape. The chargeback families come first here
        (the order of families does not matter to Prometheus).
        """
        parts = [(p.text, p.deflate, p.crc) for p in (e.published() for e in self.emitters)]
        return gzip_stream(parts, generate_latest(self.registry))

    async def flush(self) -> None:
        """Let every emitter publish what its last dates changed (after each run)."""
        for emitter in self.emitters:
            await emitter.flush()

    def set_tenants(self, tenants: list[str]) -> None:
        """Tell every emitter which tenants are configured (at start and on reload)."""
        for emitter in self.emitters:
            emitter.set_tenants(tenants)
