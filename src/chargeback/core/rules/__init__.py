"""Allocation building blocks any ecosystem plugin can use (DESIGN §10).

- :mod:`~chargeback.core.rules.allocators`: the generic rules as pure functions
  (usage ratio with an even shared part, even, owner, unallocated), exact to the
  minor unit;
- :mod:`~chargeback.core.rules.table`: :class:`RuleSpec` defaults per product type,
  :class:`RuleOverride` from the plugin's settings, and the :class:`RuleTable` that
  binds each product type to its :class:`RuleAllocator`; :class:`FallbackAllocator`
  for product types no handler claims.
"""

from __future__ import annotations

from chargeback.core.rules.allocators import (
    EVEN_NO_USAGE,
    FALLBACK,
    NO_IDENTITIES,
    UNKNOWN_PRINCIPAL,
    UsageMemo,
    allocate_even,
    allocate_owner,
    allocate_unallocated,
    allocate_usage,
)
from chargeback.core.rules.table import (
    FallbackAllocator,
    RuleAllocator,
    RuleKind,
    RuleOverride,
    RuleSpec,
    RuleTable,
)

__all__ = [
    "EVEN_NO_USAGE",
    "FALLBACK",
    "NO_IDENTITIES",
    "UNKNOWN_PRINCIPAL",
    "FallbackAllocator",
    "RuleAllocator",
    "RuleKind",
    "RuleOverride",
    "RuleSpec",
    "RuleTable",
    "UsageMemo",
    "allocate_even",
    "allocate_owner",
    "allocate_unallocated",
    "allocate_usage",
]
