"""Optional bearer tokens for ``/api/v1/`` and the UI (DESIGN §15).

Tokens come from the environment, never from a file in the repository::

    CHARGEBACK_API_TOKENS="tok-ops  tok-acme@acme"

Entries are separated by spaces, commas or newlines; ``TOKEN@TENANT`` limits a token to
one tenant's rows (everything else it asks for is a 403). With no tokens the API is
open, as ``/metrics`` is. The tokens are kept only as SHA-256 digests (the plain text
is dropped after parsing), compared in constant time, never put in a log line, an
error or an answer (and the log redaction already masks ``Bearer`` values and
``authorization`` keys wherever they would appear). ``/metrics``, ``/healthz`` and
``/readyz`` never ask for one.

Team scoping (``TOKEN@TENANT/TEAM``) needs the team attribution of issue 18; until it
is on main such an entry is refused at start-up with a clear message rather than
silently widened to the whole tenant.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Send
from starlette.types import Scope as AsgiScope

from chargeback.errors import ConfigError

__all__ = ["ENV_VAR", "ApiTokens", "Scope", "TokenAuthMiddleware", "scope_of"]

ENV_VAR = "CHARGEBACK_API_TOKENS"
_SPLIT = re.compile(r"[\s,]+")
_MIN_LENGTH = 16


@dataclass(frozen=True, slots=True)
class Scope:
    """What a request may read: one tenant, or (``None``) every tenant."""

    tenant: str | None = None


OPEN = Scope()


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class ApiTokens:
    """The accepted tokens, as digests, each with its scope."""

    def __init__(self, entries: Mapping[bytes, Scope]) -> None:
        self._entries = dict(entries)

    @property
    def enabled(self) -> bool:
        """Whether requests must carry a token."""
        return bool(self._entries)

    @classmethod
    def from_text(cls, text: str) -> ApiTokens:
        """Parse the variable's value (see the module docstring).

        Raises:
            ConfigError: a token shorter than 16 characters, an empty tenant, or a team
                scope (not available yet).
        """
        entries: dict[bytes, Scope] = {}
        for number, entry in enumerate((e for e in _SPLIT.split(text) if e), start=1):
            token, at, tenant = entry.rpartition("@") if "@" in entry else (entry, "", "")
            if len(token) < _MIN_LENGTH:
                raise _error(f"entry {number}: a token needs at least {_MIN_LENGTH} characters")
            if at and not tenant:
                raise _error(f"entry {number}: '@' must be followed by a tenant")
            if "/" in tenant:
                raise _error(
                    f"entry {number}: team scopes (TOKEN@TENANT/TEAM) need team attribution, "
                    "which this version does not have yet; scope the token to a tenant"
                )
            entries[_digest(token)] = Scope(tenant or None)
        return cls(entries)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ApiTokens:
        """The tokens of ``$CHARGEBACK_API_TOKENS`` (none: the API is open)."""
        return cls.from_text((os.environ if environ is None else environ).get(ENV_VAR, ""))

    def scope(self, authorization: str | None) -> Scope | None:
        """The scope of an ``Authorization`` header's bearer token; ``None``: refused."""
        if not self._entries:
            return OPEN
        if authorization is None:
            return None
        kind, _, token = authorization.partition(" ")
        if kind.lower() != "bearer" or not token.strip():
            return None
        offered = _digest(token.strip())
        found: Scope | None = None
        for digest, scope in self._entries.items():  # every digest compared, in constant time
            if hmac.compare_digest(digest, offered):
                found = scope
        return found


def _error(message: str) -> ConfigError:
    return ConfigError(f"{ENV_VAR}: {message}", source="environment", field=ENV_VAR)


class TokenAuthMiddleware:
    """Refuse requests without an accepted token (401); record the scope of the others."""

    def __init__(self, app: ASGIApp, tokens: ApiTokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: AsgiScope, receive: Receive, send: Send) -> None:
        """Check the token of an HTTP request, then pass it on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        granted = self.tokens.scope(request.headers.get("authorization"))
        if granted is None:
            body = b'{"status": "unauthorized", "error": "a valid bearer token is required"}\n'
            await Response(
                body, 401, {"www-authenticate": 'Bearer realm="chargeback"'}, "application/json"
            )(scope, receive, send)
            return
        scope.setdefault("state", {})["chargeback_scope"] = granted
        await self.app(scope, receive, send)


def scope_of(request: Request) -> Scope:
    """The scope the middleware granted (open when the API has no tokens)."""
    granted = request.scope.get("state", {}).get("chargeback_scope", OPEN)
    return granted if isinstance(granted, Scope) else OPEN
