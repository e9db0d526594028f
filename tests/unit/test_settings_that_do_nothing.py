"""Settings that would make chargeback do nothing are refused or said out loud (issue 16)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chargeback.cli import main
from chargeback.errors import ConfigError
from chargeback.settings import load_settings

CLI = [sys.executable, "-m", "chargeback.cli"]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def tenant(name: str = "prod", extra: str = "") -> str:
    return f"tenants:\n  {name}:\n    ecosystem: confluent_cloud\n{extra}"


class TestDayWindows:
    @pytest.mark.parametrize(("lookback", "cutoff"), [(3, 3), (3, 5)])
    def test_scheduling_cutoff_not_below_lookback_is_refused(
        self, tmp_path: Path, lookback: int, cutoff: int
    ) -> None:
        """scheduling.cutoff_days >= lookback_days is an error naming the field."""
        text = f"scheduling: {{lookback_days: {lookback}, cutoff_days: {cutoff}}}\n" + tenant()
        with pytest.raises(ConfigError, match=r"scheduling\.cutoff_days: cutoff_days") as err:
            load_settings(write(tmp_path, text))
        assert err.value.field == "scheduling.cutoff_days"

    def test_a_tenants_own_window_is_checked_with_the_defaults(self, tmp_path: Path) -> None:
        """A tenant's cutoff_days above the default lookback is refused, naming the tenant."""
        text = "scheduling: {lookback_days: 10}\n" + tenant(extra="    cutoff_days: 12\n")
        with pytest.raises(ConfigError, match=r"tenants\.prod\.cutoff_days.*\(12\).*\(10\)"):
            load_settings(write(tmp_path, text))
        short = tenant(extra="    lookback_days: 2\n")  # the default cutoff is 3
        with pytest.raises(ConfigError, match=r"tenants\.prod\.lookback_days"):
            load_settings(write(tmp_path, short))

    def test_a_window_of_days_is_accepted(self, tmp_path: Path) -> None:
        """cutoff_days below lookback_days (the tenant's or the default) loads."""
        text = tenant(extra="    lookback_days: 4\n    cutoff_days: 3\n")
        assert load_settings(write(tmp_path, text)).tenant_config("prod").lookback_days == 4

    def test_check_config_exits_2_naming_the_field(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """The command line refuses the window with exit status 2 and the field on stderr."""
        path = write(tmp_path, "scheduling: {lookback_days: 5, cutoff_days: 7}\n" + tenant())
        assert main(["check-config", "--config", str(path)]) == 2
        assert "scheduling.cutoff_days" in capsys.readouterr().err


class TestTenantsInTheFile:
    def test_bad_tenant_name_is_reported_before_the_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """'Acme-Corp:' is named as the problem even with a tenant secret in the environment."""
        monkeypatch.setenv("CHARGEBACK_TENANTS__ACME__PLUGIN_SETTINGS__API_SECRET", "s3cret")
        with pytest.raises(ConfigError) as err:
            load_settings(write(tmp_path, tenant("Acme-Corp")))
        message = str(err.value)
        assert "tenant name 'Acme-Corp' must be lowercase" in message
        assert "'acme_corp'" in message  # a name that would do
        assert "only in environment variables" not in message

    def test_tenants_as_a_list_is_reported_as_such(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """'tenants:' given as a list says a mapping is expected, not 'tenant not in the file'."""
        monkeypatch.setenv("CHARGEBACK_TENANTS__ACME__PLUGIN_SETTINGS__API_SECRET", "s3cret")
        text = "tenants:\n  - name: acme\n    ecosystem: confluent_cloud\n"
        with pytest.raises(ConfigError, match="expected a mapping of tenant name") as err:
            load_settings(write(tmp_path, text))
        assert err.value.field == "tenants"
        assert "got a list" in str(err.value)

    def test_a_tenant_only_in_the_environment_still_says_so(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A well-formed file without the tenant still gets the environment-only hint."""
        monkeypatch.setenv("CHARGEBACK_TENANTS__ACME__PLUGIN_SETTINGS__API_SECRET", "s3cret")
        with pytest.raises(ConfigError, match="only in environment variables"):
            load_settings(write(tmp_path, tenant("prod")))


class TestNoTenants:
    @pytest.mark.parametrize(
        "text", ["", "scheduling: {lookback_days: 5}\n", tenant(extra="    enabled: false\n")]
    )
    def test_once_without_an_enabled_tenant_exits_2(
        self, tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """An empty file, one with no tenants or only disabled ones: once exits 2 saying so."""
        path = write(tmp_path, text)
        assert main(["once", "--config", str(path)]) == 2
        err = capsys.readouterr().err
        assert f"{path}: no enabled tenant to run" in err

    def test_daemon_without_tenants_starts_and_says_so_loudly(self, tmp_path: Path) -> None:
        """The daemon with no tenant runs (SIGHUP can add some) with a warning saying so."""
        var = tmp_path / "var"
        path = write(
            tmp_path,
            f"storage: {{path: {var / 'cb.db'}}}\nhttp: {{enabled: false}}\n"
            "logging: {format: json}\n"
            f"daemon: {{pid_file: {var / 'pid'}, heartbeat_file: {var / 'hb'}}}\n",
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("CHARGEBACK_")}
        log = tmp_path / "d.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([*CLI, "run", "--config", str(path)], stdout=out,
                                    stderr=subprocess.STDOUT, env=env)  # fmt: skip
            try:
                deadline = time.monotonic() + 30
                while "daemon started" not in log.read_text("utf-8"):
                    assert proc.poll() is None, log.read_text("utf-8")
                    assert time.monotonic() < deadline, "the daemon did not start"
                    time.sleep(0.1)
            finally:
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(30) == 0
        events = [json.loads(line) for line in log.read_text("utf-8").splitlines() if line]
        [warning] = [e for e in events if str(e["event"]).startswith("no tenant to run")]
        assert warning["level"] == "warning"
        assert f"tenants are added to {path} and it is sent SIGHUP" in warning["event"]


class TestUnwritablePaths:
    def test_a_pid_file_that_cannot_be_written_is_one_line_exit_1(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A file where the pid file's directory should be: one line naming the path, exit 1."""
        (tmp_path / "blocked").write_text("", "utf-8")
        path = write(
            tmp_path,
            f"storage: {{path: {tmp_path / 'cb.db'}}}\nhttp: {{enabled: false}}\n"
            f"daemon: {{pid_file: {tmp_path / 'blocked' / 'pid'}}}\n",
        )
        assert main(["run", "--config", str(path)]) == 1
        err = capsys.readouterr().err.strip()
        assert err == (
            f"chargeback: cannot create the pid file's directory {tmp_path / 'blocked'}: a file "
            "is in the way; create it, or point daemon.pid_file at a writable place"
        )

    def test_a_database_directory_that_cannot_be_created_is_one_line(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A database under an uncreatable directory: one line naming it, exit 1, no traceback."""
        (tmp_path / "blocked").write_text("", "utf-8")
        path = write(
            tmp_path,
            f"storage: {{path: {tmp_path / 'blocked' / 'db' / 'cb.db'}}}\n"
            "tenants:\n  acme: {ecosystem: confluent_cloud, plugin_settings: "
            "{api_key: K, api_secret: S}}\n",
        )
        assert main(["once", "--config", str(path)]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert f"cannot create the database's directory {tmp_path / 'blocked' / 'db'}" in err
        assert len(err.strip().splitlines()) == 1
