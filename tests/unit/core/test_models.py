"""Model behaviour the engine and plugins rely on: IdentitySet's order and lookups."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from chargeback.core.models import Identity, IdentitySet

ids = st.lists(st.text(min_size=1, max_size=5), max_size=30)


class TestIdentitySet:
    @given(ids=ids, probe=st.text(max_size=5))
    def test_lookups_agree_with_the_mapping_protocol(self, ids: list[str], probe: str) -> None:
        """values, items and get (fast paths) say what iteration and [] say: id order,
        the last identity of a repeated id, the default for an unknown id."""
        idents = [Identity(i, "service_account", display_name=str(n)) for n, i in enumerate(ids)]
        members = IdentitySet(idents)
        assert list(members) == sorted(set(ids))
        assert list(members.values()) == [members[i] for i in members]
        assert list(members.items()) == [(i, members[i]) for i in members]
        try:
            expected: Identity | None = members[probe]
        except KeyError:
            expected = None
        assert members.get(probe) is expected
        assert members.get(probe, "absent") == (expected if probe in ids else "absent")
        last = {i.identity_id: i for i in idents}
        assert all(members[i] is last[i] for i in ids)

    def test_active_on_keeps_only_identities_that_existed(self) -> None:
        """A deleted identity drops out from the day after its deletion."""
        gone = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
        members = IdentitySet(
            [
                Identity("sa-1", "service_account"),
                Identity("sa-2", "service_account", deleted_at=gone),
            ]
        )
        assert list(members.active_on(dt.date(2026, 3, 2))) == ["sa-1", "sa-2"]
        assert list(members.active_on(dt.date(2026, 3, 3))) == ["sa-1"]
