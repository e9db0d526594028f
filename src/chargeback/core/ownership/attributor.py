"""One tenant's attribution step: after each commit, and catching up after a rule change.

The engine calls :meth:`Attributor.after_commit` once a date is committed (before it
is emitted, so the emitters see its teams) and :meth:`Attributor.catch_up` once per
run before the pending emissions. ``catch_up`` attributes every calculated date whose
stored attribution is missing or belongs to an older calculation, and re-decides the
dates attributed under an older rule version from their stored keys (the chargeback
rows are not read and never written): a date whose decisions change is stored again
and marked for re-emission, a date whose decisions do not change only records the new
version. So a rule change re-emits exactly the dates it affects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import structlog

from chargeback.core.models import ChargebackRow, Identity, Resource
from chargeback.core.money import to_decimal
from chargeback.core.ownership.attribution import DateAttribution, attribute, key_amounts
from chargeback.core.ownership.matcher import Directory, Matcher
from chargeback.core.ownership.rules import RuleSet
from chargeback.core.ownership.store import OwnershipStore
from chargeback.core.storage.backend import DateState, StorageBackend

__all__ = ["Attributor", "CatchUp"]

log = structlog.get_logger(__name__)

_FIRST, _LAST = dt.date(1, 1, 1), dt.date(9999, 12, 31)


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(slots=True)
class CatchUp:
    """What one catch-up pass did.

    Attributes:
        attributed: dates attributed that had no current attribution.
        changed: dates re-attributed because the rules changed their teams.
        unchanged: dates whose teams the new rules left as they were.
    """

    attributed: list[dt.date] = field(default_factory=list)
    changed: list[dt.date] = field(default_factory=list)
    unchanged: list[dt.date] = field(default_factory=list)

    @property
    def reemitted(self) -> list[dt.date]:
        """The dates marked for re-emission."""
        return sorted([*self.attributed, *self.changed])


class Attributor:
    """Attributes one tenant's dates under its current rules.

    Args:
        tenant_id: the tenant.
        rules: the tenant's compiled rules.
        store: where attributions live.
        storage: the core backend (date states, rows, inventory).
        clock: the current UTC time.
    """

    def __init__(
        self,
        tenant_id: str,
        rules: RuleSet,
        store: OwnershipStore,
        storage: StorageBackend,
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.tenant_id = tenant_id
        self._rules = rules
        self._store = store
        self._storage = storage
        self._clock = clock
        self._versions: dict[str, int] = {}
        self._matcher: tuple[str, Matcher] | None = None

    @property
    def rules(self) -> RuleSet:
        """The rules in force."""
        return self._rules

    def replace_rules(self, rules: RuleSet) -> bool:
        """Use ``rules`` from now on; return whether they differ from the current ones."""
        if rules.fingerprint == self._rules.fingerprint:
            return False
        self._rules = rules
        self._matcher = None
        return True

    async def version(self) -> int:
        """The stored version number of the current rules (recorded on first use)."""
        fp = self._rules.fingerprint
        version = self._versions.get(fp)
        if version is None:
            version = await self._store.rule_version(self.tenant_id, self._rules, self._clock())
            self._versions[fp] = version
        return version

    def _matcher_for(
        self, inventory_key: str, resources: Iterable[Resource], identities: Iterable[Identity]
    ) -> Matcher:
        cached = self._matcher
        if cached is not None and cached[0] == inventory_key:
            return cached[1]
        matcher = Matcher(self._rules, Directory.of(resources, identities))
        self._matcher = (inventory_key, matcher)
        return matcher

    async def after_commit(
        self,
        state: DateState,
        rows: Sequence[ChargebackRow],
        *,
        inventory_key: str,
        resources: Iterable[Resource],
        identities: Iterable[Identity],
    ) -> DateAttribution:
        """Attribute a just-committed date from its rows in hand and store it.

        Args:
            state: the committed date's state (its ``calc_seq`` and allocated total).
            rows: the date's rows, as committed.
            inventory_key: identifies the inventory (its fingerprint): the matcher
                is kept while it stays the same.
            resources: the run's resources.
            identities: the run's identities.
        """
        matcher = self._matcher_for(inventory_key, resources, identities)
        att = attribute(
            self.tenant_id,
            state.day,
            key_amounts(rows),
            matcher,
            calc_seq=state.calc_seq,
            expected_total=state.allocated_total,
        )
        await self._store_it(att, reemit=False)
        return att

    async def _store_it(self, att: DateAttribution, *, reemit: bool) -> None:
        version = await self.version()
        await self._store.write_attribution(
            att, rule_version=version, attributed_at=self._clock(), reemit=reemit
        )
        conflicts = att.conflicts()
        log.info(
            "date attributed",
            date=att.day.isoformat(),
            rule_version=version,
            teams=len({t.team for t in att.team_totals()}),
            unassigned=str(to_decimal(att.unassigned)),
            unmapped_identities=len(att.unmapped_identities()),
            conflicts=len(conflicts),
        )
        if conflicts:
            log.warning(
                "ownership rules conflict",
                date=att.day.isoformat(),
                conflicts={k: list(v) for k, v in conflicts.items()},
            )

    async def catch_up(self) -> CatchUp:
        """Attribute what is missing or stale, re-decide what an old rule version decided."""
        tenant, storage = self.tenant_id, self._storage
        states = await storage.get_date_states(tenant, _FIRST, _LAST)
        stored = await self._store.attribution_states(tenant)
        version = await self.version()
        done = CatchUp()
        missing = sorted(
            d for d, s in states.items() if d not in stored or stored[d].calc_seq != s.calc_seq
        )
        outdated = sorted(
            d
            for d, a in stored.items()
            if d in states and a.calc_seq == states[d].calc_seq and a.rule_version != version
        )
        if not missing and not outdated:
            return done
        resources, identities = await storage.load_inventory(tenant)
        matcher = Matcher(self._rules, Directory.of(resources, identities))
        for day in missing:
            state = states[day]
            rows = await storage.read_rows(tenant, day)
            att = attribute(
                tenant, day, key_amounts(rows), matcher,
                calc_seq=state.calc_seq, expected_total=state.allocated_total,
            )  # fmt: skip
            await self._store_it(att, reemit=True)
            done.attributed.append(day)
        for day in outdated:
            old = await self._store.read_attribution(tenant, day)
            if old is None:  # removed meanwhile: the next pass attributes it
                continue
            amounts = {s.key: (s.amount, s.rows) for s in old.shares}
            att = attribute(
                tenant, day, amounts, matcher,
                calc_seq=old.calc_seq, expected_total=states[day].allocated_total,
            )  # fmt: skip
            if [s.decision for s in att.shares] == [s.decision for s in old.shares]:
                done.unchanged.append(day)
                continue
            att = DateAttribution(
                tenant, day, None, old.calc_seq, att.shares, old.names, att.dimension_keys
            )
            await self._store_it(att, reemit=True)
            done.changed.append(day)
        await self._store.set_rule_version(tenant, done.unchanged, version)
        log.info(
            "ownership caught up",
            rule_version=version,
            attributed=len(done.attributed),
            changed=len(done.changed),
            unchanged=len(done.unchanged),
        )
        return done
