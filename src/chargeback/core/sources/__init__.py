"""Source building blocks any ecosystem plugin can use (DESIGN §10).

- :mod:`~chargeback.core.sources.http`: :class:`HttpClient`, a retrying,
  rate-limited JSON client (per-host concurrency and request-rate limits, backoff
  with jitter honouring ``Retry-After``, ``metadata.next`` pagination, telemetry per
  attempt, secrets kept out of messages) and its :class:`HttpSettings`;
- :mod:`~chargeback.core.sources.prometheus`: :class:`PrometheusSource`, usage per
  day from a Prometheus server, with the plugin's name translation;
- :mod:`~chargeback.core.sources.values`: exact numbers and UTC days out of payloads.
"""

from __future__ import annotations

from chargeback.core.sources.http import (
    Credentials,
    HttpClient,
    HttpSettings,
    RateLimit,
    SharedRatePool,
    retry_after_seconds,
)
from chargeback.core.sources.prometheus import PrometheusSettings, PrometheusSource
from chargeback.core.sources.values import day_of, parse_decimal, usage_value

__all__ = [
    "Credentials",
    "HttpClient",
    "HttpSettings",
    "PrometheusSettings",
    "PrometheusSource",
    "RateLimit",
    "SharedRatePool",
    "day_of",
    "parse_decimal",
    "retry_after_seconds",
    "usage_value",
]
