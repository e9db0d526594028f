"""Ownership: which team (and cost centre, application, ...) spent the money (DESIGN §14).

Attribution is a step after allocation. It never changes an allocated amount: each
committed date's rows are grouped by their key (identity, resource, environment), each
key is decided by the tenant's rules (:mod:`~chargeback.core.ownership.rules` for the
precedence, :mod:`~chargeback.core.ownership.config` for the settings), and the
result is stored per date with the rule version that produced it. Every row has a team,
``UNASSIGNED`` when no rule matches, and the team totals of a date equal its allocated
total exactly.

Read interface (for the query API, reports and emitters), on an
:class:`~chargeback.core.ownership.store.OwnershipStore` from
:func:`~chargeback.core.storage.ownership.ownership_store`::

    store = ownership_store(storage_backend)
    att = await store.read_attribution(tenant, day)       # DateAttribution | None
    att.decision_of(row.identity_id, row.resource_id, row.env_id).team   # a row's team
    att.team_totals()                                     # [TeamTotal(team, dims, amount, rows)]
    await store.team_totals(tenant, start, end)           # {date: [TeamTotal, ...]}, set-based

``None`` from ``read_attribution`` means the date is not attributed (yet): say so, do not
guess ``UNASSIGNED``.
"""

from chargeback.core.ownership.attribution import (
    DateAttribution,
    KeyShare,
    OwnershipError,
    TeamTotal,
    attribute,
    key_amounts,
)
from chargeback.core.ownership.config import OwnershipSettings, RuleMatch, RuleSettings
from chargeback.core.ownership.matcher import Decision, Directory, Key, Matcher
from chargeback.core.ownership.rules import UNASSIGNED, RuleSet, compile_rules

__all__ = [
    "UNASSIGNED",
    "DateAttribution",
    "Decision",
    "Directory",
    "Key",
    "KeyShare",
    "Matcher",
    "OwnershipError",
    "OwnershipSettings",
    "RuleMatch",
    "RuleSet",
    "RuleSettings",
    "TeamTotal",
    "attribute",
    "compile_rules",
    "key_amounts",
]
