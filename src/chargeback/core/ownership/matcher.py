"""Deciding the team of one row's key (identity, resource, environment) on one date.

A chargeback row's team depends only on its :class:`Key` and the date (rules have
validity periods), so the matcher decides keys, not rows, and remembers each decision
for every date on which the same rules are valid: a backfill decides each key about
once, however many dates and rows carry it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from chargeback.core.models import Identity, Resource
from chargeback.core.ownership.rules import UNASSIGNED, CompiledRule, RuleSet

__all__ = ["Decision", "Directory", "Key", "Matcher"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_CLUSTER_TYPES = frozenset({"kafka_cluster"})


class Key(NamedTuple):
    """What a row's team depends on (``""`` for a row without resource or environment)."""

    identity_id: str
    resource_id: str
    env_id: str


class Decision(NamedTuple):
    """The team of a key on a date and why (a ``NamedTuple``: hashed and compared in C,
    as the stored form groups ~10k keys a date by their decision).

    Attributes:
        team: the team, :data:`~chargeback.core.ownership.rules.UNASSIGNED` when no rule matched.
        dimensions: ``(key, value)`` of the declared dimensions the rule set, in order.
        rule: the deciding rule's name, ``None`` when no rule matched.
        conflicts: names of equally ranked matching rules that said something else.
    """

    team: str
    dimensions: tuple[tuple[str, str], ...] = ()
    rule: str | None = None
    conflicts: tuple[str, ...] = ()


NO_MATCH = Decision(UNASSIGNED)


@dataclass(frozen=True, slots=True)
class _IdentityFacts:
    identity_id: str
    identity_type: str
    name: str
    description: str
    key_descriptions: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _ResourceFacts:
    resource_id: str
    resource_type: str
    name: str
    cluster_id: str


@dataclass(slots=True)
class Directory:
    """What rules can see about identities, resources and environments (the inventory).

    ``description`` comes from an identity's ``attributes["description"]``, which
    ecosystem plugins fill where the source has one (Confluent: service accounts,
    API keys, identity pools).
    """

    identities: dict[str, _IdentityFacts] = field(default_factory=dict)
    resources: dict[str, _ResourceFacts] = field(default_factory=dict)
    env_names: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)
    """Display name of every identity and resource that has one (for reports)."""

    @classmethod
    def of(cls, resources: Iterable[Resource], identities: Iterable[Identity]) -> Directory:
        """Build the directory from an inventory."""
        out = cls()
        idents = list(identities)
        key_descriptions: dict[str, list[str]] = {}
        for i in idents:
            desc = i.attributes.get("description", "")
            if i.identity_type == "api_key" and i.owner_id and desc:
                key_descriptions.setdefault(i.owner_id, []).append(desc)
        for i in idents:
            out.identities[i.identity_id] = _IdentityFacts(
                i.identity_id,
                i.identity_type,
                i.display_name or "",
                i.attributes.get("description", ""),
                tuple(sorted(key_descriptions.get(i.identity_id, ()))),
            )
            if i.display_name:
                out.names[i.identity_id] = i.display_name
        for r in resources:
            if r.resource_type == "environment":
                out.env_names[r.resource_id] = r.display_name or ""
            cluster = r.resource_id if r.resource_type in _CLUSTER_TYPES else (r.parent_id or "")
            out.resources[r.resource_id] = _ResourceFacts(
                r.resource_id, r.resource_type, r.display_name or "", cluster
            )
            if r.display_name:
                out.names[r.resource_id] = r.display_name
        return out


def _identity_match(rule: CompiledRule, facts: _IdentityFacts, groups: dict[str, str]) -> bool:
    for name, allowed in rule.exact.items():
        if name == "identity_id":
            value = facts.identity_id
        elif name == "identity_type":
            value = facts.identity_type
        else:
            continue
        if value not in allowed:
            return False
    for name, pattern in rule.patterns.items():
        texts: tuple[str, ...]
        if name == "identity_pattern":
            texts = (facts.identity_id,)
        elif name == "identity_name":
            texts = (facts.name,)
        elif name == "identity_description":
            texts = (facts.description,)
        elif name == "api_key_description":
            texts = facts.key_descriptions
        else:
            continue
        if not _search(pattern, texts, groups):
            return False
    return True


def _resource_match(
    rule: CompiledRule, key: Key, directory: Directory, groups: dict[str, str]
) -> bool:
    facts = directory.resources.get(key.resource_id)
    for name, allowed in rule.exact.items():
        if name == "resource_id":
            ok = key.resource_id in allowed
        elif name == "resource_type":
            ok = facts is not None and facts.resource_type in allowed
        elif name == "cluster":
            ok = key.resource_id in allowed or (facts is not None and facts.cluster_id in allowed)
        elif name == "environment":
            ok = key.env_id in allowed
        else:
            continue
        if not ok:
            return False
    for name, pattern in rule.patterns.items():
        if name == "resource_pattern":
            texts: tuple[str, ...] = (key.resource_id,) if key.resource_id else ()
        elif name == "resource_name":
            texts = (facts.name,) if facts is not None else ()
        elif name == "environment_name":
            env_name = directory.env_names.get(key.env_id)
            texts = (env_name,) if env_name else ()
        else:
            continue
        if not _search(pattern, texts, groups):
            return False
    return True


def _search(pattern: re.Pattern[str], texts: Iterable[str], groups: dict[str, str]) -> bool:
    for text in texts:
        m = pattern.search(text)
        if m is not None:
            groups.update({k: v for k, v in m.groupdict().items() if v is not None})
            return True
    return False


def _fill(template: str, groups: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: groups.get(m.group(1), ""), template)


class Matcher:
    """Decides keys against one tenant's rule set and inventory.

    Args:
        rules: the tenant's compiled rules.
        directory: the tenant's inventory facts.
    """

    def __init__(self, rules: RuleSet, directory: Directory) -> None:
        self.rules = rules
        self.directory = directory
        self._by_signature: dict[tuple[int, ...], dict[Key, Decision]] = {}
        self._signature_of: dict[dt.date, tuple[int, ...]] = {}

    def _signature(self, day: dt.date) -> tuple[int, ...]:
        sig = self._signature_of.get(day)
        if sig is None:
            sig = tuple(i for i, r in enumerate(self.rules.rules) if r.valid_on(day))
            self._signature_of[day] = sig
        return sig

    def decisions_for(self, day: dt.date) -> dict[Key, Decision]:
        """The decision cache of ``day`` (shared by every date with the same valid rules)."""
        return self._by_signature.setdefault(self._signature(day), {})

    def decide(self, key: Key, day: dt.date) -> Decision:
        """Return the team of ``key`` on ``day`` (remembered for dates alike)."""
        cache = self.decisions_for(day)
        decision = cache.get(key)
        if decision is None:
            decision = cache[key] = self._decide(key, self._signature(day))
        return decision

    def _decide(self, key: Key, valid: tuple[int, ...]) -> Decision:
        rules = self.rules.rules
        identity = self.directory.identities.get(key.identity_id) or _IdentityFacts(
            key.identity_id, "", "", "", ()
        )
        winner: CompiledRule | None = None
        decided: Decision = NO_MATCH
        conflicts: list[str] = []
        for i in valid:  # already in precedence order
            rule = rules[i]
            if winner is not None and rule.rank != winner.rank:
                break
            groups: dict[str, str] = {}
            if rule.identity_fields and not _identity_match(rule, identity, groups):
                continue
            if rule.resource_fields and not _resource_match(rule, key, self.directory, groups):
                continue
            outcome = Decision(
                _fill(rule.team, groups) or UNASSIGNED,
                tuple((k, _fill(v, groups)) for k, v in rule.dimensions),
                rule.name,
            )
            if winner is None:
                winner, decided = rule, outcome
            elif (outcome.team, outcome.dimensions) != (decided.team, decided.dimensions):
                conflicts.append(rule.name)
        if conflicts:
            return Decision(decided.team, decided.dimensions, decided.rule, tuple(conflicts))
        return decided
