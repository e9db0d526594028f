"""Secrets in the settings: which keys are secret, the masked view, the values to redact."""

from __future__ import annotations

import base64
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, SecretStr

from chargeback.core.storage.factory import redact_url, url_password
from chargeback.logging import SECRET_KEY_PATTERN

if TYPE_CHECKING:
    from chargeback.settings import AppSettings

__all__ = ["MASK", "is_secret_key", "masked_settings", "secret_values"]

_ID_KEY = re.compile(r"(^|_)key$", re.I)
MASK = "**********"
"""What a secret value is printed as."""


def is_secret_key(key: str) -> bool:
    """Return whether a settings key names a secret (``api_secret``, ``password``, ...)."""
    return bool(SECRET_KEY_PATTERN.search(key))


def _mask_value(key: str, value: Any) -> Any:
    if isinstance(value, SecretStr) or (is_secret_key(key) and value not in (None, "")):
        return MASK
    if isinstance(value, Mapping):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_mask_value(key, v) for v in value]
    if isinstance(value, str) and _ID_KEY.search(key) and len(value) > 4:
        return value[:4] + "..."  # an API key id: enough to recognise, not to use
    return value


def masked_settings(settings: AppSettings) -> dict[str, Any]:
    """Return the effective settings as plain data with every secret masked.

    Masks every ``SecretStr`` and every value whose key looks secret (``secret``,
    ``password``, ``token``, ...); API key ids (keys ending in ``key``) keep their
    first four characters.
    """
    raw = settings.model_dump(mode="python")
    if raw["storage"]["url"] is not None:  # a database URL may carry its password
        raw["storage"]["url"] = redact_url(raw["storage"]["url"])
    result: dict[str, Any] = _jsonable(_mask_value("", raw))
    return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def secret_values(settings: AppSettings) -> set[str]:
    """Return every secret string in the settings, for the log redaction processor.

    Includes each plugin's ``api_key:api_secret`` pair in HTTP Basic form (base64), so
    an ``Authorization`` header that slipped into a log line is caught too.
    """
    found: set[str] = set()

    def walk(key: str, value: Any) -> None:
        if isinstance(value, SecretStr):
            found.add(value.get_secret_value())
        elif isinstance(value, BaseModel):
            for k in type(value).model_fields:
                walk(k, getattr(value, k))
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(str(k), v)
        elif isinstance(value, list | tuple):
            for v in value:
                walk(key, v)
        elif isinstance(value, str) and is_secret_key(key):
            found.add(value)

    walk("", settings)
    if settings.storage.url is not None:
        found.update(url_password(settings.storage.url))
        found.add(os.environ.get("PGPASSWORD", ""))  # libpq's password, if it is used
    for tenant in settings.tenants.values():
        ps = tenant.plugin_settings
        key, secret = ps.get("api_key"), ps.get("api_secret")
        if isinstance(key, str) and isinstance(secret, str):
            found.add(base64.b64encode(f"{key}:{secret}".encode()).decode())
    return {s for s in found if len(s) >= 4}
