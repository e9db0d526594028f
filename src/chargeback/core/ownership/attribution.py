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
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any, NamedTuple

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


class KeyShare(NamedTuple):
    """The rows of one key on one date, and the key's decision (a ``NamedTuple``: built
    in C, ~10k a date)."""

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
        shares: one per key, in the order the keys first appear in the date's rows.
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
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    """Derived views, computed once on first use (the index by key, the team totals)."""

    def decision_of(
        self, identity_id: str, resource_id: str | None, env_id: str | None
    ) -> Decision:
        """The decision of a row's key (UNASSIGNED for a key this date does not have)."""
        index = self._cache.get("index")
        if index is None:
            index = self._cache["index"] = {s.key: s.decision for s in self.shares}
        found: Decision = index.get(Key(identity_id, resource_id or "", env_id or ""), NO_MATCH)
        return found

    def team_totals(self) -> list[TeamTotal]:
        """Sum per team and dimensions, sorted by team then dimensions."""
        totals: list[TeamTotal] | None = self._cache.get("totals")
        if totals is None:
            totals = self._cache["totals"] = self._team_totals()
        return list(totals)

    def _team_totals(self) -> list[TeamTotal]:
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
        return sum(t.amount for t in self.team_totals() if t.team == UNASSIGNED)

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
        """The shares and names as compact JSON (one text value per date).

        Columnar (one list per field, the decisions numbered once): ~10k keys a date
        encode as a few flat lists, about twice as fast as a list per key.
        """
        outcomes: dict[Decision, int] = {}
        number = outcomes.setdefault
        shares = self.shares
        doc = {
            "identity": [s.key.identity_id for s in shares],
            "resource": [s.key.resource_id for s in shares],
            "env": [s.key.env_id for s in shares],
            "amount": [s.amount for s in shares],
            "rows": [s.rows for s in shares],
            "outcome": [number(s.decision, len(outcomes)) for s in shares],
        }
        doc["outcomes"] = [
            [d.team, [list(p) for p in d.dimensions], d.rule, list(d.conflicts)] for d in outcomes
        ]
        doc["names"] = dict(sorted(self.names.items()))
        doc["dimensions"] = list(self.dimension_keys)
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
        columns = zip(
            doc["identity"], doc["resource"], doc["env"], doc["amount"], doc["rows"],
            doc["outcome"], strict=True,
        )  # fmt: skip
        shares = tuple(
            KeyShare(Key(i, r, e), int(a), int(n), outcomes[o]) for i, r, e, a, n, o in columns
        )
        keys = tuple(doc.get("dimensions", ()))
        return cls(tenant_id, day, rule_version, calc_seq, shares, doc.get("names", {}), keys)


_FIELDS = ChargebackRow._fields
_ROW_KEY = itemgetter(
    _FIELDS.index("identity_id"), _FIELDS.index("resource_id"), _FIELDS.index("env_id")
)
"""A row's key fields by their positions, named: the C getter of a tuple (~2x attrgetter)."""
_ROW_AMOUNT = itemgetter(_FIELDS.index("amount"))


def key_amounts(rows: Sequence[ChargebackRow]) -> dict[Key, tuple[int, int]]:
    """Group rows by key: ``key -> (amount, rows)`` in first-seen order; no resource or
    env is ``""``. The row counts come from ``Counter`` (counted in C)."""
    keys = list(map(_ROW_KEY, rows))
    sums: dict[tuple[str, str | None, str | None], int] = dict.fromkeys(keys, 0)
    for k, amount in zip(keys, map(_ROW_AMOUNT, rows), strict=True):
        sums[k] += amount
    counts = Counter(keys)
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
    decided = matcher.decisions_for(day)  # the decisions of dates alike, shared
    get, decide = decided.get, matcher.decide
    shares = tuple(KeyShare(k, a, n, get(k) or decide(k, day)) for k, (a, n) in amounts.items())
    directory = matcher.directory
    names = _names_of(shares, directory.names, directory.env_names)
    dims = matcher.rules.dimensions
    result = DateAttribution(tenant_id, day, None, calc_seq, shares, names, dims)
    total = sum(t.amount for t in result.team_totals())  # each share in exactly one team
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
