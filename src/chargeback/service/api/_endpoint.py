"""One API endpoint = a path, a params model, an answer model and a handler.

The wrapper turns the query string into the params model (pydantic validates it), calls
the handler and turns every refusal into a JSON :class:`~._models.ErrorAnswer`: a
pydantic error or a :class:`~chargeback.errors.QueryError` is a 400 naming the
parameter, :class:`ApiError` carries its own status (403, 404). The same records
generate the OpenAPI document (:mod:`._openapi`), so the document always describes
what is served.
"""

from __future__ import annotations

import datetime as dt
import json
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from chargeback.core.budgets.config import BudgetSettings
from chargeback.core.query import QuerySource, query_source
from chargeback.core.storage.backend import StorageBackend
from chargeback.errors import QueryError
from chargeback.service.api._auth import Scope, scope_of
from chargeback.service.api._models import ErrorAnswer
from chargeback.service.http import storage_of

__all__ = [
    "ApiContext",
    "ApiError",
    "Endpoint",
    "TenantParams",
    "error_response",
    "make_context",
    "model_response",
]

P = TypeVar("P", bound=BaseModel)

_STATUS_TEXT = {400: "bad request", 401: "unauthorized", 403: "forbidden", 404: "not found"}


class ApiError(Exception):
    """A refusal with its HTTP status (403: out of the token's scope, 404: no such thing)."""

    def __init__(self, status: int, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.parameter = parameter


class TenantParams(BaseModel):
    """Parameters every tenant's endpoint takes."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    tenant: str | None = Field(
        None, description="the tenant (may be left out when the database holds only one)"
    )


def model_response(model: BaseModel, status: int = 200) -> Response:
    """A JSON answer from its model."""
    return Response(model.model_dump_json().encode() + b"\n", status, media_type="application/json")


def error_response(status: int, message: str, parameter: str | None = None) -> Response:
    """A JSON refusal."""
    answer = ErrorAnswer(
        status=_STATUS_TEXT.get(status, "error"), error=message, parameter=parameter
    )
    return model_response(answer, status)


@dataclass
class ApiContext:
    """What a handler works with: the request, storage, the query source and the scope."""

    request: Request
    storage: StorageBackend
    scope: Scope
    today: dt.date
    open_days: Callable[[str], int]
    budgets: BudgetSettings = field(default_factory=BudgetSettings)
    _source: QuerySource | None = field(default=None, repr=False)

    @property
    def source(self) -> QuerySource:
        """The grouped reads of the same database (built on first use)."""
        if self._source is None:
            self._source = query_source(self.storage)
        return self._source

    async def tenant(self, given: str | None) -> str:
        """The tenant a request is about, checked against the token's scope and the database.

        Raises:
            ApiError: outside the token's scope (403) or no such tenant (404).
            QueryError: left out while the database holds several tenants.
        """
        if self.scope.tenant is not None:
            if given is not None and given != self.scope.tenant:
                raise ApiError(403, f"this token may read tenant {self.scope.tenant!r} only",
                               parameter="tenant")  # fmt: skip
            given = self.scope.tenant
        known = await self.storage.tenants()
        if given is None:
            if len(known) == 1:
                return known[0]
            raise QueryError(
                f"tenant: required; the database holds {', '.join(known) or 'no tenant yet'}",
                parameter="tenant",
            )
        if given not in known:
            raise ApiError(404, f"no stored state for tenant {given!r}", parameter="tenant")
        return given


Handler = Callable[[ApiContext, P], Awaitable[Response]]


def _query_dict(request: Request, model: type[BaseModel]) -> dict[str, Any]:
    lists = {
        (f.alias or name)
        for name, f in model.model_fields.items()
        if typing.get_origin(f.annotation) is list
    }
    out: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        out[key] = values if key in lists else values[-1]
    return out


def _validation_message(exc: ValidationError) -> tuple[str, str | None]:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or None
    value = first.get("input")
    shown = f" (got {json.dumps(value)})" if isinstance(value, str | int) else ""
    return f"{where}: {first['msg']}{shown}", where


@dataclass(frozen=True)
class Endpoint(Generic[P]):
    """One ``GET`` endpoint of the API.

    Attributes:
        path: under ``/api/v1``.
        summary: one line for the OpenAPI document.
        params: the query parameters' model.
        answer: the JSON answer's model.
        handler: makes the answer.
        csv: whether it also answers ``text/csv``.
    """

    path: str
    summary: str
    params: type[P]
    answer: type[BaseModel]
    handler: Handler[P]
    csv: bool = False

    def route(self, context: Callable[[Request], Awaitable[ApiContext]]) -> Route:
        """The Starlette route that serves this endpoint."""

        async def serve(request: Request) -> Response:
            try:
                params = self.params.model_validate(_query_dict(request, self.params))
            except ValidationError as exc:
                message, where = _validation_message(exc)
                return error_response(400, message, where)
            try:
                return await self.handler(await context(request), params)
            except QueryError as exc:
                return error_response(400, str(exc), exc.parameter)
            except ApiError as exc:
                return error_response(exc.status, str(exc), exc.parameter)

        return Route(self.path, serve, methods=["GET"], name=self.path.strip("/") or "index")


async def make_context(
    request: Request,
    *,
    today: Callable[[], dt.date],
    open_days: Callable[[str], int],
    budgets: BudgetSettings | None = None,
) -> ApiContext:
    """The context of one request (storage opened on the server's loop)."""
    storage = await storage_of(request)
    return ApiContext(request, storage, scope_of(request), today(), open_days,
                      budgets or BudgetSettings())  # fmt: skip
