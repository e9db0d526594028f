"""The self-managed Kafka ecosystem plugin (DESIGN §19).

Discovered by the plugin loader through :func:`register`.
"""

from __future__ import annotations

from chargeback.core.plugin.protocols import PluginFactory
from chargeback.plugins.self_managed_kafka.plugin import NAME, SelfManagedKafkaPlugin

__all__ = ["SelfManagedKafkaPlugin", "register"]


def register() -> tuple[str, PluginFactory]:
    """Return the ecosystem name and a factory creating one plugin per tenant."""
    return NAME, SelfManagedKafkaPlugin
