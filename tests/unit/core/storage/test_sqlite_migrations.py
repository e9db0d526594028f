"""Schema migrations: recorded, idempotent, plugin namespaces, refusal of newer schemas."""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence

import pytest

from chargeback.core.models import BillingLineItem
from chargeback.core.plugin.protocols import Migration, PluginRows
from chargeback.core.storage.migrations import CORE_MIGRATIONS, split_statements
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import StorageError


class Module:
    """A fake plugin StorageModule with configurable migrations."""

    def __init__(self, namespace: str, migrations: Sequence[Migration]) -> None:
        self._namespace = namespace
        self._migrations = list(migrations)

    @property
    def namespace(self) -> str:
        return self._namespace

    def migrations(self) -> Sequence[Migration]:
        return self._migrations

    def billing_rows(
        self, tenant_id: str, day: dt.date, lines: Sequence[BillingLineItem]
    ) -> Sequence[PluginRows]:
        return ()


V1 = Migration(1, "create extra", "CREATE TABLE extra (tenant_id TEXT, date TEXT, v INTEGER);")
V2 = Migration(
    2,
    "index and trigger",
    """
    CREATE INDEX extra_by_date ON extra (tenant_id, date); -- a comment; with a semicolon
    CREATE TRIGGER extra_check BEFORE INSERT ON extra
    WHEN NEW.v < 0 BEGIN SELECT RAISE(ABORT, 'negative; not allowed'); END;
    """,
)


def recorded(path) -> list[tuple[str, int, str]]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT namespace, version, name FROM schema_migrations ORDER BY namespace, version"
        ).fetchall()
    conn.close()
    return rows


def tables(path) -> set[str]:
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    conn.close()
    return {r[0] for r in rows}


class TestCoreMigrations:
    async def test_open_records_every_core_migration(self, tmp_path):
        """Opening a new file creates the core tables and records each core step once."""
        path = tmp_path / "db.sqlite"
        async with SQLiteBackend(path):
            pass
        assert recorded(path) == [("core", m.version, m.name) for m in CORE_MIGRATIONS]
        assert {"billing_lines", "chargeback_rows", "date_state", "runs", "emissions"} <= tables(
            path
        )

    async def test_reopen_is_idempotent(self, tmp_path):
        """Opening the same file again (and open() twice) applies nothing new."""
        path = tmp_path / "db.sqlite"
        store = SQLiteBackend(path)
        await store.open()
        await store.open()
        await store.close()
        async with SQLiteBackend(path):
            pass
        assert len(recorded(path)) == len(CORE_MIGRATIONS)

    async def test_wal_mode_and_foreign_keys(self, tmp_path):
        """The file is in WAL mode after open."""
        path = tmp_path / "db.sqlite"
        async with SQLiteBackend(path):
            pass
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()

    async def test_newer_core_version_is_refused(self, tmp_path):
        """A database recording a newer core schema than the code knows is refused."""
        path = tmp_path / "db.sqlite"
        async with SQLiteBackend(path):
            pass
        conn = sqlite3.connect(path)
        conn.execute(
            "INSERT INTO schema_migrations VALUES ('core', 999, 'from the future', '2030-01-01')"
        )
        conn.commit()
        conn.close()
        with pytest.raises(StorageError, match=r"version 999 of 'core'.*upgrade chargeback"):
            await SQLiteBackend(path).open()


class TestPluginMigrations:
    async def test_module_migrations_apply_once(self, tmp_path):
        """A module's steps are applied in its namespace and recorded; re-registering is a no-op."""
        path = tmp_path / "db.sqlite"
        async with SQLiteBackend(path) as store:
            await store.register_modules([Module("example", [V1])])
            await store.register_modules([Module("example", [V1])])
        assert ("example", 1, "create extra") in recorded(path)
        assert "extra" in tables(path)

    async def test_new_step_is_applied_later(self, tmp_path):
        """A step added in a newer plugin version is applied on the next registration."""
        path = tmp_path / "db.sqlite"
        async with SQLiteBackend(path) as store:
            await store.register_modules([Module("example", [V1])])
        async with SQLiteBackend(path) as store:
            await store.register_modules([Module("example", [V1, V2])])
        assert [r for r in recorded(path) if r[0] == "example"] == [
            ("example", 1, "create extra"),
            ("example", 2, "index and trigger"),
        ]
        conn = sqlite3.connect(path)
        with pytest.raises(sqlite3.IntegrityError, match="negative; not allowed"):
            conn.execute("INSERT INTO extra VALUES ('t', '2024-01-01', -1)")
        conn.close()

    async def test_failed_step_is_rolled_back(self, tmp_path):
        """A step that fails halfway leaves neither its tables nor its record."""
        path = tmp_path / "db.sqlite"
        broken = Migration(
            1, "broken", "CREATE TABLE half (x INTEGER); CREATE TABLE oops (x INTEGER"
        )
        async with SQLiteBackend(path) as store:
            with pytest.raises(StorageError, match="syntax error"):
                await store.register_modules([Module("broken", [broken])])
            bad_sql = Migration(1, "bad", "CREATE TABLE half (x INTEGER); SELEC nonsense;")
            with pytest.raises(StorageError, match="storage module 'broken'"):
                await store.register_modules([Module("broken", [bad_sql])])
        assert "half" not in tables(path)
        assert not [r for r in recorded(path) if r[0] == "broken"]

    async def test_newer_plugin_version_is_refused(self, tmp_path):
        """A module whose recorded version is newer than its code knows is refused."""
        path = tmp_path / "db.sqlite"
        async with SQLiteBackend(path) as store:
            await store.register_modules([Module("example", [V1, V2])])
            with pytest.raises(StorageError, match="version 2 of 'example'"):
                await store.register_modules([Module("example", [V1])])

    @pytest.mark.parametrize(
        ("namespace", "migrations", "message"),
        [
            ("core", [V1], "'core' namespace"),
            ("example", [V2, V1], "increasing order"),
            ("example", [V1, V1], "unique versions"),
            ("bad name!", [V1], "namespace"),
        ],
    )
    async def test_malformed_modules_are_rejected(self, backend, namespace, migrations, message):
        """Reserved namespaces, unordered or duplicate versions and odd names are errors."""
        with pytest.raises(StorageError, match=message):
            await backend.register_modules([Module(namespace, migrations)])


class TestSplitStatements:
    def test_semicolons_inside_strings_comments_and_triggers_do_not_split(self):
        """Only statement-ending semicolons split a script."""
        statements = split_statements(V2.sql)
        assert len(statements) == 2
        assert statements[0].startswith("CREATE INDEX")
        assert "CREATE TRIGGER" in statements[1]
        assert statements[1].endswith("END;")

    def test_incomplete_script_is_an_error(self):
        """A script ending in an unterminated string literal is rejected."""
        with pytest.raises(ValueError, match="incomplete"):
            split_statements("CREATE TABLE a (x); INSERT INTO a VALUES ('oops; x)")


class TestMalformedScript:
    async def test_unterminated_script_is_a_storage_error(self, backend):
        """A plugin migration with an unterminated literal is reported with its namespace."""
        bad = Migration(1, "unterminated", "CREATE TABLE a (x); INSERT INTO a VALUES ('oops")
        with pytest.raises(StorageError, match=r"migration 1 \('unterminated'\) of 'odd'"):
            await backend.register_modules([Module("odd", [bad])])
