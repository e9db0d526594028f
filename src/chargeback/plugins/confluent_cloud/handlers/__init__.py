"""The service handlers of the Confluent Cloud plugin, one per service."""

from __future__ import annotations

from chargeback.plugins.confluent_cloud.handlers.base import BaseHandler, IndexCache
from chargeback.plugins.confluent_cloud.handlers.connectors import ConnectorHandler
from chargeback.plugins.confluent_cloud.handlers.flink import FlinkHandler
from chargeback.plugins.confluent_cloud.handlers.kafka import KafkaHandler
from chargeback.plugins.confluent_cloud.handlers.ksqldb import KsqlHandler
from chargeback.plugins.confluent_cloud.handlers.org_wide import OrgWideHandler
from chargeback.plugins.confluent_cloud.handlers.schema_registry import SchemaRegistryHandler

__all__ = [
    "HANDLER_CLASSES",
    "BaseHandler",
    "ConnectorHandler",
    "FlinkHandler",
    "IndexCache",
    "KafkaHandler",
    "KsqlHandler",
    "OrgWideHandler",
    "SchemaRegistryHandler",
]

HANDLER_CLASSES: tuple[type[BaseHandler], ...] = (
    KafkaHandler,
    ConnectorHandler,
    KsqlHandler,
    FlinkHandler,
    SchemaRegistryHandler,
    OrgWideHandler,
)
