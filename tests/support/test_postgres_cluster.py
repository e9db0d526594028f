"""Smoke tests: the suite's throwaway PostgreSQL cluster really serves the async driver."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool
from tests.support.postgres import PostgresCluster, PostgresDatabase, start_cluster
from tests.support.process import ServiceStartError

pytestmark = pytest.mark.e2e


class TestPostgresCluster:
    async def test_async_pool_creates_inserts_and_reads_back(self, postgres_dsn: str) -> None:
        """psycopg's async pool creates a table, COPYs and inserts rows, and reads them back."""
        rows = [(1, dt.date(2026, 11, 1), 1_500_000_000), (2, dt.date(2026, 11, 2), 7)]
        async with AsyncConnectionPool(postgres_dsn, min_size=1, max_size=2, open=False) as pool:
            async with pool.connection() as conn:
                await conn.execute(
                    "CREATE TABLE cost (id int PRIMARY KEY, day date NOT NULL, nanos bigint)"
                )
                async with (
                    conn.cursor() as cur,
                    cur.copy("COPY cost (id, day, nanos) FROM STDIN") as copy,
                ):
                    for row in rows:
                        await copy.write_row(row)
                await conn.execute(
                    "INSERT INTO cost VALUES (%s, %s, %s)", (3, dt.date(2026, 11, 3), -2)
                )
            async with pool.connection() as conn:
                cur = await conn.execute("SELECT id, day, nanos FROM cost ORDER BY id")
                assert await cur.fetchall() == [*rows, (3, dt.date(2026, 11, 3), -2)]

    async def test_each_test_gets_its_own_database(
        self, postgres_cluster: PostgresCluster, postgres_database: PostgresDatabase
    ) -> None:
        """A table made in one fresh database is absent from the next one."""
        other = postgres_cluster.create_database()
        try:
            async with await psycopg.AsyncConnection.connect(postgres_database.dsn) as conn:
                await conn.execute("CREATE TABLE only_here (x int)")
            async with await psycopg.AsyncConnection.connect(other.dsn) as conn:
                cur = await conn.execute("SELECT to_regclass('only_here') IS NULL")
                assert await cur.fetchone() == (True,)
        finally:
            postgres_cluster.drop_database(other.name)
        assert other.name != postgres_database.name

    def test_password_is_required_and_not_echoed(self, postgres_cluster: PostgresCluster) -> None:
        """A wrong password is refused, and neither password appears in the error."""
        wrong = postgres_cluster.dsn.replace(postgres_cluster.password, "not-the-password-42")
        with pytest.raises(psycopg.OperationalError) as refused:
            psycopg.connect(wrong, connect_timeout=5)
        assert "password authentication failed" in str(refused.value)
        assert "not-the-password-42" not in str(refused.value)
        assert postgres_cluster.password not in str(refused.value)
        assert postgres_cluster.password not in postgres_cluster.log_text()

    def test_unix_socket_in_the_temp_dir_works(
        self, postgres_cluster: PostgresCluster, postgres_database: PostgresDatabase
    ) -> None:
        """The server listens on a socket in its own temp dir, and connecting there works."""
        assert (postgres_cluster.socket_dir / f".s.PGSQL.{postgres_cluster.port}").exists()
        dsn = postgres_cluster.dsn_for(postgres_database.name, via_socket=True)
        with psycopg.connect(dsn) as conn:
            row = conn.execute("SELECT inet_server_addr(), current_database()").fetchone()
        assert row == (None, postgres_database.name)  # no address: a unix-socket session

    def test_a_server_that_cannot_start_fails_with_its_log(self) -> None:
        """A bad setting makes start_cluster raise with PostgreSQL's own complaint, not skip."""
        with pytest.raises(ServiceStartError) as failed:
            start_cluster(settings={"shared_buffers": "lots"})
        assert "PostgreSQL" in str(failed.value)
        assert "shared_buffers" in failed.value.log


def test_identifiers_are_quoted_safely(postgres_cluster: PostgresCluster) -> None:
    """A database name with a quote and a space is created and dropped as given."""
    database = postgres_cluster.create_database('odd "name" here')
    try:
        with psycopg.connect(postgres_cluster.dsn) as conn:
            cur = conn.execute(
                sql.SQL("SELECT 1 FROM pg_database WHERE datname = {}").format(
                    sql.Literal(database.name)
                )
            )
            assert cur.fetchone() == (1,)
    finally:
        postgres_cluster.drop_database(database.name)
