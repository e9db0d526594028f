"""What only the PostgreSQL backend does: credentials, migrations beside SQLite's, plugin DDL.

The protocol itself is proven by the contract suite (``contract/``, on every target);
these tests run on the suite's throwaway cluster (``tests/storage_targets.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

import psycopg
import pytest
import structlog
from tests.storage_targets import POSTGRESQL, SQLITE, postgres_cluster

from chargeback.core.plugin.protocols import Migration
from chargeback.core.storage import migrations as sqlite_migrations
from chargeback.core.storage.factory import open_backend
from chargeback.core.storage.postgres import PostgresBackend
from chargeback.core.storage.postgres.schema import CORE_MIGRATIONS, plugin_sql
from chargeback.errors import StorageError
from chargeback.settings import StorageSettings

NOW = dt.datetime(2024, 5, 4, tzinfo=dt.UTC)


@pytest.fixture
def pg_settings(tmp_path: Path) -> StorageSettings:
    """A fresh PostgreSQL database, its URL without the password (PGPASSWORD has it)."""
    return POSTGRESQL.make(tmp_path)


def _with_password(settings: StorageSettings) -> str:
    assert settings.url is not None
    user_at = settings.url.replace("postgresql://", "", 1)
    return f"postgresql://{user_at.replace('@', ':' + postgres_cluster().password + '@', 1)}"


class TestCredentials:
    async def test_password_from_environment_is_used_and_never_logged(
        self, pg_settings: StorageSettings, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The URL has no password, PGPASSWORD does; no log line or repr shows it."""
        password = postgres_cluster().password
        structlog.configure(logger_factory=structlog.PrintLoggerFactory())
        async with open_backend(pg_settings) as store:
            await store.start_run("t1", "run-1", "cli", NOW)
            assert password not in repr(store)
        out = capsys.readouterr()
        assert "storage migrated" in out.out
        assert password not in out.out + out.err

    async def test_a_password_in_the_url_is_redacted_everywhere(
        self, pg_settings: StorageSettings, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    ) -> None:  # fmt: skip
        """With the password in the URL (CHARGEBACK_STORAGE__URL), logs and repr hide it."""
        monkeypatch.delenv("PGPASSWORD")
        url = _with_password(pg_settings)
        password = postgres_cluster().password
        caplog.set_level(logging.DEBUG)
        structlog.configure(logger_factory=structlog.PrintLoggerFactory())
        async with open_backend(StorageSettings(url=url)) as store:
            assert await store.tenants() == []
            assert repr(store).count("***") == 1
        out = capsys.readouterr()
        assert "storage opened" in out.out
        assert password not in out.out + out.err + caplog.text

    async def test_a_wrong_password_is_a_clear_error_without_it(
        self, pg_settings: StorageSettings, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A refused login says so, names the database and never shows the password."""
        monkeypatch.setenv("PGPASSWORD", "wrong-horse-battery")
        with pytest.raises(StorageError, match="password authentication failed") as info:
            async with open_backend(pg_settings):
                pass
        assert "wrong-horse-battery" not in str(info.value)
        assert postgres_cluster().password not in str(info.value)

    async def test_an_unreachable_server_is_a_storage_error(self) -> None:
        """Nothing listening: a StorageError saying to check that the server is up."""
        store = PostgresBackend("postgresql://u:pw-xyz@127.0.0.1:1/cb", connect_timeout_s=2)
        with pytest.raises(StorageError, match="server is up") as info:
            await store.open()
        assert "pw-xyz" not in str(info.value)


class TestMigrations:
    def test_versions_and_names_match_sqlite(self) -> None:
        """Every SQLite core step has a PostgreSQL step with its version and name."""
        assert [(m.version, m.name) for m in CORE_MIGRATIONS] == [
            (m.version, m.name) for m in sqlite_migrations.CORE_MIGRATIONS
        ]

    async def test_both_backends_record_the_same_core_versions(self, tmp_path: Path) -> None:
        """schema_migrations holds the same core versions on SQLite and PostgreSQL."""
        recorded = {}
        for target in (SQLITE, POSTGRESQL):
            settings = target.make(tmp_path / target.name)
            async with open_backend(settings):
                pass
            recorded[target.name] = target.peek(
                settings,
                "SELECT version, name FROM schema_migrations WHERE namespace = ? ORDER BY version",
                ["core"],
            )
        assert recorded["sqlite"] == recorded["postgresql"]

    async def test_replicas_starting_at_once_apply_each_step_once(
        self, pg_settings: StorageSettings
    ) -> None:
        """Five backends opening one new database together: one schema, each step once."""
        stores = [PostgresBackend(_with_password(pg_settings)) for _ in range(5)]
        await asyncio.gather(*(s.open() for s in stores))
        await asyncio.gather(*(s.close() for s in stores))
        rows = POSTGRESQL.peek(
            pg_settings, "SELECT namespace, version FROM schema_migrations ORDER BY 1, 2", []
        )
        assert rows == [("core", m.version) for m in CORE_MIGRATIONS] + [("leases", 1)]

    async def test_a_newer_schema_is_refused(self, pg_settings: StorageSettings) -> None:
        """A database recording a core version this code does not know is not used."""
        async with open_backend(pg_settings):
            pass
        with psycopg.connect(_with_password(pg_settings), autocommit=True) as conn:
            conn.execute("INSERT INTO schema_migrations VALUES ('core', 99, 'future', now())")
        with pytest.raises(StorageError, match=f"knows only up to version {len(CORE_MIGRATIONS)}"):
            async with open_backend(pg_settings):
                pass
        with pytest.raises(StorageError, match="upgrade chargeback"):
            async with open_backend(pg_settings, read_only=True):
                pass

    async def test_read_only_on_an_empty_database_says_to_migrate(
        self, pg_settings: StorageSettings
    ) -> None:
        """A reader never creates the schema; it says how to."""
        with pytest.raises(StorageError, match="chargeback migrate"):
            async with open_backend(pg_settings, read_only=True):
                pass


class TestPluginDialect:
    def test_sqlite_ddl_is_mapped(self) -> None:
        """64-bit integers, JSON kept as text, SQLite-only clauses dropped; literals kept."""
        ddl = (
            "CREATE TABLE x (a INTEGER NOT NULL, b json, c TEXT DEFAULT 'INTEGER JSON') "
            "WITHOUT ROWID;"
        )
        assert plugin_sql(ddl) == (
            "CREATE TABLE x (a BIGINT NOT NULL, b TEXT, c TEXT DEFAULT 'INTEGER JSON') ;"
        )

    async def test_plugin_integers_hold_64_bits(self, pg_settings: StorageSettings) -> None:
        """A plugin's INTEGER column takes nanos beyond 32 bits on PostgreSQL too."""

        class Module:
            namespace = "wide"

            def migrations(self) -> list[Migration]:
                return [Migration(1, "w", "CREATE TABLE wide (tenant_id TEXT, date TEXT, "
                                          "amount INTEGER);")]  # fmt: skip

            def billing_rows(self, *args: object) -> list[object]:
                return []

        async with open_backend(pg_settings) as store:
            await store.register_modules([Module()])  # type: ignore[list-item]
        with psycopg.connect(_with_password(pg_settings), autocommit=True) as conn:
            conn.execute("INSERT INTO wide VALUES ('t', '2024-05-01', %s)", (2**62,))
            assert conn.execute("SELECT amount FROM wide").fetchone() == (2**62,)
