"""The ownership settings and rules files: shapes, errors naming the rule (DESIGN §14)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic
import pytest

from chargeback.cli import main
from chargeback.core.ownership import OwnershipSettings, compile_rules
from chargeback.errors import ConfigError
from chargeback.settings import load_settings


def own(**data: Any) -> OwnershipSettings:
    """Ownership settings from plain data, as the YAML file gives them."""
    return OwnershipSettings.model_validate(data)


class TestInlineRules:
    def test_a_rule_needs_a_condition(self) -> None:
        """A rule without any match condition is refused."""
        with pytest.raises(pydantic.ValidationError, match="at least one match condition"):
            own(rules=[{"team": "a", "match": {}}])

    def test_bad_regex_is_named(self) -> None:
        """An invalid regex is an error quoting it."""
        with pytest.raises(pydantic.ValidationError, match=r"invalid regular expression '\('"):
            own(rules=[{"team": "a", "match": {"identity_name": "("}}])

    def test_undeclared_dimension(self) -> None:
        """A rule may only set declared dimensions."""
        with pytest.raises(pydantic.ValidationError, match="cost_centre are not declared"):
            own(
                rules=[{"team": "a", "dimensions": {"cost_centre": "1"}, "match": {"cluster": "c"}}]
            )

    def test_placeholder_without_group(self) -> None:
        """A {group} in the team must be a named group of one of the rule's regexes."""
        with pytest.raises(pydantic.ValidationError, match=r"uses \{team\} but no regex"):
            own(rules=[{"team": "{team}", "match": {"identity_name": "x"}}])

    def test_period_backwards_and_duplicate_names(self) -> None:
        """valid_from after valid_until and a repeated rule name are refused."""
        with pytest.raises(pydantic.ValidationError, match="is after valid_until"):
            own(
                rules=[
                    {
                        "team": "a",
                        "valid_from": "2026-02-01",
                        "valid_until": "2026-01-01",
                        "match": {"cluster": "c"},
                    }
                ]
            )
        rule = {"name": "r", "team": "a", "match": {"cluster": "c"}}
        with pytest.raises(pydantic.ValidationError, match="'r' is used twice"):
            own(rules=[rule, rule])


class TestRulesFile:
    def test_yaml_file_rules_follow_inline_ones(self, tmp_path: Path) -> None:
        """Rules of a YAML file are read at load and come after the inline rules."""
        f = tmp_path / "rules.yaml"
        f.write_text("rules:\n  - {name: f1, team: b, match: {identity_id: sa-1}}\n")
        s = own(rules=[{"name": "i1", "team": "a", "match": {"identity_id": "sa-1"}}], rules_file=f)
        assert [r.name for r in s.all_rules()] == ["i1", "f1"]
        assert [r.name for r in compile_rules(s, "t").rules] == ["i1", "f1"]

    def test_csv_file(self, tmp_path: Path) -> None:
        """A CSV file has one rule a row; list cells split on '|', dimension columns by name."""
        f = tmp_path / "rules.csv"
        f.write_text(
            "name,team,identity_id,cost_centre,valid_until\n"
            "a,payments,sa-1|sa-2,CC-1,2026-03-14\n"
            "b,orders,sa-3,,\n"
        )
        s = own(dimensions=["cost_centre"], rules_file=f)
        a, b = s.all_rules()
        assert a.match.identity_id == ["sa-1", "sa-2"]
        assert a.dimensions == {"cost_centre": "CC-1"}
        assert str(a.valid_until) == "2026-03-14"
        assert b.dimensions == {}

    def test_bad_rule_in_file_names_file_and_rule(self, tmp_path: Path) -> None:
        """A bad rule in the file is an error naming the file, the rule and the field."""
        f = tmp_path / "rules.yaml"
        f.write_text(
            "rules:\n  - {name: ok, team: a, match: {cluster: c}}\n"
            "  - {name: broken, team: a, match: {identity_name: '['}}\n"
        )
        with pytest.raises(pydantic.ValidationError) as info:
            own(rules_file=f)
        text = str(info.value)
        assert str(f) in text
        assert "rule 2 (broken)" in text
        assert "match.identity_name" in text

    def test_missing_file(self, tmp_path: Path) -> None:
        """A rules file that does not exist is an error naming it."""
        with pytest.raises(pydantic.ValidationError, match="cannot read it"):
            own(rules_file=tmp_path / "nope.yaml")

    def test_yaml_without_rules_key(self, tmp_path: Path) -> None:
        """A YAML rules file must be a mapping with a 'rules' list."""
        f = tmp_path / "rules.yaml"
        f.write_text("- {team: a}\n")
        with pytest.raises(pydantic.ValidationError, match="one key 'rules:'"):
            own(rules_file=f)


class TestAtLoad:
    def test_bad_rules_file_is_a_config_error_naming_it(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A bad rules file is a ConfigError naming the rule; the command exits 2."""
        rules = tmp_path / "rules.yaml"
        rules.write_text("rules:\n  - {name: bad, team: a, match: {nope: 1}}\n")
        cfg = tmp_path / "settings.yaml"
        cfg.write_text(f"ownership: {{rules_file: {rules}}}\n")
        with pytest.raises(ConfigError) as info:
            load_settings(cfg)
        assert f"rules file {rules}: rule 1 (bad): match.nope" in str(info.value)
        assert main(["check-config", "--config", str(cfg)]) == 2
        assert "rule 1 (bad)" in capsys.readouterr().err
