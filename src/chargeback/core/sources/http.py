"""A retrying, rate-limited JSON HTTP client for billing, inventory and usage APIs.

One :class:`HttpClient` per tenant carries every call of a plugin (for Confluent
Cloud: the management APIs, the Metrics API, the regional Flink hosts and a
Prometheus). On top of one :class:`httpx.AsyncClient` it adds

- HTTP Basic auth from a :class:`~pydantic.SecretStr` (per request, so Flink calls can
  use a Flink key);
- retries with exponential backoff and full jitter on 429 (waiting what
  ``Retry-After`` / ``X-RateLimit-Reset`` / ``rateLimit-reset`` ask, in relative
  seconds), 5xx, timeouts, connection errors and truncated or invalid JSON bodies;
- a concurrency bound and a request-rate limit per API host (one default for every
  host, and per-host overrides for APIs that document a lower limit);
- generic pagination over the ``{"metadata": {"next": ...}, "data": [...]}`` envelope;
- one :func:`~chargeback.core.telemetry.current_telemetry` report per attempt and
  per retry (host, endpoint template without ids, status).

After the retry budget a request raises :class:`~chargeback.errors.SourceError`
(:class:`~chargeback.errors.AuthenticationError` for 401/403, with the plugin's hint
on which credentials and roles to check). Messages carry the URL and status only:
never the secret or the ``Authorization`` header.

Tests inject an ``httpx.AsyncClient`` or a transport (``httpx.MockTransport``,
``httpx.ASGITransport(app=ccloud_sim_app)``) and a fake ``sleep``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from chargeback.core.sources._limits import RateLimit, SharedRatePool, _HostLimits
from chargeback.core.sources._pages import Params, next_request, page_items, plain_url
from chargeback.core.telemetry import current_telemetry
from chargeback.errors import AuthenticationError, SourceError

__all__ = [
    "Credentials",
    "HttpClient",
    "HttpSettings",
    "RateLimit",
    "SharedRatePool",
    "retry_after_seconds",
]

_log = structlog.get_logger(__name__)

_READ = httpx.ByteStream(b"")


def _unbind(response: httpx.Response) -> None:
    """Break the reference cycle httpx makes between a response and its stream.

    The client binds every response's stream back to the response, so a response
    (and its body: ~4 MB for a 10k-row billing page) is freed only by a collection
    of the cyclic garbage collector, not when it goes out of scope. The body is read
    and the stream closed by now; replacing it lets reference counting free both.
    """
    response.stream = _READ


Sleep = Callable[[float], Awaitable[None]]


class HttpSettings(BaseModel):
    """Timeouts, retries and the per-host limits of the HTTP client."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=6, ge=0, le=20)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    max_retry_after_s: float = Field(default=120.0, ge=0)
    """Upper bound on a server-requested wait (``Retry-After``, rate-limit reset)."""
    max_concurrency: int = Field(default=8, ge=1, le=256)
    """Requests in flight per API host."""
    requests_per_second: float | None = Field(default=20.0, gt=0)
    """Request starts per second per API host; ``null`` disables the limit."""
    max_pages: int = Field(default=100_000, ge=1)
    """Safety cap on pages followed for one listing (guards against a ``next`` loop)."""
    list_page_size: int = Field(default=99, ge=1, le=100)
    """``page_size`` sent to paginated listings (the Confluent APIs allow at most 100)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """An API key and its secret; ``repr`` never shows the secret."""

    key: str
    secret: SecretStr

    def auth(self) -> httpx.BasicAuth:
        """Return the httpx Basic auth for these credentials."""
        return httpx.BasicAuth(self.key, self.secret.get_secret_value())


class _Retry(Exception):  # noqa: N818  (internal control flow, never escapes)
    def __init__(self, reason: str, status: int | None, wait: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.wait = wait


def retry_after_seconds(headers: httpx.Headers) -> float | None:
    """Return the wait a 429 asks for, in seconds, if any header says so.

    ``Retry-After`` (seconds) wins; then ``X-RateLimit-Reset`` and ``rateLimit-reset``,
    which Confluent documents as *relative* seconds (reference §4.3, §5.1).
    """
    for name in ("retry-after", "x-ratelimit-reset", "ratelimit-reset"):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw.split(",")[0].strip())
        except ValueError:
            continue
        if value >= 0:
            return value
    return None


_DEFAULT_AUTH_HINT = "check the credentials of this tenant and their roles"


class HttpClient:
    """Async JSON HTTP client for one tenant's APIs.

    Args:
        credentials: the key used unless a request names other credentials.
        settings: timeouts, retries and per-host limits.
        client: a ready client to use (not closed by :meth:`aclose`).
        transport: a transport for a client this object creates and owns.
        sleep: awaited for every backoff and rate-limit wait (tests pass a fake).
        rng: returns a float in ``[0, 1)`` for the jitter.
        auth_hint: what a 401/403 message tells the operator to check (the plugin
            knows which roles its APIs need).
        rate_pools: the rate limits of named pools (``None``: unlimited). A request
            that names a pool (``pool=``) is paced and bounded by it
            instead of by its host: an API with a documented limit of its own (the
            Confluent Metrics API: 300 requests per minute per IP) keeps to it even
            where it shares a host with other APIs (a proxy, the simulator). A
            request naming a pool that is not configured is paced by its host. A
            :class:`SharedRatePool` is shared with the other clients given it.
    """

    def __init__(
        self,
        credentials: Credentials,
        settings: HttpSettings | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Sleep = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        auth_hint: str = _DEFAULT_AUTH_HINT,
        rate_pools: Mapping[str, RateLimit | SharedRatePool | None] | None = None,
    ) -> None:
        self._creds = credentials
        self._rate_pools = dict(rate_pools or {})
        self._auth_hint = auth_hint
        self._settings = settings or HttpSettings()
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            transport=transport, timeout=httpx.Timeout(self._settings.timeout_s)
        )
        self._sleep = sleep
        self._rng = rng
        self._hosts: dict[str, _HostLimits] = {}
        self._closed = False

    @property
    def settings(self) -> HttpSettings:
        """The HTTP settings in use."""
        return self._settings

    async def aclose(self) -> None:
        """Close the owned HTTP client. Idempotent."""
        if not self._closed:
            self._closed = True
            if self._owns_client:
                await self._client.aclose()

    # -- single requests ------------------------------------------------------------
    async def get_json(
        self,
        url: str,
        *,
        endpoint: str,
        params: Params | None = None,
        credentials: Credentials | None = None,
        not_found: Any = ...,
    ) -> Any:
        """GET ``url`` and return its JSON body, retrying transient failures.

        Args:
            url: the absolute URL.
            endpoint: the path template reported to telemetry (no ids).
            params: query parameters.
            credentials: other credentials than the client's (Flink keys).
            not_found: returned on 404 instead of raising, when given.
        """
        return await self.request_json(
            "GET", url, endpoint=endpoint, params=params, credentials=credentials,
            not_found=not_found,
        )  # fmt: skip

    async def request_json(
        self,
        method: str,
        url: str,
        *,
        endpoint: str,
        params: Params | None = None,
        body: Any = None,
        form: Mapping[str, str] | None = None,
        credentials: Credentials | None = None,
        anonymous: bool = False,
        not_found: Any = ...,
        pool: str | None = None,
    ) -> Any:
        """Send one request with retries and return the parsed JSON body.

        ``body`` is sent as JSON, ``form`` form-encoded; ``anonymous`` sends no auth
        (a Prometheus without basic auth must not receive the Confluent key);
        ``pool`` names a rate pool of the constructor to pace this request by.

        Raises:
            AuthenticationError: 401 or 403.
            SourceError: any other failure once the retry budget is spent.
        """
        auth = None if anonymous else (credentials or self._creds).auth()
        host = urlsplit(url).netloc
        limits = (pool is not None and self._pool(pool)) or self._limits(host)
        attempts = self._settings.max_retries + 1
        last: _Retry | None = None
        for attempt in range(attempts):
            try:
                return await self._attempt(
                    method, url, endpoint, host, limits, params, (body, form), auth, not_found
                )
            except _Retry as retry:
                last = retry
                if attempt + 1 >= attempts:
                    break
                current_telemetry().api_retry(host, retry.reason)
                wait = self._backoff(attempt, retry.wait)
                _log.info(
                    "http request retry", method=method, endpoint=endpoint,
                    reason=retry.reason, attempt=attempt + 1, wait_s=round(wait, 3),
                )  # fmt: skip
                await self._sleep(wait)
        reason = last.reason if last else "unknown"
        raise SourceError(
            f"{method} {plain_url(url)} failed after {attempts} attempts (last: {reason}); "
            "the API kept failing; the run stops here and its committed dates are kept",
            url=plain_url(url),
            status=last.status if last else None,
        )

    async def _attempt(  # noqa: PLR0917  (internal; one call site)
        self,
        method: str,
        url: str,
        endpoint: str,
        host: str,
        limits: _HostLimits,
        params: Params | None,
        content: tuple[Any, Mapping[str, str] | None],
        auth: httpx.BasicAuth | None,
        not_found: Any,
    ) -> Any:
        async with limits.semaphore:
            await self._pace(limits)
            started = time.monotonic()
            telemetry = current_telemetry()
            try:
                response = await self._client.request(
                    method, url, params=params, json=content[0], data=content[1],
                    auth=auth or httpx.USE_CLIENT_DEFAULT,
                )  # fmt: skip
            except httpx.TimeoutException as exc:
                telemetry.api_request(host, endpoint, "timeout", time.monotonic() - started)
                raise _Retry("timeout", None) from exc
            except httpx.TransportError as exc:
                telemetry.api_request(host, endpoint, "connection", time.monotonic() - started)
                raise _Retry("connection", None) from exc
            status = response.status_code
            telemetry.api_request(host, endpoint, str(status), time.monotonic() - started)
        _unbind(response)
        if status == 404 and not_found is not ...:
            return not_found
        if status in (401, 403):
            raise AuthenticationError(
                f"{method} {plain_url(url)} was rejected with {status}: {self._auth_hint}",
                url=plain_url(url),
                status=status,
            )
        if status == 429:
            raise _Retry("429", status, retry_after_seconds(response.headers))
        if status >= 500 or status == 408:
            raise _Retry(str(status), status)
        if status >= 400:
            raise SourceError(
                f"{method} {plain_url(url)} returned {status}: {_error_detail(response)}",
                url=plain_url(url),
                status=status,
            )
        try:
            return json.loads(response.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise _Retry("invalid_json", status) from exc

    def _backoff(self, attempt: int, asked: float | None) -> float:
        cap = min(self._settings.backoff_max_s, math.ldexp(self._settings.backoff_base_s, attempt))
        jitter = self._rng() * cap
        if asked is not None:
            return min(asked, self._settings.max_retry_after_s) + jitter * 0.1
        return jitter

    def _limits(self, host: str) -> _HostLimits:
        """The limits of a host: ``http.requests_per_second`` and ``max_concurrency``."""
        return self._limiter(host, RateLimit.per_second(self._settings.requests_per_second))

    def _pool(self, name: str) -> _HostLimits | None:
        """The limits of a named rate pool (its own rate, ``max_concurrency``), if any."""
        if name not in self._rate_pools:
            return None
        pool = self._rate_pools[name]
        if isinstance(pool, SharedRatePool):
            return pool.limits(self._settings.max_concurrency)
        return self._limiter(f"pool {name}", pool)

    def _limiter(self, key: str, rate: RateLimit | None) -> _HostLimits:
        limits = self._hosts.get(key)
        if limits is None:
            limits = _HostLimits(
                semaphore=asyncio.Semaphore(self._settings.max_concurrency),
                rate=rate,
                starts=collections.deque(maxlen=rate.requests if rate else 1),
            )
            self._hosts[key] = limits
        return limits

    async def _pace(self, limits: _HostLimits) -> None:
        """Wait for this request's turn (see :meth:`_HostLimits.book`)."""
        if limits.rate is None:
            return
        now, start = await limits.book()
        if start > now:
            await self._sleep(start - now)

    # -- pagination ---------------------------------------------------------------------
    async def paginate(
        self,
        url: str,
        *,
        endpoint: str,
        params: Params | None = None,
        credentials: Credentials | None = None,
        not_found_empty: bool = False,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Yield the ``data`` list of every page of a ``metadata.next`` listing.

        ``metadata.next`` is followed as-is when it points at the same host as
        ``url``; otherwise (e.g. behind a proxy) its ``page_token`` is re-sent with the
        original parameters to ``url``.

        Args:
            url: the first page's URL.
            endpoint: the path template reported to telemetry.
            params: the original query parameters.
            credentials: other credentials than the client's.
            not_found_empty: a 404 means "no items" (lists under a deleted parent).

        Raises:
            SourceError: a request failed, or the listing exceeded ``max_pages``.
        """
        base = urlsplit(url)
        request: tuple[str, Params | None] | None = (url, params)
        seen: set[str] = set()
        pages = 0
        while request is not None:
            pages += 1
            if pages > self._settings.max_pages:
                raise SourceError(
                    f"GET {plain_url(url)} returned more than {self._settings.max_pages} pages; "
                    "raise http.max_pages if the listing is really that long",
                    url=plain_url(url),
                )
            body = await self.get_json(
                request[0],
                endpoint=endpoint,
                params=request[1],
                credentials=credentials,
                not_found=None if not_found_empty else ...,
            )
            if body is None:
                return
            yield page_items(url, endpoint, body)
            request = next_request(url, params, base, body, seen)

    async def list_all(
        self,
        url: str,
        *,
        endpoint: str,
        params: Params | None = None,
        credentials: Credentials | None = None,
        not_found_empty: bool = False,
    ) -> list[dict[str, Any]]:
        """Return every item of a paginated listing."""
        items: list[dict[str, Any]] = []
        async for page in self.paginate(
            url, endpoint=endpoint, params=params, credentials=credentials,
            not_found_empty=not_found_empty,
        ):  # fmt: skip
            items.extend(page)
        return items


def _error_detail(response: httpx.Response) -> str:
    """Return a short description of an error body (``errors[]`` or ``error{}``)."""
    try:
        body = json.loads(response.content)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:200]
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            first = errors[0]
            return str(first.get("detail") or first.get("title") or first.get("code"))[:200]
        error = body.get("error")
        if isinstance(error, dict):
            return str(error.get("message") or error.get("code"))[:200]
    return str(body)[:200]
