"""The Confluent Cloud ecosystem plugin (DESIGN §10).

Discovered by the plugin loader through :func:`register`.
"""

from __future__ import annotations

from chargeback.core.plugin.protocols import PluginFactory
from chargeback.plugins.confluent_cloud.plugin import NAME, ConfluentCloudPlugin

__all__ = ["ConfluentCloudPlugin", "register"]


def register() -> tuple[str, PluginFactory]:
    """Return the ecosystem name and a factory creating one plugin per tenant."""
    return NAME, ConfluentCloudPlugin
