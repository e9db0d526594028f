"""structlog set-up and secret redaction (DESIGN §9, STYLE habit 11).

One pipeline for every line the process writes, ours and the libraries'::

    merge_contextvars -> add_log_level -> TimeStamper(iso, UTC) -> format_exc_info
        -> redact_secrets -> JSONRenderer | ConsoleRenderer

JSON lines when stdout is not a terminal (or ``format: json``), a readable console
rendering on a terminal. Standard-library loggers (uvicorn, apscheduler, httpx) go
through the same processors at WARNING and above.

:func:`redact_secrets` replaces every value registered with :func:`register_secrets`
(the settings' secrets), values under secret-looking keys, credentials in URLs and
``Basic``/``Bearer`` tokens, wherever they appear in the event dict, including
formatted exception text.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "SECRET_KEY_PATTERN",
    "clear_secrets",
    "configure_logging",
    "redact_secrets",
    "register_secrets",
    "scrub",
]

REDACTED = "[REDACTED]"
"""What a redacted value is replaced with."""

SECRET_KEY_PATTERN = re.compile(
    r"secret|passw|token|credential|private|authorization|cookie", re.IGNORECASE
)
"""Keys whose values are always redacted (``api_secret``, ``password``, ``Authorization``)."""

_URL_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@:]+:[^/\s@]+@")
_AUTH_TOKEN = re.compile(r"(?P<kind>Basic|Bearer)\s+[A-Za-z0-9+/=._~-]{6,}", re.IGNORECASE)
_THIRD_PARTY = ("uvicorn", "uvicorn.error", "uvicorn.access", "apscheduler", "httpx", "httpcore")
_HANDLER_NAME = "chargeback"

_secrets: set[str] = set()
_secret_re: re.Pattern[str] | None = None


def register_secrets(values: Iterable[str]) -> None:
    """Add secret values (4+ characters) that must never appear in a log line."""
    global _secret_re  # noqa: PLW0603  (one process-wide set, by design)
    _secrets.update(v for v in values if len(v) >= 4)
    ordered = sorted(_secrets, key=len, reverse=True)
    _secret_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None


def clear_secrets() -> None:
    """Forget every registered secret (tests, and before re-registering on reload)."""
    global _secret_re  # noqa: PLW0603
    _secrets.clear()
    _secret_re = None


def scrub(text: str) -> str:
    """Return ``text`` with registered secrets, URL credentials and auth tokens redacted."""
    if _secret_re is not None:
        text = _secret_re.sub(REDACTED, text)
    text = _URL_USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
    return _AUTH_TOKEN.sub(rf"\g<kind> {REDACTED}", text)


def _redact(key: str, value: Any, depth: int = 0) -> Any:
    if SECRET_KEY_PATTERN.search(key) and value not in (None, ""):
        return REDACTED
    if isinstance(value, str):
        return scrub(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth < 5 and isinstance(value, MutableMapping | dict):
        return {k: _redact(str(k), v, depth + 1) for k, v in value.items()}
    if depth < 5 and isinstance(value, list | tuple | set | frozenset):
        return [_redact(key, v, depth + 1) for v in value]
    text = str(value)
    cleaned = scrub(text)
    return value if cleaned == text else cleaned


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Processor: redact secrets anywhere in the event dict (run after format_exc_info)."""
    for key in list(event_dict):
        event_dict[key] = _redact(str(key), event_dict[key])
    return event_dict


def configure_logging(
    level: str = "info", fmt: str = "auto", *, stream: TextIO | None = None
) -> None:
    """Configure structlog and route standard-library logging through it.

    Args:
        level: ``debug``, ``info``, ``warning`` or ``error``.
        fmt: ``json``, ``console``, or ``auto`` (JSON unless ``stream`` is a terminal).
        stream: where lines go; default stdout.
    """
    out = stream if stream is not None else sys.stdout
    use_json = fmt == "json" or (fmt == "auto" and not _isatty(out))
    levelno = logging.getLevelNamesMapping()[level.upper()]
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=_isatty(out))
    )
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail: list[Processor] = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(levelno),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:
            root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(levelno, logging.WARNING))
    for name in _THIRD_PARTY:
        lib = logging.getLogger(name)
        lib.handlers.clear()
        lib.propagate = True
        lib.setLevel(max(levelno, logging.WARNING))


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
