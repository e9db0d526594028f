"""Attribution of one date: its rows' keys, their amounts, decisions and team totals.

Attribution never changes an allocated amount: it groups the date's rows by
:class:`~chargeback.core.ownership.matcher.Key`, decides each key, and sums the
amounts per team and dimensions. :func:`attribute` checks that the team totals add up
to the rows' total exactly (they must: each row's amount goes to exactly one key and
each key to exactly one team) and raises :class:`OwnershipError` otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import attrgetter

from chargeback.core.models import ChargebackRow
from chargeback.core.ownership.matcher import NO_MATCH, Decision, Key, Matcher
from chargeback.core.ownership.rules import UNASSIGNED
from chargeback.errors import ChargebackError

__all__ = [
    "DateAttribution",
    "KeyShare",
    "OwnershipError",
    "TeamTotal",
    "attribute",
    "key_amounts",
]


class OwnershipError(ChargebackError):
    """Attribution broke an invariant (team totals differ from the allocated total)."""


@dataclass(frozen=True, slots=True)
class KeyShare:
    """The rows of one key on one date, and the key's decision."""

    key: Key
    amount: int
    rows: int
    decision: Decision


@dataclass(frozen=True, slots=True)
class TeamTotal:
    """The amount (minor units) and row count of one team and dimensions on one date."""

    team: str
    dimensions: tuple[tuple[str, str], ...]
    amount: int
    rows: int


@dataclass(frozen=True, slots=True)
class DateAttribution:
    """Every key of a tenant-date with its team, under one rule version.

    Attributes:
        tenant_id: the tenant.
        day: the date.
        rule_version: the stored rule version used (``None`` before it is stored).
        calc_seq: the date's calculation this attribution belongs to.
        shares: one per key, sorted by key.
        names: display names of the identities, resources and environments of the
            date's keys (as the inventory had them when attributed).
        dimension_keys: the dimensions declared when attributed, in order.
    """

    tenant_id: str
    day: dt.date
    rule_version: int | None
    calc_seq: int
    shares: tuple[KeyShare, ...]
    names: Mapping[str, str] = field(default_factory=dict)
    dimension_keys: tuple[str, ...] = ()
    _index: dict[Key, Decision] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {s.key: s.decision for s in self.shares})

    def decision_of(
        self, identity_id: str, resource_id: str | None, env_id: str | None
    ) -> Decision:
        """The decision of a row's key (UNASSIGNED for a key this date does not have)."""
        return self._index.get(Key(identity_id, resource_id or "", env_id or ""), NO_MATCH)

    def team_totals(self) -> list[TeamTotal]:
        """Sum per team and dimensions, sorted by team then dimensions."""
        sums: dict[tuple[str, tuple[tuple[str, str], ...]], list[int]] = {}
        for s in self.shares:
            acc = sums.setdefault((s.decision.team, s.decision.dimensions), [0, 0])
            acc[0] += s.amount
            acc[1] += s.rows
        return [TeamTotal(t, d, a, n) for (t, d), (a, n) in sorted(sums.items())]

    @property
    def total(self) -> int:
        """The date's allocated total (sum of every share)."""
        return sum(s.amount for s in self.shares)

    @property
    def unassigned(self) -> int:
        """The part of :attr:`total` no rule matched."""
        return sum(s.amount for s in self.shares if s.decision.team == UNASSIGNED)

    def unmapped_identities(self) -> list[str]:
        """Identities with a share no rule matched (ids, sorted)."""
        return sorted({s.key.identity_id for s in self.shares if s.decision.team == UNASSIGNED})

    def conflicts(self) -> dict[str, tuple[str, ...]]:
        """Deciding rule -> the rules it overrode in a conflict, for this date."""
        out: dict[str, set[str]] = {}
        for s in self.shares:
            if s.decision.conflicts and s.decision.rule is not None:
                out.setdefault(s.decision.rule, set()).update(s.decision.conflicts)
        return {k: tuple(sorted(v)) for k, v in sorted(out.items())}

    # -- stored form -------------------------------------------------------------------
    def encode(self) -> str:
        """The shares and names as compact JSON (one text value per date)."""
        outcomes: dict[Decision, int] = {}
        shares = []
        for s in self.shares:
            idx = outcomes.setdefault(s.decision, len(outcomes))
            shares.append(
                [s.key.identity_id, s.key.resource_id, s.key.env_id, s.amount, s.rows, idx]
            )
        doc = {
            "outcomes": [
                [d.team, [list(p) for p in d.dimensions], d.rule, list(d.conflicts)]
                for d in outcomes
            ],
            "shares": shares,
            "names": dict(sorted(self.names.items())),
            "dimensions": list(self.dimension_keys),
        }
        return json.dumps(doc, separators=(",", ":"))

    @classmethod
    def decode(
        cls, tenant_id: str, day: dt.date, rule_version: int | None, calc_seq: int, text: str
    ) -> DateAttribution:
        """Rebuild an attribution from :meth:`encode`'s text."""
        doc = json.loads(text)
        outcomes = [
            Decision(t, tuple((str(k), str(v)) for k, v in dims), rule, tuple(conf))
            for t, dims, rule, conf in doc["outcomes"]
        ]
        shares = tuple(
            KeyShare(Key(i, r, e), int(a), int(n), outcomes[o])
            for i, r, e, a, n, o in doc["shares"]
        )
        keys = tuple(doc.get("dimensions", ()))
        return cls(tenant_id, day, rule_version, calc_seq, shares, doc.get("names", {}), keys)


_ROW_KEY = attrgetter("identity_id", "resource_id", "env_id")
_ROW_AMOUNT = attrgetter("amount")


def key_amounts(rows: Sequence[ChargebackRow]) -> dict[Key, tuple[int, int]]:
    """Group rows by key: ``key -> (amount, rows)``; no resource or env is ``""``."""
    sums: dict[tuple[str, str | None, str | None], int] = {}
    counts: dict[tuple[str, str | None, str | None], int] = {}
    get = sums.get
    cget = counts.get
    for k, amount in zip(map(_ROW_KEY, rows), map(_ROW_AMOUNT, rows), strict=True):
        sums[k] = get(k, 0) + amount
        counts[k] = cget(k, 0) + 1
    return {Key(i, r or "", e or ""): (a, counts[(i, r, e)]) for (i, r, e), a in sums.items()}


def attribute(
    tenant_id: str,
    day: dt.date,
    amounts: Mapping[Key, tuple[int, int]],
    matcher: Matcher,
    *,
    calc_seq: int,
    expected_total: int | None = None,
) -> DateAttribution:
    """Decide every key of a date and check conservation.

    Args:
        tenant_id: the tenant.
        day: the date.
        amounts: ``key -> (amount, rows)`` (from :func:`key_amounts` or storage).
        matcher: the tenant's matcher.
        calc_seq: the date's calculation.
        expected_total: the date's allocated total; defaults to the sum of ``amounts``.

    Raises:
        OwnershipError: the team totals do not add up to ``expected_total``.
    """
    decide = matcher.decide
    shares = tuple(KeyShare(k, a, n, decide(k, day)) for k, (a, n) in sorted(amounts.items()))
    directory = matcher.directory
    names = _names_of(shares, directory.names, directory.env_names)
    dims = matcher.rules.dimensions
    result = DateAttribution(tenant_id, day, None, calc_seq, shares, names, dims)
    total = sum(t.amount for t in result.team_totals())
    want = sum(a for a, _ in amounts.values()) if expected_total is None else expected_total
    if total != want:
        raise OwnershipError(
            f"tenant {tenant_id!r} {day}: team totals sum to {total} but the date's "
            f"allocated total is {want} (minor units); attribution not stored"
        )
    return result


def _names_of(
    shares: Iterable[KeyShare], names: Mapping[str, str], env_names: Mapping[str, str]
) -> dict[str, str]:
    out: dict[str, str] = {}
    for s in shares:
        for ident in s.key:
            name = names.get(ident) or env_names.get(ident)
            if name:
                out[ident] = name
    return out
