"""The shipped alerting rules (deploy/prometheus/): valid, unit-tested, on real metrics."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).parents[3]
RULES = ROOT / "deploy" / "prometheus" / "chargeback-alerts.yaml"
RULE_TESTS = RULES.with_name("chargeback-alerts.test.yaml")
_METRIC = re.compile(r"\bchargeback_[a-z_]+\b")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe is not None, "promtool is needed (Debian package prometheus)"
    return subprocess.run(
        [exe, *args], capture_output=True, text=True, timeout=120, check=False, cwd=RULES.parent
    )


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


class TestAlertRules:
    def test_promtool_checks_the_rules(self) -> None:
        """``promtool check rules`` accepts the file."""
        out = promtool("check", "rules", RULES.name)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "SUCCESS" in out.stdout

    def test_promtool_unit_tests_pass(self) -> None:
        """``promtool test rules``: every rule fires when it should and not before."""
        out = promtool("test", "rules", RULE_TESTS.name)
        assert out.returncode == 0, out.stdout + out.stderr

    def test_every_alert_is_tested_firing_and_quiet(self) -> None:
        """Each alert has a unit test where it fires and one where it does not."""
        alerts = {r["alert"] for g in load(RULES)["groups"] for r in g["rules"]}
        cases = [c for t in load(RULE_TESTS)["tests"] for c in t.get("alert_rule_test", [])]
        firing = {c["alertname"] for c in cases if c["exp_alerts"]}
        quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
        assert alerts == firing == quiet

    def test_rules_use_documented_metrics(self) -> None:
        """Every metric a rule reads is in the README's metrics table (what /metrics serves)."""
        readme = (ROOT / "README.md").read_text(encoding="utf-8")
        documented = set(re.findall(r"^\| `(chargeback_[a-z_]+)` \|", readme, re.MULTILINE))
        used = set(_METRIC.findall(RULES.read_text(encoding="utf-8")))
        assert used
        assert used <= documented, used - documented
