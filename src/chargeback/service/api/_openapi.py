"""The OpenAPI 3.1 document of ``/api/v1/``, generated from the endpoints' own models.

Parameters come from each endpoint's params model (the same model that validates the
request), answers from its answer model (the same model that writes the JSON), so the
document cannot drift from what is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from chargeback.service.api._endpoint import Endpoint
from chargeback.service.api._models import ErrorAnswer

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{model}"
_REFUSALS = {
    "400": "malformed parameters (the answer names the parameter)",
    "401": "a bearer token is required (when the API has tokens)",
    "403": "outside the token's scope",
    "404": "no such tenant or line",
    "503": "storage unavailable",
}


def _schema(model: Any, components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    components[model.__name__] = schema
    return {"$ref": _REF.format(model=model.__name__)}


def _parameters(endpoint: Endpoint[Any]) -> list[dict[str, Any]]:
    schema = endpoint.params.model_json_schema(by_alias=True)
    required = set(schema.get("required", ()))
    out = []
    for name, given in schema["properties"].items():
        prop = dict(given)
        description = prop.pop("description", "")
        prop.pop("title", None)
        param: dict[str, Any] = {"name": name, "in": "query", "required": name in required,
                                 "description": description, "schema": prop}  # fmt: skip
        if prop.get("type") == "array":
            param |= {"style": "form", "explode": True}
        out.append(param)
    return out


def openapi_document(
    endpoints: Sequence[Endpoint[Any]], version: str, prefix: str
) -> dict[str, Any]:
    """The document describing ``endpoints`` served under ``prefix``."""
    components: dict[str, Any] = {}
    error_ref = _schema(ErrorAnswer, components)
    paths: dict[str, Any] = {}
    for ep in endpoints:
        content: dict[str, Any] = {"application/json": {"schema": _schema(ep.answer, components)}}
        if ep.csv:
            content["text/csv"] = {"schema": {"type": "string"}}
        refusals = {
            code: {"description": text, "content": {"application/json": {"schema": error_ref}}}
            for code, text in _REFUSALS.items()
        }
        paths[prefix + ep.path] = {
            "get": {
                "summary": ep.summary,
                "description": (ep.handler.__doc__ or "").strip(),
                "operationId": ep.path.strip("/").replace("/", "_") or "index",
                "parameters": _parameters(ep),
                "responses": {"200": {"description": "OK", "content": content}, **refusals},
            }
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "chargeback query API", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }
