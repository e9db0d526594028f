"""psycopg failures as :class:`~chargeback.errors.StorageError` that say what to do.

Messages name the database by its redacted URL, and any password that a server or
driver message might echo is cut out as well, so a StorageError can be logged as it is.
"""

from __future__ import annotations

import psycopg
import psycopg_pool

from chargeback.errors import StorageError

__all__ = ["DB_ERRORS", "translate_error"]

DB_ERRORS = (psycopg.Error, psycopg_pool.PoolTimeout, OverflowError)
"""What a database call can raise."""

_BY_SQLSTATE = {
    "22003": "an amount does not fit a 64-bit integer of minor units (±9.2e18 nanos)",
    "25006": "the database {where} was opened read-only",
    "42P01": "no such table in {where} (a plugin table that no migration created?)",
    "42501": "the database user may not do this in {where}; grant it the privileges",
    "3D000": "the database {where} does not exist; create it (CREATE DATABASE)",
    "28P01": "password authentication failed for {where}; check PGPASSWORD or the URL",
    "28000": "the server refused the login to {where}; check the user and pg_hba.conf",
    "53100": "the disk of the server of {where} is full; nothing of this write was kept",
    "53300": "the server of {where} has too many connections; raise max_connections",
    "40001": "a concurrent transaction conflicted with this one; it was rolled back",
    "40P01": "a deadlock with another connection; this transaction was rolled back",
    "57014": "the statement was cancelled (statement_timeout?); nothing was written",
}
"""SQLSTATE code -> what happened (https://www.postgresql.org/docs/current/errcodes-appendix.html)."""


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def translate_error(
    exc: BaseException, action: str, where: str, *, secret: str | None = None
) -> StorageError:
    """Turn a psycopg failure into a StorageError saying what failed and what to do.

    Args:
        exc: the psycopg error, a pool timeout, or an ``OverflowError``.
        action: what was being done, e.g. ``"committing tenant 't' date 2024-05-01"``.
        where: the database, redacted (:func:`~chargeback.core.storage.factory.redact_url`).
        secret: the password, if one is known, to cut out of the driver's message.
    """
    detail = _scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else "", secret)
    if isinstance(exc, OverflowError):
        return StorageError(
            f"{action} failed: an amount does not fit a 64-bit integer of minor units "
            f"(±9.2e18 nanos); {detail}"
        )
    if isinstance(exc, psycopg_pool.PoolTimeout):
        return StorageError(
            f"{action} failed: no connection to {where} became free or could be made "
            f"in time; check that the server is up and reachable ({detail})"
        )
    sqlstate = getattr(exc, "sqlstate", None)
    name = type(exc).__name__
    if sqlstate in _BY_SQLSTATE:
        message = _BY_SQLSTATE[sqlstate].format(where=where)
    elif sqlstate is not None and sqlstate.startswith("23"):
        message = "a database constraint was violated, so nothing was written"
    elif "NUL (0x00)" in detail:
        message = (
            "PostgreSQL text cannot hold a NUL character (U+0000) and one was given; "
            "nothing was written (SQLite storage can hold it)"
        )
    elif isinstance(exc, psycopg.OperationalError):
        message = f"cannot use the database {where}; check that the server is up and reachable"
    else:
        message = f"the database {where} failed"
    return StorageError(f"{action} failed: {message} ({name}: {detail})")
