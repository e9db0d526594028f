"""ccloud_sim: a deterministic, scalable fake Confluent Cloud (DESIGN §11).

Imports nothing from ``chargeback``. See ``README.md`` next to this file.
"""

from ccloud_sim.api_metrics import FLINK_CFU_METRIC, KAFKA_METRICS
from ccloud_sim.app import DEFAULT_API_KEY, DEFAULT_API_SECRET, SimulatedDisconnect, create_app
from ccloud_sim.billing import LINE_TYPES, Line
from ccloud_sim.clock import SimClock
from ccloud_sim.faults import Faults, RateLimits, Stats
from ccloud_sim.org import Organization
from ccloud_sim.scales import SCALES, Scale, get_scale

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "FLINK_CFU_METRIC",
    "KAFKA_METRICS",
    "LINE_TYPES",
    "SCALES",
    "Faults",
    "Line",
    "Organization",
    "RateLimits",
    "Scale",
    "SimClock",
    "SimulatedDisconnect",
    "Stats",
    "create_app",
    "get_scale",
]
