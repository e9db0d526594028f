"""One factory picks the storage backend from the settings: path, sqlite URLs, refusals."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from chargeback.cli import main
from chargeback.core.storage.factory import (
    StorageLocation,
    make_backend,
    open_backend,
    parse_url,
)
from chargeback.core.storage.postgres import PostgresBackend
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.errors import ConfigError, StorageError
from chargeback.settings import StorageSettings, load_settings, secret_values

NOW = dt.datetime(2024, 5, 4, tzinfo=dt.UTC)


class TestParseUrl:
    """A storage URL names a backend and where its database is."""

    @pytest.mark.parametrize(
        ("url", "path"),
        [
            ("sqlite:///var/chargeback.db", Path("var/chargeback.db")),
            ("sqlite:////data/chargeback.db", Path("/data/chargeback.db")),
            ("SQLite:///x.db", Path("x.db")),
            ("sqlite:///:memory:", Path(":memory:")),
        ],
    )
    def test_sqlite_urls_name_a_path_after_three_slashes(self, url: str, path: Path) -> None:
        """Three slashes then the path as written: relative, or absolute with a fourth."""
        assert parse_url(url) == StorageLocation("sqlite", path)

    @pytest.mark.parametrize(
        "url", ["postgresql://u@db/cb", "postgres://db/cb", "postgresql:///cb?host=/run/pg"]
    )
    def test_postgresql_urls_name_a_database(self, url: str) -> None:
        """A PostgreSQL URL is kept whole for libpq; the location names no path."""
        location = parse_url(url)
        assert (location.scheme, location.dsn) == ("postgresql", url)

    def test_a_password_never_shows(self) -> None:
        """The location's repr and display leave the password out, and so do URL errors."""
        location = parse_url("postgresql://cb:s3cret@db:5432/cb?password=s3cret&sslmode=require")
        assert "s3cret" not in repr(location)
        assert location.display == "postgresql://cb:***@db:5432/cb?password=***&sslmode=require"
        with pytest.raises(ConfigError) as info:
            parse_url("postgresql://cb:s3cret@db:port/cb")
        assert "s3cret" not in str(info.value)
        assert "malformed PostgreSQL URL" in str(info.value)

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("mysql://db/cb", "unknown storage scheme 'mysql'"),
            ("postgresql://db/cb#frag", "takes no fragment"),
            ("var/chargeback.db", "expected a URL like sqlite:///"),
            ("sqlite://var/chargeback.db", "names a file after three slashes"),
            ("sqlite:///", "names a file after three slashes"),
            ("sqlite:///x.db?mode=ro", "no query or fragment"),
        ],
    )
    def test_other_urls_say_what_is_accepted(self, url: str, message: str) -> None:
        """Unknown schemes and malformed sqlite URLs are errors naming storage.url."""
        with pytest.raises(ConfigError, match=message) as info:
            parse_url(url)
        assert str(info.value).startswith("storage.url: ")


class TestMakeBackend:
    """The factory builds the backend the settings name, unopened."""

    async def test_path_and_url_give_the_same_sqlite_file(self, tmp_path: Path) -> None:
        """storage.path and an equivalent sqlite URL open one and the same database."""
        db = tmp_path / "a" / "chargeback.db"
        async with open_backend(StorageSettings(path=db)) as store:
            await store.start_run("t1", "run-1", "cli", NOW)
        async with open_backend(StorageSettings(url=f"sqlite:///{db}")) as store:
            assert [r.run_id for r in await store.list_runs("t1")] == ["run-1"]

    def test_sqlite_settings_reach_the_backend(self, tmp_path: Path) -> None:
        """The file, the writer child threshold and read-only mode come from the settings."""
        settings = StorageSettings(path=tmp_path / "x" / "cb.db", writer_process_min_rows=None)
        store = make_backend(settings)
        assert isinstance(store, SQLiteBackend)
        assert store.path == str(tmp_path / "x" / "cb.db")
        assert store.writer_pid is None
        assert (tmp_path / "x").is_dir()  # a writable backend gets its directory

    def test_read_only_creates_nothing(self, tmp_path: Path) -> None:
        """A read-only backend never creates the database's directory."""
        make_backend(StorageSettings(path=tmp_path / "absent" / "cb.db"), read_only=True)
        assert not (tmp_path / "absent").exists()

    async def test_read_only_backend_refuses_writes(self, tmp_path: Path) -> None:
        """read_only=True opens the database for reading only."""
        settings = StorageSettings(path=tmp_path / "cb.db")
        async with open_backend(settings):
            pass
        async with open_backend(settings, read_only=True) as store:
            with pytest.raises(StorageError, match="read-only"):
                await store.start_run("t1", "run-1", "cli", NOW)

    def test_a_directory_that_cannot_be_made_is_a_storage_error(self, tmp_path: Path) -> None:
        """A database under a regular file fails with one line naming the directory."""
        (tmp_path / "file").write_text("x")
        with pytest.raises(StorageError, match="cannot create the database's directory") as info:
            make_backend(StorageSettings(path=tmp_path / "file" / "sub" / "cb.db"))
        assert str(tmp_path / "file" / "sub") in str(info.value)

    async def test_memory_url_is_a_private_database(self) -> None:
        """sqlite:///:memory: opens a working in-memory database."""
        async with open_backend(StorageSettings(url="sqlite:///:memory:")) as store:
            await store.start_run("t1", "run-1", "cli", NOW)
            assert await store.tenants() == ["t1"]


class TestStorageUrlSetting:
    """storage.url in the settings file: validated at load, exit 2 when refused."""

    def test_url_is_accepted_and_used(self, tmp_path: Path) -> None:
        """A sqlite URL is a valid setting and the factory follows it."""
        path = tmp_path / "settings.yaml"
        path.write_text(f"storage: {{url: 'sqlite:///{tmp_path}/u.db'}}\n", encoding="utf-8")
        store = make_backend(load_settings(path).storage)
        assert isinstance(store, SQLiteBackend)
        assert store.path == str(tmp_path / "u.db")

    def test_postgresql_url_selects_the_postgresql_backend(self, tmp_path: Path) -> None:
        """A postgresql URL loads and the factory builds the PostgreSQL backend, unopened."""
        path = tmp_path / "settings.yaml"
        path.write_text("storage: {url: 'postgresql://cb:pw@db/cb'}\n", encoding="utf-8")
        store = make_backend(load_settings(path).storage)
        assert isinstance(store, PostgresBackend)
        assert repr(store) == "PostgresBackend('postgresql://cb:***@db/cb')"

    def test_url_and_path_together_are_refused(self, tmp_path: Path) -> None:
        """Setting both storage.url and storage.path is ambiguous and refused."""
        path = tmp_path / "settings.yaml"
        path.write_text("storage: {url: 'sqlite:///a.db', path: b.db}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"set storage.url or storage.path, not both"):
            load_settings(path)

    def test_check_config_exits_2_on_a_malformed_postgresql_url(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The command line reports a malformed URL as a settings error (exit 2), no password."""
        path = tmp_path / "settings.yaml"
        path.write_text("storage: {url: 'postgresql://u:hunter2@db:x/cb'}\n", encoding="utf-8")
        assert main(["check-config", "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert "storage.url" in err
        assert "malformed PostgreSQL URL" in err
        assert "hunter2" not in err

    def test_check_config_masks_the_database_password(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The effective settings show the URL without its password; both the URL's and
        PGPASSWORD's are registered for log redaction."""
        monkeypatch.setenv("PGPASSWORD", "from-env-pw")
        monkeypatch.setenv("CHARGEBACK_STORAGE__URL", "postgresql://cb:p%40ss-word@db/cb")
        path = tmp_path / "settings.yaml"
        path.write_text("logging: {level: info}\n", encoding="utf-8")
        assert main(["check-config", "--config", str(path)]) == 0
        out = capsys.readouterr().out
        assert "url: postgresql://cb:***@db/cb" in out
        assert "p%40ss" not in out
        assert {"p@ss-word", "p%40ss-word", "from-env-pw"} <= secret_values(load_settings(path))
