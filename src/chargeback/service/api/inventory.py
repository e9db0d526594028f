"""``GET /api/v1/identities`` and ``/resources``: the stored inventory with names and periods.

Every identity and resource ever seen, deleted ones with their ``deleted_at``, sorted by
id; ``type`` filters one kind, ``limit``/``offset`` page.
"""

from __future__ import annotations

import datetime as dt

from pydantic import Field
from starlette.responses import Response

from chargeback.service.api._endpoint import ApiContext, Endpoint, TenantParams, model_response
from chargeback.service.api._models import (
    IdentitiesAnswer,
    IdentityModel,
    ResourceModel,
    ResourcesAnswer,
)

__all__ = ["identities_endpoint", "resources_endpoint"]


class InventoryParams(TenantParams):
    """The inventory's parameters."""

    type: str | None = Field(None, description="only this identity or resource type")
    limit: int = Field(1000, ge=0, le=10_000)
    offset: int = Field(0, ge=0)


def _time(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


async def identities(ctx: ApiContext, p: InventoryParams) -> Response:
    """Every identity of the tenant."""
    tenant = await ctx.tenant(p.tenant)
    _, found = await ctx.storage.load_inventory(tenant)
    chosen = sorted(
        (i for i in found if p.type is None or i.identity_type == p.type),
        key=lambda i: i.identity_id,
    )
    page = chosen[p.offset : p.offset + p.limit]
    models = [
        IdentityModel(
            identity_id=i.identity_id,
            identity_type=i.identity_type,
            name=i.display_name,
            owner_id=i.owner_id,
            resource_id=i.resource_id,
            created_at=_time(i.created_at),
            deleted_at=_time(i.deleted_at),
        )
        for i in page
    ]
    return model_response(IdentitiesAnswer(tenant=tenant, total=len(chosen), identities=models))


async def resources(ctx: ApiContext, p: InventoryParams) -> Response:
    """Every resource of the tenant."""
    tenant = await ctx.tenant(p.tenant)
    found, _ = await ctx.storage.load_inventory(tenant)
    chosen = sorted(
        (r for r in found if p.type is None or r.resource_type == p.type),
        key=lambda r: r.resource_id,
    )
    page = chosen[p.offset : p.offset + p.limit]
    models = [
        ResourceModel(
            resource_id=r.resource_id,
            resource_type=r.resource_type,
            name=r.display_name,
            env_id=r.env_id,
            parent_id=r.parent_id,
            owner_id=r.owner_id,
            created_at=_time(r.created_at),
            deleted_at=_time(r.deleted_at),
        )
        for r in page
    ]
    return model_response(ResourcesAnswer(tenant=tenant, total=len(chosen), resources=models))


identities_endpoint = Endpoint(
    "/identities", "Identities ever seen, with names and active periods", InventoryParams,
    IdentitiesAnswer, identities,
)  # fmt: skip
resources_endpoint = Endpoint(
    "/resources", "Resources ever seen, with names, environments and active periods",
    InventoryParams, ResourcesAnswer, resources,
)  # fmt: skip
