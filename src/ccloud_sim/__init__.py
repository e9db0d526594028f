"""ccloud_sim: a deterministic, scalable fake Confluent Cloud (DESIGN §11).

Imports nothing from ``chargeback``. See ``README.md`` next to this file.
"""

from ccloud_sim.app import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimulatedDisconnect, create_app
from ccloud_sim.billing import LINE_TYPES, Line
from ccloud_sim.clock import SimClock
from ccloud_sim.faults import METRICS_API_REQUESTS_PER_MINUTE, Faults, RateLimits, Stats
from ccloud_sim.metrics_series import (
    FLINK_CFU_METRIC,
    KAFKA_METRICS,
    RETAINED_METRIC,
    TOPIC_METRICS,
)
from ccloud_sim.names import TEAMS, Catalogue, Ownership, Team
from ccloud_sim.org import Organization
from ccloud_sim.scales import SCALES, Scale, get_scale
from ccloud_sim.topics import INTERNAL_PREFIXES, Topic

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "FLINK_CFU_METRIC",
    "INTERNAL_PREFIXES",
    "KAFKA_METRICS",
    "LINE_TYPES",
    "METRICS_API_REQUESTS_PER_MINUTE",
    "RETAINED_METRIC",
    "SCALES",
    "TEAMS",
    "TOPIC_METRICS",
    "Catalogue",
    "Faults",
    "Line",
    "Organization",
    "Ownership",
    "RateLimits",
    "Scale",
    "SimClock",
    "SimulatedDisconnect",
    "Stats",
    "Team",
    "Topic",
    "create_app",
    "get_scale",
]
