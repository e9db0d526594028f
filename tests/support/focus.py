"""The official FOCUS validator (PyPI ``focus-validator`` 2.2.1) as a test helper.

It needs Python 3.12 and lives in its own venv, ``.tools/focus-venv`` (made by ``make
test`` through ``scripts/install-focus-validator`` from the hashed pins in
``scripts/focus-validator.txt``; ``$FOCUS_VALIDATOR_VENV`` overrides the path). Facts the
helper works around:

* it reads ``focus_validator/rules/currency_codes.csv`` relative to the working
  directory, so it runs from the venv's ``site-packages``;
* it exits 0 when rules fail: the verdict is its ``--output-type unittest`` (JUnit XML)
  report, parsed here;
* offline (``--block-download``, always passed) it has the rules it ships, FOCUS 1.2
  only; a directory with other ``model-<version>.json`` rule sets is given with
  ``rule_set_path`` (pytest option ``--focus-rule-set-path``);
* it reports as failed every alternative of an OR rule that did not hold, even when
  the OR rule itself passed (1.2: ``InvoiceId-C-003-C`` = null XOR not null,
  ``SubAccountType-C-003-C``). :attr:`FocusReport.violations` leaves out those
  alternatives, read from the rule set's own OR composites; ``failures`` keeps all.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.process import LOG_TAIL_LINES, ServiceStartError

SERVICE = "focus-validator"
REPO = Path(__file__).resolve().parents[2]
INSTALL_HINT = "run `make test` (it runs scripts/install-focus-validator)"


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule the validator did not pass: id, ``failure`` or ``error``, message, the rule."""

    rule_id: str
    outcome: str
    message: str
    must_satisfy: str = ""


@dataclass(frozen=True, slots=True)
class FocusReport:
    """What the validator said about one file."""

    data_file: Path
    version: str
    tests: int
    skipped: int
    failures: tuple[RuleResult, ...]
    excused: tuple[RuleResult, ...]
    report_xml: str

    @property
    def violations(self) -> tuple[RuleResult, ...]:
        """Failed rules that count: every failure but the excused OR alternatives."""
        excused = {result.rule_id for result in self.excused}
        return tuple(r for r in self.failures if r.rule_id not in excused)

    @property
    def conforms(self) -> bool:
        """True when no rule that counts failed."""
        return not self.violations

    def describe(self) -> str:
        """The violations, one per line, for an assertion message."""
        lines = [f"{self.data_file}: FOCUS {self.version}, {len(self.violations)} violation(s)"]
        lines += [
            f"  {r.rule_id} ({r.outcome}): {r.message} | {r.must_satisfy}" for r in self.violations
        ]
        return "\n".join(lines)


def venv_dir() -> Path:
    """The validator's venv: ``$FOCUS_VALIDATOR_VENV`` or ``.tools/focus-venv``."""
    return Path(os.environ.get("FOCUS_VALIDATOR_VENV") or REPO / ".tools" / "focus-venv")


def package_dir(venv: Path) -> Path:
    """The installed ``focus_validator`` package folder inside ``venv``."""
    found = sorted(venv.glob("lib/python3*/site-packages/focus_validator"))
    if not found or not (venv / "bin" / "focus-validator").exists():
        raise ServiceStartError(SERVICE, f"not installed in {venv}", hint=INSTALL_HINT)
    return found[-1]


def available_versions(rule_set_path: Path | None = None, venv: Path | None = None) -> set[str]:
    """FOCUS versions with a rule set: shipped ones plus those in ``rule_set_path``."""
    folders = [package_dir(venv or venv_dir()) / "rules"]
    if rule_set_path is not None:
        folders.append(rule_set_path)
    found = set()
    for folder in folders:
        for path in folder.glob("model-*.json"):
            parts = path.stem.removeprefix("model-").split(".")
            found.add(".".join(parts[:2]))
    return found


def _rule_file(rules_dir: Path, version: str) -> Path | None:
    """The rule set the validator picks for ``version``: the highest model-<version>*.json."""

    def key(path: Path) -> tuple[int, ...]:
        text = path.stem.removeprefix("model-")
        return tuple(int(part) for part in text.split(".") if part.isdigit())

    candidates = [
        path
        for path in rules_dir.glob("model-*.json")
        if path.stem.removeprefix("model-") == version
        or path.stem.removeprefix("model-").startswith(version + ".")
    ]
    return max(candidates, key=key) if candidates else None


@dataclass(frozen=True, slots=True)
class RuleSet:
    """What the helper reads from a rule set: each rule's text and the OR alternatives."""

    must_satisfy: Mapping[str, str]
    or_parent: Mapping[str, str]


def read_rule_set(rule_file: Path) -> RuleSet:
    """Each rule's MustSatisfy text, and child rule id -> OR parent for rule-made ORs."""
    rules: Mapping[str, Any] = json.loads(rule_file.read_text("utf-8"))["ModelRules"]
    texts: dict[str, str] = {}
    parents: dict[str, str] = {}
    for rule_id, rule in rules.items():
        criteria = rule.get("ValidationCriteria") or {}
        texts[rule_id] = str(criteria.get("MustSatisfy", ""))
        requirement = criteria.get("Requirement") or {}
        if requirement.get("CheckFunction") != "OR":
            continue
        for item in requirement.get("Items", []):
            if item.get("CheckFunction") == "CheckModelRule":
                parents[str(item["ModelRuleId"])] = rule_id
    return RuleSet(texts, parents)


def parse_report(
    xml_text: str, must_satisfy: Mapping[str, str] | None = None
) -> tuple[int, int, list[RuleResult]]:
    """Tests, skipped and not-passed rules of the validator's JUnit XML report."""
    root = ET.fromstring(xml_text)  # noqa: S314  # our own validator's output, not input
    results: list[RuleResult] = []
    for case in root.iter("testcase"):
        for child in case:
            if child.tag in ("failure", "error"):
                rule_id = (case.get("name") or "").split(" :: ")[0].strip()
                text = (must_satisfy or {}).get(rule_id, "")
                results.append(RuleResult(rule_id, child.tag, child.get("message") or "", text))
    return int(root.get("tests", "0")), int(root.get("skipped", "0")), results


def _excused(failures: Iterable[RuleResult], parents: Mapping[str, str]) -> tuple[RuleResult, ...]:
    failed = {result.rule_id for result in failures}
    return tuple(r for r in failures if r.rule_id in parents and parents[r.rule_id] not in failed)


def run_focus_validator(
    data_file: Path,
    version: str = "1.2",
    *,
    rule_set_path: Path | None = None,
    applicability_criteria: Sequence[str] = (),
    venv: Path | None = None,
    timeout: float = 600,
) -> FocusReport:
    """Validate a FOCUS CSV or Parquet file; raises ServiceStartError if it cannot run.

    ``applicability_criteria`` (e.g. ``SUB_ACCOUNT_SUPPORTED``) turns on the rules of
    features the provider has; without them the validator skips those rules.
    """
    venv = venv or venv_dir()
    package = package_dir(venv)
    if rule_set_path is not None and _rule_file(rule_set_path, version) is None:
        rule_set_path = None  # not there: the shipped rules may have this version
    rules_dir = rule_set_path or package / "rules"
    rule_file = _rule_file(rules_dir, version)
    if rule_file is None:
        raise ServiceStartError(
            SERVICE,
            f"no rule set for FOCUS {version} in {rules_dir} (offline it ships 1.2 only)",
            hint="give a directory with model-<version>.json as --focus-rule-set-path",
        )
    data_file = data_file.resolve()
    if data_file.suffix not in (".csv", ".parquet"):
        raise ValueError(f"{data_file}: the validator picks the format by suffix, .csv or .parquet")
    with tempfile.TemporaryDirectory(prefix="cb-focus-") as tmp:
        out = Path(tmp) / "report.xml"
        argv = [
            str(venv / "bin" / "focus-validator"),
            f"--data-file={data_file}",
            f"--validate-version={version}",
            "--block-download",
            "--output-type=unittest",
            f"--output-destination={out}",
        ]
        if rule_set_path is not None:
            argv.append(f"--rule-set-path={rule_set_path}")
        if applicability_criteria:
            argv.append(f"--applicability-criteria={','.join(applicability_criteria)}")
        done = subprocess.run(
            argv, cwd=package.parent, capture_output=True, text=True, timeout=timeout, check=False
        )
        if done.returncode != 0 or not out.exists():
            log = "\n".join((done.stdout + done.stderr).splitlines()[-LOG_TAIL_LINES:])
            raise ServiceStartError(SERVICE, f"exited {done.returncode} without a report", log=log)
        xml_text = out.read_text(encoding="utf-8")
    rule_set = read_rule_set(rule_file)
    tests, skipped, failures = parse_report(xml_text, rule_set.must_satisfy)
    excused = _excused(failures, rule_set.or_parent)
    return FocusReport(data_file, version, tests, skipped, tuple(failures), excused, xml_text)
