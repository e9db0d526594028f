"""The PostgreSQL storage backend and replica leases (DESIGN §18)."""

from chargeback.core.storage.postgres.backend import PostgresBackend

__all__ = ["PostgresBackend"]
