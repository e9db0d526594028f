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

    @given(
        lives=st.lists(
            st.tuples(
                st.none() | st.datetimes(dt.datetime(2025, 12, 25), dt.datetime(2026, 1, 10)),
                st.none() | st.datetimes(dt.datetime(2025, 12, 25), dt.datetime(2026, 1, 10)),
            ),
            max_size=25,
        ),
        days=st.lists(st.dates(dt.date(2025, 12, 24), dt.date(2026, 1, 11)), max_size=6),
    )
    def test_active_on_is_each_identitys_own_rule(
        self, lives: list[tuple[dt.datetime | None, dt.datetime | None]], days: list[dt.date]
    ) -> None:
        """For any creation and deletion times and any days (asked in any order, the
        spans worked out once), the set holds exactly the identities whose own
        active_on says so, and behaves like a set built from them."""
        idents = [
            Identity(f"id-{n:02d}", "api_key", created_at=c and c.replace(tzinfo=dt.UTC),
                     deleted_at=d and d.replace(tzinfo=dt.UTC))
            for n, (c, d) in enumerate(lives)
        ]  # fmt: skip
        members = IdentitySet(idents)
        for day in days:
            active = members.active_on(day)
            expected = IdentitySet(i for i in idents if i.active_on(day))
            assert active.ids == expected.ids
            assert list(active.items()) == list(expected.items())
            assert all(active.get(i) is members[i] for i in active)
            assert list(active.active_on(day)) == list(active)

    def test_active_on_asks_identities_of_a_subclass(self) -> None:
        """An Identity subclass that redefines active_on is asked, not second-guessed."""

        class Always(Identity):
            def active_on(self, day: dt.date) -> bool:
                return True

        gone = dt.datetime(2026, 3, 2, 12, tzinfo=dt.UTC)
        members = IdentitySet(
            [
                Identity("sa-1", "service_account", deleted_at=gone),
                Always("sa-2", "x", deleted_at=gone),
            ]
        )
        assert list(members.active_on(dt.date(2026, 3, 9))) == ["sa-2"]
