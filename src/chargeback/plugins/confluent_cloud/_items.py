"""Parsing of Confluent Cloud API items into the core's resources and identities.

Pure functions, one per item kind of the inventory listings (reference §3); a
malformed item (no id) parses to ``None`` and is left out. Connector ownership
follows the connector's ``kafka.auth.mode`` (:func:`connector_owner`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from chargeback.core.models import Identity, Resource

__all__ = [
    "CONNECTOR_CREDENTIALS_MASKED",
    "CONNECTOR_OWNER_UNKNOWN",
    "SENTINELS",
    "connector_owner",
    "env_of",
    "field_at",
    "org_id_from_crn",
    "parse_api_key",
    "parse_cluster",
    "parse_connector",
    "parse_identity",
    "parse_ksql",
    "parse_pool",
    "parse_registry",
    "parse_resource",
    "parse_statement",
    "text",
]

CONNECTOR_CREDENTIALS_MASKED = "CONNECTOR_CREDENTIALS_MASKED"
"""Owner of connectors whose ``kafka.api.key`` the API returned masked (``****``)."""
CONNECTOR_OWNER_UNKNOWN = "CONNECTOR_OWNER_UNKNOWN"
"""Owner of connectors whose credentials name nobody we know."""

SENTINELS = (
    Identity(CONNECTOR_CREDENTIALS_MASKED, "sentinel", "connector credentials masked by the API"),
    Identity(CONNECTOR_OWNER_UNKNOWN, "sentinel", "connector owner unknown"),
)


def _ts(value: object) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def field_at(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(name)
    return obj


def text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def org_id_from_crn(crn: str | None) -> str | None:
    """Return the organization id of a CRN (``crn://confluent.cloud/organization=<id>/...``)."""
    if not crn:
        return None
    for part in crn.split("/"):
        if part.startswith("organization="):
            return part.split("=", 1)[1] or None
    return None


def _times(item: Mapping[str, Any]) -> tuple[dt.datetime | None, dt.datetime | None]:
    return _ts(field_at(item, "metadata", "created_at")), _ts(
        field_at(item, "metadata", "deleted_at")
    )


def parse_resource(
    item: Mapping[str, Any],
    rtype: str,
    *,
    env_id: str | None,
    parent_id: str | None = None,
    owner_id: str | None = None,
    attrs: Mapping[str, str | None] | None = None,
) -> Resource | None:
    rid = text(item.get("id"))
    if rid is None:
        return None
    created, deleted = _times(item)
    name = text(field_at(item, "spec", "display_name")) or text(item.get("display_name"))
    return Resource(
        rid, rtype, name, env_id, parent_id, owner_id, created, deleted,
        {k: v for k, v in (attrs or {}).items() if v is not None},
    )  # fmt: skip


def parse_identity(
    item: Mapping[str, Any], itype: str, *, owner_id: str | None = None,
    resource_id: str | None = None, attrs: Mapping[str, str | None] | None = None,
) -> Identity | None:  # fmt: skip
    iid = text(item.get("id"))
    if iid is None:
        return None
    created, deleted = _times(item)
    name = (
        text(item.get("display_name")) or text(field_at(item, "spec", "display_name"))
        or text(item.get("full_name")) or text(item.get("email"))
    )  # fmt: skip
    # The description is where Confluent Cloud often says who owns a service account,
    # an API key or a pool: ownership rules can read it (DESIGN §14).
    desc = text(item.get("description")) or text(field_at(item, "spec", "description"))
    return Identity(
        iid, itype, name, owner_id, resource_id, created, deleted,
        {k: v for k, v in {**(attrs or {}), "description": desc}.items() if v is not None},
    )  # fmt: skip


def connector_owner(config: Mapping[str, Any], key_owner: Mapping[str, str]) -> tuple[str, str]:
    """Return ``(owner id, auth mode)`` of a connector from its ``info.config``.

    ``SERVICE_ACCOUNT`` -> ``kafka.service.account.id``; ``KAFKA_API_KEY`` -> the key's
    owner (the key id itself when the key is not listed: resolved again later); a
    masked key -> :data:`CONNECTOR_CREDENTIALS_MASKED`; anything else ->
    :data:`CONNECTOR_OWNER_UNKNOWN`. A missing ``kafka.auth.mode`` is inferred from
    which credential keys are present.
    """
    mode = text(config.get("kafka.auth.mode"))
    sa = text(config.get("kafka.service.account.id"))
    key = text(config.get("kafka.api.key"))
    if mode is None:
        mode = "SERVICE_ACCOUNT" if sa else "KAFKA_API_KEY" if key else "UNKNOWN"
    mode = mode.upper()
    if mode == "SERVICE_ACCOUNT":
        return (sa or CONNECTOR_OWNER_UNKNOWN), mode
    if mode == "KAFKA_API_KEY":
        if key is None:
            return CONNECTOR_OWNER_UNKNOWN, mode
        if set(key) <= {"*"}:
            return CONNECTOR_CREDENTIALS_MASKED, mode
        return key_owner.get(key, key), mode
    return CONNECTOR_OWNER_UNKNOWN, mode


def parse_api_key(item: Mapping[str, Any]) -> Identity | None:
    owner = text(field_at(item, "spec", "owner", "id"))
    res = field_at(item, "spec", "resource")
    res_id = text(field_at(res, "id"))
    env = field_at(res, "environment")
    env_id = text(env) if isinstance(env, str) else text(field_at(env, "id"))
    return parse_identity(
        item, "api_key", owner_id=owner, resource_id=res_id,
        attrs={"resource_kind": text(field_at(res, "kind")), "env_id": env_id},
    )  # fmt: skip


def env_of(item: Mapping[str, Any], default: str) -> str:
    return text(field_at(item, "spec", "environment", "id")) or default


def parse_cluster(item: Mapping[str, Any], env: str) -> Resource | None:
    spec = item.get("spec") or {}
    return parse_resource(
        item, "kafka_cluster", env_id=env_of(item, env),
        attrs={
            "cloud": text(field_at(spec, "cloud")), "region": text(field_at(spec, "region")),
            "kind": text(field_at(spec, "config", "kind")),
        },
    )  # fmt: skip


def parse_ksql(item: Mapping[str, Any], env: str) -> Resource | None:
    return parse_resource(
        item, "ksqldb_cluster", env_id=env_of(item, env),
        parent_id=text(field_at(item, "spec", "kafka_cluster", "id")),
        owner_id=text(field_at(item, "spec", "credential_identity", "id")),
    )  # fmt: skip


def parse_registry(item: Mapping[str, Any], env: str) -> Resource | None:
    return parse_resource(
        item, "schema_registry", env_id=env_of(item, env),
        attrs={"package": text(field_at(item, "spec", "package"))},
    )  # fmt: skip


def parse_pool(item: Mapping[str, Any], env: str) -> Resource | None:
    spec = item.get("spec") or {}
    return parse_resource(
        item, "flink_compute_pool", env_id=env_of(item, env),
        attrs={
            "cloud": text(field_at(spec, "cloud")), "region": text(field_at(spec, "region")),
            "org_id": org_id_from_crn(text(field_at(item, "metadata", "resource_name"))),
        },
    )  # fmt: skip


def parse_connector(
    name: str, item: Any, cluster: Resource, key_owner: Mapping[str, str]
) -> Resource | None:
    if not isinstance(item, dict):
        return None
    cid = text(field_at(item, "id", "id"))
    if cid is None:
        return None
    config = field_at(item, "info", "config")
    config = config if isinstance(config, dict) else {}
    owner, mode = connector_owner(config, key_owner)
    key = text(config.get("kafka.api.key"))
    return Resource(
        cid, "connector", name, cluster.env_id, cluster.resource_id, owner,
        attributes={
            k: v for k, v in {
                "auth_mode": mode, "kafka_api_key": key if key and set(key) - {"*"} else None,
                "connector_class": text(config.get("connector.class")),
                "state": text(field_at(item, "status", "connector", "state")),
            }.items() if v is not None
        },
    )  # fmt: skip


def parse_statement(item: Mapping[str, Any], env: str) -> Resource | None:
    """A Flink statement: id ``<env>/<name>``, parent its compute pool, owner its principal."""
    name = text(item.get("name"))
    pool = text(field_at(item, "spec", "compute_pool_id"))
    if name is None or pool is None:
        return None
    created, deleted = _times(item)
    return Resource(
        f"{env}/{name}", "flink_statement", name, env, pool,
        text(field_at(item, "spec", "principal")), created, deleted,
        {"statement_name": name, "phase": text(field_at(item, "status", "phase")) or ""},
    )  # fmt: skip
