"""The generic metrics ecosystem plugin (DESIGN §19): any platform priced from Prometheus.

Discovered by the plugin loader through :func:`register`.
"""

from __future__ import annotations

from chargeback.core.plugin.protocols import PluginFactory
from chargeback.plugins.generic_metrics.plugin import NAME, GenericMetricsPlugin

__all__ = ["GenericMetricsPlugin", "register"]


def register() -> tuple[str, PluginFactory]:
    """Return the ecosystem name and a factory creating one plugin per tenant."""
    return NAME, GenericMetricsPlugin
