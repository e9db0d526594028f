"""The ``ownership`` settings: rules that map identities and resources to teams (DESIGN §14).

Shape (``settings.yaml``; every key optional)::

    ownership:
      dimensions: [cost_centre, application]   # the keys rules may set besides the team
      rules_file: ./ownership.yaml              # more rules (YAML or CSV), re-read on SIGHUP
      rules:
        - name: payments-by-description
          team: "{team}"                        # filled from the regex's named group
          dimensions: {cost_centre: "{cc}"}
          match:
            identity_description: 'Owned by team (?P<team>[a-z]+); cost centre (?P<cc>CC-\\d+)'
        - name: checkout-sa
          team: payments
          tenants: [prod]                       # default: every tenant
          valid_until: 2026-03-14               # inclusive; valid_from too
          match: {identity_id: [sa-abc123]}

A rule's ``match`` conditions must all hold (see :class:`RuleMatch`); regexes are
searched (``re.search``: anchor them with ``^``/``$``), and their named groups may be
used as ``{group}`` in ``team`` and the dimension values. The rules file holds the same
list under ``rules:`` (YAML) or one rule a row (CSV: columns ``name``, ``team``,
``valid_from``, ``valid_until``, ``tenants``, any :class:`RuleMatch` field, and one
column per declared dimension; list cells are separated by ``|``). Its rules come after
the inline ones. A bad rule anywhere is an error naming the rule, at load (exit 2)
or on SIGHUP (rejected, the old rules stay).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

__all__ = ["OwnershipSettings", "RuleMatch", "RuleSettings", "load_rules_file"]

_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_RESERVED_DIMENSIONS = frozenset({"team", "rule", "tenant", "date"})

REGEX_FIELDS = (
    "identity_pattern",
    "identity_name",
    "identity_description",
    "api_key_description",
    "resource_pattern",
    "resource_name",
    "environment_name",
)
"""The :class:`RuleMatch` fields that hold a regular expression."""


def _as_list(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    return value


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleMatch(_Model):
    """What a rule looks at; every condition given must hold (at least one is needed).

    Identity conditions look at the identity a row is charged to, resource conditions
    at the row's resource (a cluster, connector, ...), its cluster and environment.
    """

    identity_id: list[str] | None = None
    """Exact identity ids (``sa-...``, ``u-...``, an API key, a pool)."""
    identity_type: list[str] | None = None
    """``service_account``, ``user``, ``api_key``, ``identity_pool``, ..."""
    identity_pattern: str | None = None
    """Regex on the identity id."""
    identity_name: str | None = None
    """Regex on the identity's display name."""
    identity_description: str | None = None
    """Regex on the identity's description."""
    api_key_description: str | None = None
    """Regex on the description of any API key the identity owns."""
    resource_id: list[str] | None = None
    """Exact resource ids."""
    resource_type: list[str] | None = None
    """``kafka_cluster``, ``connector``, ``ksqldb_cluster``, ..."""
    resource_pattern: str | None = None
    """Regex on the resource id."""
    resource_name: str | None = None
    """Regex on the resource's display name."""
    cluster: list[str] | None = None
    """Cluster ids: the row's resource, or the cluster it belongs to (a connector's)."""
    environment: list[str] | None = None
    """Environment ids (``env-...``)."""
    environment_name: str | None = None
    """Regex on the environment's display name."""

    _lists = field_validator(
        "identity_id", "identity_type", "resource_id", "resource_type", "cluster", "environment",
        mode="before",
    )(_as_list)  # fmt: skip

    @field_validator(*REGEX_FIELDS)
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> RuleMatch:
        if not self.conditions():
            raise ValueError("a rule needs at least one match condition")
        return self

    def conditions(self) -> dict[str, Any]:
        """The conditions given, by field name."""
        return {k: v for k, v in self if v is not None and v != []}

    def groups(self) -> set[str]:
        """The named groups of every regex of the rule."""
        out: set[str] = set()
        for name in REGEX_FIELDS:
            pattern = getattr(self, name)
            if pattern is not None:
                out |= set(re.compile(pattern).groupindex)
        return out


class RuleSettings(_Model):
    """One ownership rule: what it matches, the team and dimensions it gives, and when."""

    name: str | None = None
    """Shown by the rule tester and recorded on every attribution (default ``rule-<n>``)."""
    team: str = Field(min_length=1)
    """The team, or a ``{group}`` template filled from the rule's regexes."""
    dimensions: dict[str, str] = Field(default_factory=dict)
    """Values of declared dimensions (templates allowed, like ``team``)."""
    tenants: list[str] | None = None
    """The tenants the rule applies to; ``None``: every tenant."""
    valid_from: dt.date | None = None
    """First day the rule applies (inclusive, UTC)."""
    valid_until: dt.date | None = None
    """Last day the rule applies (inclusive, UTC)."""
    match: RuleMatch

    _tenants = field_validator("tenants", mode="before")(_as_list)

    @model_validator(mode="after")
    def _consistent(self) -> RuleSettings:
        if self.valid_from and self.valid_until and self.valid_from > self.valid_until:
            raise ValueError(
                f"valid_from {self.valid_from} is after valid_until {self.valid_until}"
            )
        groups = self.match.groups()
        for where, text in [("team", self.team), *self.dimensions.items()]:
            for group in _PLACEHOLDER.findall(text):
                if group not in groups:
                    raise ValueError(
                        f"{where} uses {{{group}}} but no regex of the rule has a group "
                        f"named {group!r} (have: {', '.join(sorted(groups)) or 'none'})"
                    )
        return self


class OwnershipSettings(_Model):
    """The ``ownership`` section: declared dimensions and the rules (inline and file)."""

    dimensions: list[str] = Field(default_factory=list)
    """Keys rules may set besides the team (``cost_centre``, ``application``, ...)."""
    rules: list[RuleSettings] = Field(default_factory=list)
    rules_file: Path | None = None
    """A YAML or CSV file of more rules, read at load and again on SIGHUP."""
    _file_rules: tuple[RuleSettings, ...] = PrivateAttr(default=())

    @field_validator("dimensions")
    @classmethod
    def _dimension_names(cls, value: list[str]) -> list[str]:
        for key in value:
            if not _KEY.match(key) or key in _RESERVED_DIMENSIONS:
                raise ValueError(
                    f"dimension {key!r} must be lowercase letters, digits and '_' and not one "
                    f"of {', '.join(sorted(_RESERVED_DIMENSIONS))}"
                )
        if len(set(value)) != len(value):
            raise ValueError("dimensions must be unique")
        return value

    @model_validator(mode="after")
    def _read_file_and_check(self) -> OwnershipSettings:
        file_rules = load_rules_file(self.rules_file, self.dimensions) if self.rules_file else ()
        self._file_rules = file_rules
        names: set[str] = set()
        for i, rule in enumerate(self.all_rules()):
            where = _rule_label(i, rule)
            unknown = sorted(set(rule.dimensions) - set(self.dimensions))
            if unknown:
                raise ValueError(
                    f"{where}: dimensions {', '.join(unknown)} are not declared in "
                    f"ownership.dimensions ({', '.join(self.dimensions) or 'none declared'})"
                )
            name = rule_name(i, rule)
            if name in names:
                raise ValueError(f"{where}: rule name {name!r} is used twice")
            names.add(name)
        return self

    def all_rules(self) -> tuple[RuleSettings, ...]:
        """The inline rules, then the file's, in order."""
        return (*self.rules, *self._file_rules)


def rule_name(index: int, rule: RuleSettings) -> str:
    """A rule's name, or ``rule-<n>`` (1-based position among all rules)."""
    return rule.name or f"rule-{index + 1}"


def _rule_label(index: int, rule: RuleSettings) -> str:
    return f"rule {index + 1}" + (f" ({rule.name})" if rule.name else "")


def load_rules_file(path: Path, dimensions: list[str]) -> tuple[RuleSettings, ...]:
    """Read a rules file (``.csv``: one rule a row; anything else: YAML with ``rules:``).

    Raises:
        ValueError: the file cannot be read or a rule is invalid; the message names the
            file and the rule (its position and name).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"rules file {path}: cannot read it: {exc.strerror}") from exc
    is_csv = path.suffix.lower() == ".csv"
    raw = _csv_rules(text, dimensions) if is_csv else _yaml_rules(path, text)
    out: list[RuleSettings] = []
    for i, item in enumerate(raw):
        try:
            out.append(RuleSettings.model_validate(item))
        except pydantic.ValidationError as exc:
            name = item.get("name") if isinstance(item, dict) else None
            label = f"rule {i + 1}" + (f" ({name})" if name else "")
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(rule)'}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise ValueError(f"rules file {path}: {label}: {problems}") from None
    return tuple(out)


def _yaml_rules(path: Path, text: str) -> list[Any]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"rules file {path}: not valid YAML: {exc}") from None
    if data is None:
        return []
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list) or (isinstance(data, dict) and set(data) - {"rules"}):
        raise ValueError(f"rules file {path}: expected a mapping with one key 'rules:' (a list)")
    return rules


_CSV_LIST_FIELDS = frozenset(
    {"identity_id", "identity_type", "resource_id", "resource_type", "cluster", "environment"}
)


def _csv_rules(text: str, dimensions: list[str]) -> list[dict[str, Any]]:
    match_fields = set(RuleMatch.model_fields)
    out: list[dict[str, Any]] = []
    for row in csv.DictReader(io.StringIO(text)):
        rule: dict[str, Any] = {"match": {}, "dimensions": {}}
        for column, cell in row.items():
            value = (cell or "").strip()
            if not value or column is None:
                continue
            if column in match_fields:
                rule["match"][column] = value.split("|") if column in _CSV_LIST_FIELDS else value
            elif column in dimensions:
                rule["dimensions"][column] = value
            elif column == "tenants":
                rule["tenants"] = value.split("|")
            else:
                rule[column] = value  # name, team, valid_from, valid_until; others rejected
        out.append(rule)
    return out
