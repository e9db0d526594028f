"""A throwaway PostgreSQL cluster for the tests, from Debian's ``postgresql`` package.

:func:`start_cluster` runs ``initdb`` into a fresh temp directory and starts ``postgres``
as a child process on a free port of 127.0.0.1, its unix socket in that directory, with
password (SCRAM) authentication for every connection, so tests can prove a password never
leaks. ``initdb`` and ``postgres`` refuse to run as root: as root we run them as the
``postgres`` system user that the Debian package creates (``subprocess``'s ``user=``),
and the temp directory belongs to that user. Durability is off (``fsync``,
``synchronous_commit``, ``full_page_writes``): a killed test server loses nothing a test
relies on, and commits are several times faster.

Why not ``pytest-postgresql``: it would need a wrapper script to run ``pg_ctl`` as another
user when the suite runs as root (CI does), and we want password auth on, the server as
our direct child (stopped by a signal even when a test fails) and its log in every
start-up error. That is this module, about 200 lines.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from tests.support.process import (
    Account,
    ServiceStartError,
    free_port,
    log_tail,
    run_checked,
    stop_process,
    wait_ready,
)

SERVICE = "PostgreSQL"
SUPERUSER = "chargeback"
INSTALL_HINT = "run `make test` (or scripts/install-system-deps: Debian package postgresql)"
FAST_SETTINGS: Mapping[str, str] = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


@dataclass(frozen=True, slots=True)
class PostgresDatabase:
    """One database of the test cluster: its name and a DSN with the password in it."""

    name: str
    dsn: str


@dataclass(slots=True)
class PostgresCluster:
    """A running throwaway cluster; :meth:`create_database` gives each test its own database."""

    bindir: Path
    base_dir: Path
    host: str
    port: int
    user: str
    password: str
    socket_dir: Path
    log_path: Path
    process: subprocess.Popen[bytes]
    _counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def dsn(self) -> str:
        """DSN of the ``postgres`` maintenance database, over TCP, with the password."""
        return self.dsn_for("postgres")

    def dsn_for(self, dbname: str, *, via_socket: bool = False) -> str:
        """DSN of ``dbname`` over TCP on 127.0.0.1, or over the unix socket in the temp dir."""
        auth = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        if via_socket:
            socket = quote(str(self.socket_dir), safe="")
            return f"postgresql://{auth}@/{quote(dbname, safe='')}?host={socket}&port={self.port}"
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def create_database(self, name: str | None = None) -> PostgresDatabase:
        """Create an empty database (a fresh unique name unless one is given)."""
        dbname = name or f"test_{next(self._counter)}_{secrets.token_hex(3)}"
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
        return PostgresDatabase(dbname, self.dsn_for(dbname))

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting whoever is still connected to it."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def log_text(self) -> str:
        """The server's log so far (for failure messages)."""
        return log_tail(self.log_path, lines=10_000)


def find_bindir() -> Path:
    """Where ``initdb`` and ``postgres`` are: ``$PG_BINDIR``, the newest Debian one, PATH."""
    override = os.environ.get("PG_BINDIR")
    if override:
        return Path(override)

    def major(bindir: Path) -> tuple[int, ...]:  # /usr/lib/postgresql/15/bin -> (15,)
        return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name))

    debian = [p.parent for p in Path("/usr/lib/postgresql").glob("*/bin/initdb")]
    if debian:
        return max(debian, key=major)
    on_path = shutil.which("initdb")
    if on_path:
        return Path(on_path).resolve().parent
    raise ServiceStartError(SERVICE, "initdb not found", hint=INSTALL_HINT)


def _server_account() -> Account | None:
    """The account to run the server as: ``postgres`` when we are root, else None (us)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise ServiceStartError(
            SERVICE,
            "running as root and no `postgres` system user exists (initdb refuses root)",
            hint=INSTALL_HINT + "; the package creates the user",
        ) from exc
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _give(path: Path, account: Account | None, mode: int) -> None:
    if account is not None:
        os.chown(path, account.uid, account.gid)
    path.chmod(mode)


def _make_base_dir(account: Account | None) -> Path:
    base = Path(tempfile.mkdtemp(prefix="chargeback-pg-"))
    (base / "socket").mkdir()
    for path in (base, base / "socket"):
        _give(path, account, 0o700)
    return base


def _initdb(bindir: Path, base: Path, password: str, account: Account | None) -> None:
    pwfile = base / "pwfile"
    pwfile.write_text(password + "\n", encoding="utf-8")
    _give(pwfile, account, 0o600)
    try:
        run_checked(
            SERVICE,
            [
                str(bindir / "initdb"),
                f"--pgdata={base / 'data'}",
                f"--username={SUPERUSER}",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            timeout=120,
            hint=INSTALL_HINT,
            cwd=base,
            account=account,
        )
    finally:
        pwfile.unlink(missing_ok=True)


def _can_connect(dsn: str) -> bool:
    try:
        with psycopg.connect(dsn, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def _start_server(
    bindir: Path, base: Path, port: int, settings: Mapping[str, str], account: Account | None
) -> subprocess.Popen[bytes]:
    argv = [
        str(bindir / "postgres"),
        "-D",
        str(base / "data"),
        "-c",
        f"port={port}",
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        f"unix_socket_directories={base / 'socket'}",
    ]
    for name, value in settings.items():
        argv += ["-c", f"{name}={value}"]
    with (base / "postgres.log").open("ab") as log:
        return subprocess.Popen(
            argv,
            cwd=base,
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=[] if account else None,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )


def _start_once(
    bindir: Path, base: Path, password: str, settings: Mapping[str, str], timeout: float
) -> PostgresCluster:
    account = _server_account()
    port = free_port()
    proc = _start_server(bindir, base, port, settings, account)
    cluster = PostgresCluster(
        bindir, base, "127.0.0.1", port, SUPERUSER, password,
        base / "socket", base / "postgres.log", proc,
    )  # fmt: skip
    dsn = cluster.dsn
    wait_ready(SERVICE, proc, lambda: _can_connect(dsn), log_path=cluster.log_path, timeout=timeout)
    return cluster


def start_cluster(
    *, settings: Mapping[str, str] | None = None, start_timeout: float = 60.0
) -> PostgresCluster:
    """Create and start a cluster; the caller stops it with :func:`stop_cluster`."""
    bindir = find_bindir()
    base = _make_base_dir(_server_account())
    password = f"pg-secret-{secrets.token_hex(8)}"
    merged = {**FAST_SETTINGS, **(settings or {})}
    try:
        _initdb(bindir, base, password, _server_account())
        for attempt in itertools.count(1):
            try:
                return _start_once(bindir, base, password, merged, start_timeout)
            except ServiceStartError as exc:
                # Another process may have taken the port between free_port() and bind.
                if "Address already in use" not in exc.log or attempt == 3:
                    raise
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    raise AssertionError("unreachable: the start loop returns or raises")  # pragma: no cover


def stop_cluster(cluster: PostgresCluster) -> None:
    """Fast shutdown (SIGINT), SIGKILL if it hangs, then remove the temp directory."""
    try:
        stop_process(cluster.process, sig=signal.SIGINT, grace=30)
    finally:
        shutil.rmtree(cluster.base_dir, ignore_errors=True)


@contextlib.contextmanager
def running_cluster(*, settings: Mapping[str, str] | None = None) -> Iterator[PostgresCluster]:
    """A cluster for the duration of the ``with`` block, stopped even when the block fails."""
    cluster = start_cluster(settings=settings)
    try:
        yield cluster
    finally:
        stop_cluster(cluster)
