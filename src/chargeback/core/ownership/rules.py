"""Compiled ownership rules, their precedence and their version fingerprint (DESIGN §14).

Precedence, strongest first (a rule ranks by its most specific condition):

====  ==================  ===========================================================
rank  level               conditions
====  ==================  ===========================================================
1     identity id         ``identity_id``
2     identity pattern    ``identity_pattern``, ``identity_name``, ``identity_description``,
                          ``api_key_description``, ``identity_type``
3     resource id         ``resource_id``
4     resource pattern    ``resource_pattern``, ``resource_name``, ``resource_type``
5     cluster             ``cluster``
6     environment         ``environment``, ``environment_name``
====  ==================  ===========================================================

So an identity rule beats a resource rule, and an exact id beats a pattern. Among
rules of the same rank, the one with more conditions (narrower) wins; among equally
narrow ones, the first in file order. When another rule of the winner's rank and
narrowness also matches but gives a different team or dimensions, that is a
**conflict**: the first still decides, and the conflict is recorded on the
attribution, logged, counted and listed by ``chargeback ownership``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from chargeback.core.ownership.config import OwnershipSettings, RuleSettings, rule_name

__all__ = [
    "LEVELS",
    "UNASSIGNED",
    "CompiledRule",
    "RuleSet",
    "compile_rules",
]

UNASSIGNED = "UNASSIGNED"
"""The team of a row no rule matches."""

LEVELS = (
    "identity id",
    "identity pattern",
    "resource id",
    "resource pattern",
    "cluster",
    "environment",
)
"""The precedence levels, strongest first (index + 1 is the rank)."""

_LEVEL_OF = {
    "identity_id": 0,
    "identity_pattern": 1,
    "identity_name": 1,
    "identity_description": 1,
    "api_key_description": 1,
    "identity_type": 1,
    "resource_id": 2,
    "resource_pattern": 3,
    "resource_name": 3,
    "resource_type": 3,
    "cluster": 4,
    "environment": 5,
    "environment_name": 5,
}
IDENTITY_FIELDS = frozenset(k for k, v in _LEVEL_OF.items() if v <= 1)
"""Conditions on the identity; the rest look at the resource side of a row."""


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """One rule ready to match.

    Attributes:
        index: position among the tenant's rules (file order).
        name: the rule's name.
        team: team or ``{group}`` template.
        dimensions: ``(key, value or template)`` in declared order.
        valid_from: first day (inclusive) or ``None``.
        valid_until: last day (inclusive) or ``None``.
        exact: exact-value conditions (field -> allowed values).
        patterns: regex conditions (field -> compiled regex).
        level: index into :data:`LEVELS` (0 is strongest).
        narrowness: number of conditions.
    """

    index: int
    name: str
    team: str
    dimensions: tuple[tuple[str, str], ...]
    valid_from: dt.date | None
    valid_until: dt.date | None
    exact: Mapping[str, frozenset[str]]
    patterns: Mapping[str, re.Pattern[str]]
    level: int
    narrowness: int

    @property
    def sort_key(self) -> tuple[int, int, int]:
        """Precedence order: level, then narrower first, then file order."""
        return (self.level, -self.narrowness, self.index)

    @property
    def rank(self) -> tuple[int, int]:
        """Rules of equal rank that both match and disagree are a conflict."""
        return (self.level, -self.narrowness)

    def valid_on(self, day: dt.date) -> bool:
        """Whether the rule applies on ``day``."""
        return (self.valid_from is None or self.valid_from <= day) and (
            self.valid_until is None or day <= self.valid_until
        )

    @property
    def identity_fields(self) -> tuple[str, ...]:
        """The rule's identity conditions."""
        return tuple(f for f in (*self.exact, *self.patterns) if f in IDENTITY_FIELDS)

    @property
    def resource_fields(self) -> tuple[str, ...]:
        """The rule's resource-side conditions."""
        return tuple(f for f in (*self.exact, *self.patterns) if f not in IDENTITY_FIELDS)


@dataclass(frozen=True, slots=True)
class RuleSet:
    """A tenant's rules in precedence order, with the declared dimensions and a digest.

    Attributes:
        dimensions: the declared dimension keys, in order.
        rules: the compiled rules, strongest first.
        fingerprint: digest of everything that can change an attribution; equal
            fingerprints give equal attributions for the same rows and inventory.
        document: the rules as plain data (stored with each rule version).
    """

    dimensions: tuple[str, ...]
    rules: tuple[CompiledRule, ...]
    fingerprint: str
    document: str

    @property
    def empty(self) -> bool:
        """No rules: every row is UNASSIGNED."""
        return not self.rules


def _compile_one(index: int, rule: RuleSettings, dimensions: Sequence[str]) -> CompiledRule:
    conditions = rule.match.conditions()
    exact = {k: frozenset(v) for k, v in conditions.items() if isinstance(v, list)}
    patterns = {k: re.compile(v) for k, v in conditions.items() if isinstance(v, str)}
    return CompiledRule(
        index=index,
        name=rule_name(index, rule),
        team=rule.team,
        dimensions=tuple((k, rule.dimensions[k]) for k in dimensions if k in rule.dimensions),
        valid_from=rule.valid_from,
        valid_until=rule.valid_until,
        exact=exact,
        patterns=patterns,
        level=min(_LEVEL_OF[k] for k in conditions),
        narrowness=len(conditions),
    )


def compile_rules(settings: OwnershipSettings, tenant_id: str) -> RuleSet:
    """Compile the rules that apply to ``tenant_id`` (its own and the all-tenant ones)."""
    dimensions = tuple(settings.dimensions)
    chosen: list[tuple[int, RuleSettings]] = [
        (i, r)
        for i, r in enumerate(settings.all_rules())
        if r.tenants is None or tenant_id in r.tenants
    ]
    compiled = [_compile_one(i, r, dimensions) for i, r in chosen]
    compiled.sort(key=lambda r: r.sort_key)
    document = json.dumps(
        {
            "dimensions": list(dimensions),
            "rules": [
                {"name": rule_name(i, r), **r.model_dump(mode="json", exclude={"tenants", "name"})}
                for i, r in chosen
            ],
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    fingerprint = hashlib.sha256(document.encode()).hexdigest()[:32]
    return RuleSet(dimensions, tuple(compiled), fingerprint, document)
