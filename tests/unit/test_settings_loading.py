"""Settings: YAML + environment, errors naming the file and field, masking (DESIGN §9)."""

from __future__ import annotations

import base64
import datetime as dt
from pathlib import Path

import pytest
from apscheduler.triggers.cron import CronTrigger

from chargeback.errors import ConfigError
from chargeback.settings import (
    MASK,
    changed_tenants,
    cron_trigger,
    load_settings,
    masked_settings,
    secret_values,
    validate_settings,
)

CCLOUD_TENANT = """
tenants:
  prod:
    ecosystem: confluent_cloud
    plugin_settings:
      api_key: ABCDEFGHIJ
      base_url: http://127.0.0.1:9
"""


def write(tmp_path: Path, text: str, name: str = "settings.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


class TestLoadSettings:
    """load_settings reads the file, applies the environment and fills defaults."""

    def test_defaults_when_file_is_empty(self, tmp_path: Path) -> None:
        """An empty file gives the documented defaults (daily 06:00 UTC, csv + prometheus)."""
        s = load_settings(write(tmp_path, ""))
        assert s.scheduling.schedule == "0 6 * * *"
        assert s.scheduling.shutdown_grace_s == 25
        assert (s.http.host, s.http.port) == ("127.0.0.1", 8000)
        assert [e.type for e in s.emitters] == ["csv", "prometheus"]
        assert s.tenants == {}

    def test_tenant_defaults_come_from_scheduling(self, tmp_path: Path) -> None:
        """A tenant without day windows inherits the scheduling defaults; its own win."""
        path = write(
            tmp_path,
            "scheduling: {lookback_days: 10}\n"
            "tenants:\n  a: {ecosystem: x}\n"
            "  b: {ecosystem: x, lookback_days: 4, cutoff_days: 1}\n",
        )
        s = load_settings(path)
        assert s.tenant_config("a").lookback_days == 10
        assert (s.tenant_config("b").lookback_days, s.tenant_config("b").cutoff_days) == (4, 1)

    def test_environment_wins_over_file(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """CHARGEBACK_HTTP__PORT overrides the file's port."""
        monkeypatch.setenv("CHARGEBACK_HTTP__PORT", "9100")
        s = load_settings(write(tmp_path, "http: {port: 8001}\n"))
        assert s.http.port == 9100

    def test_nested_tenant_secret_from_environment(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A tenant's api_secret from the environment merges into the file's plugin_settings."""
        monkeypatch.setenv("CHARGEBACK_TENANTS__PROD__PLUGIN_SETTINGS__API_SECRET", "s3cr3t-env")
        s = load_settings(write(tmp_path, CCLOUD_TENANT))
        ps = s.tenants["prod"].plugin_settings
        assert ps["api_secret"] == "s3cr3t-env"
        assert ps["api_key"] == "ABCDEFGHIJ"

    def test_missing_file(self, tmp_path: Path) -> None:
        """A missing file is a ConfigError naming it."""
        with pytest.raises(ConfigError, match=r"nope\.yaml: settings file not found"):
            load_settings(tmp_path / "nope.yaml")

    def test_invalid_yaml_names_line(self, tmp_path: Path) -> None:
        """Broken YAML is a ConfigError with the position."""
        with pytest.raises(ConfigError, match=r"not valid YAML at line 2, column 9"):
            load_settings(write(tmp_path, "http:\n  port: : x\n"))

    def test_top_level_must_be_mapping(self, tmp_path: Path) -> None:
        """A list at the top is rejected."""
        with pytest.raises(ConfigError, match="expected a mapping"):
            load_settings(write(tmp_path, "- a\n- b\n"))

    def test_unknown_key_names_field(self, tmp_path: Path) -> None:
        """An unknown key is an error naming its dotted path and the file."""
        path = write(tmp_path, "http: {prot: 1}\n")
        with pytest.raises(ConfigError) as info:
            load_settings(path)
        assert info.value.field == "http.prot"
        assert str(path) in str(info.value)
        assert "unknown key" in str(info.value)

    def test_wrong_type_names_field(self, tmp_path: Path) -> None:
        """A wrong type names the field and never echoes the value."""
        with pytest.raises(ConfigError) as info:
            load_settings(write(tmp_path, "scheduling: {lookback_days: soon-ish-value}\n"))
        assert info.value.field == "scheduling.lookback_days"
        assert "soon-ish-value" not in str(info.value)

    def test_missing_tenant_field(self, tmp_path: Path) -> None:
        """A tenant without ecosystem names tenants.<name>.ecosystem."""
        with pytest.raises(ConfigError) as info:
            load_settings(write(tmp_path, "tenants:\n  acme: {enabled: true}\n"))
        assert info.value.field == "tenants.acme.ecosystem"

    def test_bad_cron(self, tmp_path: Path) -> None:
        """An invalid cron expression is rejected at load."""
        with pytest.raises(ConfigError, match="invalid cron expression"):
            load_settings(write(tmp_path, "scheduling: {schedule: '61 * * * *'}\n"))

    def test_uppercase_tenant_name_rejected(self, tmp_path: Path) -> None:
        """Tenant names must be addressable by environment variables."""
        with pytest.raises(ConfigError, match="lowercase"):
            load_settings(write(tmp_path, "tenants:\n  Acme: {ecosystem: x}\n"))

    def test_duplicate_emitter_names(self, tmp_path: Path) -> None:
        """Two emitters with one name are rejected."""
        text = "emitters:\n  - {name: a, type: csv}\n  - {name: a, type: prometheus}\n"
        with pytest.raises(ConfigError, match="repeated: a"):
            load_settings(write(tmp_path, text))

    def test_shipped_settings_file_is_valid(self) -> None:
        """The repository's settings.yaml loads and has the demo tenant."""
        s = load_settings(Path(__file__).parents[2] / "settings.yaml")
        assert "demo" in s.enabled_tenants()


class TestCronTrigger:
    """Crontab expressions become UTC APScheduler triggers with crontab weekdays."""

    def test_weekday_zero_is_sunday(self) -> None:
        """'0 6 * * 0' fires on a Sunday (APScheduler 3 alone would pick Monday)."""
        trigger = cron_trigger("0 6 * * 0")
        fire = trigger.get_next_fire_time(None, dt.datetime(2026, 3, 2, tzinfo=dt.UTC))
        assert fire is not None
        assert fire.weekday() == 6
        assert (fire.hour, fire.minute) == (6, 0)

    def test_weekday_range(self) -> None:
        """'1-5' means Monday to Friday."""
        assert isinstance(cron_trigger("0 6 * * 1-5"), CronTrigger)
        assert "mon,tue,wed,thu,fri" in str(cron_trigger("0 6 * * 1-5"))

    def test_wrong_field_count(self) -> None:
        """Four fields are not a crontab line."""
        with pytest.raises(ValueError, match="expected 5 cron fields"):
            cron_trigger("0 6 * *")


class TestMasking:
    """Effective settings are printed with secrets masked."""

    def test_masks_secrets_and_shortens_key_ids(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """api_secret and nested passwords are masked; api_key keeps four characters."""
        monkeypatch.setenv("CHARGEBACK_TENANTS__PROD__PLUGIN_SETTINGS__API_SECRET", "zz-top-secret")
        text = CCLOUD_TENANT + "      metrics: {prometheus: {url: http://p, password: pw-xyz1}}\n"
        s = load_settings(write(tmp_path, text))
        shown = masked_settings(s)
        ps = shown["tenants"]["prod"]["plugin_settings"]
        assert ps["api_secret"] == MASK
        assert ps["api_key"] == "ABCD..."
        assert ps["metrics"]["prometheus"]["password"] == MASK
        assert "zz-top-secret" not in repr(shown)
        assert "pw-xyz1" not in repr(shown)

    def test_secret_values_include_basic_auth_form(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The redaction set holds the secret and the base64 key:secret pair."""
        monkeypatch.setenv("CHARGEBACK_TENANTS__PROD__PLUGIN_SETTINGS__API_SECRET", "zz-top-secret")
        values = secret_values(load_settings(write(tmp_path, CCLOUD_TENANT)))
        assert "zz-top-secret" in values
        assert base64.b64encode(b"ABCDEFGHIJ:zz-top-secret").decode() in values
        assert "ABCDEFGHIJ" not in values


class TestChangedTenants:
    """A reload is applied as tenants added, removed and changed."""

    def test_diff(self, tmp_path: Path) -> None:
        """Added, removed and changed tenants are told apart; unchanged ones are not listed."""
        old = load_settings(write(tmp_path, "tenants:\n  a: {ecosystem: x}\n  b: {ecosystem: x}\n"))
        new = load_settings(
            write(
                tmp_path,
                "tenants:\n  a: {ecosystem: x}\n  b: {ecosystem: x, lookback_days: 20}\n"
                "  c: {ecosystem: x}\n",
                "new.yaml",
            )
        )
        assert changed_tenants(old, new) == (["c"], [], ["b"])
        assert changed_tenants(new, old) == ([], ["c"], ["b"])


class TestValidateSettings:
    """validate_settings checks ecosystems, emitter types and every plugin's settings."""

    async def test_unknown_ecosystem_lists_known(self, tmp_path: Path) -> None:
        """An unknown ecosystem names the field and the known plugins."""
        s = load_settings(write(tmp_path, "tenants:\n  a: {ecosystem: nosuch}\n"))
        with pytest.raises(ConfigError) as info:
            await validate_settings(s, "f.yaml")
        assert info.value.field == "tenants.a.ecosystem"
        assert "confluent_cloud" in str(info.value)

    async def test_unknown_emitter_type_lists_known(self, tmp_path: Path) -> None:
        """An unknown emitter type names emitters.<i>.type and the known types."""
        s = load_settings(write(tmp_path, "emitters:\n  - {name: k, type: kafka}\n"))
        with pytest.raises(ConfigError) as info:
            await validate_settings(s, "f.yaml")
        assert info.value.field == "emitters.0.type"
        assert "csv" in str(info.value)
        assert "prometheus" in str(info.value)

    async def test_bad_plugin_settings_name_the_field(self, tmp_path: Path) -> None:
        """The plugin's own validation runs: a missing api_secret is named."""
        s = load_settings(write(tmp_path, CCLOUD_TENANT))
        with pytest.raises(ConfigError) as info:
            await validate_settings(s, "f.yaml")
        assert info.value.field == "tenants.prod.plugin_settings.api_secret"

    async def test_valid_settings_pass(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """With the secret from the environment the same settings validate."""
        monkeypatch.setenv("CHARGEBACK_TENANTS__PROD__PLUGIN_SETTINGS__API_SECRET", "abc-secret")
        s = load_settings(write(tmp_path, CCLOUD_TENANT))
        registry = await validate_settings(s, "f.yaml")
        assert "confluent_cloud" in registry.names()
