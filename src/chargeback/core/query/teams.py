"""Teams in allocation queries: rows mapped through each day's ownership attribution.

A row's team is the decision of its (identity, resource, environment) key in its
date's attribution (DESIGN §14). A query that names ``team`` (to aggregate or filter)
reads the rows grouped by that key as well as by its other dimensions, per day, and
:func:`team_groups` puts each group under its day's team. A day whose attribution is
missing, or belongs to an older calculation of the day, has no honest team: its rows
go to :data:`NOT_ATTRIBUTED` (and say so), never to a guessed team.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

from chargeback.core.ownership.matcher import Key
from chargeback.core.query.aggregate import GroupRow
from chargeback.core.query.spec import TEAM, Filter
from chargeback.core.storage.backend import DateState, StorageBackend
from chargeback.core.storage.ownership import ownership_store

__all__ = [
    "KEY_DIMENSIONS",
    "NOT_ATTRIBUTED",
    "current_teams",
    "source_dimensions",
    "team_groups",
]

NOT_ATTRIBUTED = "(not attributed)"
"""The team of rows whose day has no current attribution."""

KEY_DIMENSIONS = ("identity", "resource", "environment")
"""The dimensions of an attribution key, in :class:`Key` order."""


def source_dimensions(dimensions: Sequence[str]) -> tuple[str, ...]:
    """What to ask the source for: the non-team dimensions, then the key's."""
    out = [d for d in dimensions if d != TEAM]
    out += [d for d in KEY_DIMENSIONS if d not in out]
    return tuple(out)


def team_groups(
    groups: Iterable[GroupRow],
    asked: Sequence[str],
    dimensions: Sequence[str],
    teams: Mapping[dt.date, Mapping[Key, str]],
    team_filters: Sequence[Filter],
) -> list[GroupRow]:
    """Re-key per-day groups read by ``source_dimensions(dimensions)`` to ``dimensions``.

    Args:
        groups: the source's groups, per day, keyed by ``asked``.
        asked: ``source_dimensions(dimensions)``.
        dimensions: the query's dimensions (``team`` among them, or not).
        teams: each day's key -> team (a day absent: :data:`NOT_ATTRIBUTED`).
        team_filters: filters on ``team`` (the source applied the others).
    """
    where = [asked.index(d) for d in KEY_DIMENSIONS]
    positions = [None if d == TEAM else asked.index(d) for d in dimensions]
    out: list[GroupRow] = []
    for g in groups:
        key = Key(*(g.key[i] for i in where))
        team = teams.get(g.day, {}).get(key, NOT_ATTRIBUTED)
        if not all(f.matches(team) for f in team_filters):
            continue
        new_key = tuple(team if p is None else g.key[p] for p in positions)
        out.append(GroupRow(g.day, new_key, g.cost_type, g.amount))
    return out


async def current_teams(
    storage: StorageBackend, tenant: str, states: Mapping[dt.date, DateState]
) -> dict[dt.date, dict[Key, str]]:
    """Each day's key -> team, for the days whose attribution is of their current calculation.

    A day left out has no honest team (its rows go to :data:`NOT_ATTRIBUTED`): never
    attributed, attributed for an older calculation, stored in a format this version
    cannot read, or a backend without attributions.
    """
    try:
        store = ownership_store(storage)
    except TypeError:  # a backend without attributions: every day is not attributed
        return {}
    teams: dict[dt.date, dict[Key, str]] = {}
    for day, state in states.items():
        try:
            att = await store.read_attribution(tenant, day)
        except (KeyError, ValueError, TypeError, IndexError):  # a format it cannot read
            att = None
        if att is not None and att.calc_seq == state.calc_seq:
            teams[day] = {share.key: share.decision.team for share in att.shares}
    return teams
