"""The usage ledger (DESIGN §13) on every storage target: cells stored, replaced, read back."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chargeback.core.ledger import UsageCell, UsageEntry
from chargeback.core.storage.factory import open_backend
from chargeback.errors import StorageError
from chargeback.settings import StorageSettings

AT = dt.datetime(2024, 5, 9, 0, 15, 30, 123456, tzinfo=dt.UTC)
D1, D2, D3 = dt.date(2024, 5, 1), dt.date(2024, 5, 2), dt.date(2024, 5, 3)
REQ = "io.confluent.kafka.server/request_bytes|resource.kafka.id|metric.principal_id"
RESP = "io.confluent.kafka.server/response_bytes|resource.kafka.id|metric.principal_id"


def entry(day, query, resource, values, *, source="metrics_api", at=AT):
    return UsageEntry(day, query, resource, values, source, at)


class TestWriteAndRead:
    async def test_cells_read_back_as_written(self, backend):
        """Values, source and fetched_at come back, ordered by date, query and resource."""
        written = [
            entry(D2, REQ, "lkc-2", {"sa-1": 10, "u-2": 2**62}),
            entry(D1, RESP, "lkc-1", {"sa-1": 0}),
            entry(D1, REQ, "lkc-1", {"sa-1": 5, "sa-2": -3}, source="prometheus"),
        ]
        await backend.write_usage("t1", written)
        got = await backend.read_usage("t1", D1, D3)
        assert got == sorted(written, key=lambda e: (e.day, e.query, e.resource_id))
        assert got[0].fetched_at == AT

    async def test_an_empty_cell_is_stored_and_differs_from_a_missing_one(self, backend):
        """A cell fetched with no usage reads back empty; a cell never fetched is missing."""
        await backend.write_usage("t1", [entry(D1, REQ, "lkc-1", {})])
        [got] = await backend.read_usage("t1", D1, D2)
        assert (got.cell, dict(got.values)) == (UsageCell(D1, REQ, "lkc-1"), {})
        wanted = {
            UsageCell(D1, REQ, "lkc-1"),
            UsageCell(D1, RESP, "lkc-1"),
            UsageCell(D2, REQ, "lkc-1"),
        }
        assert await backend.missing_usage("t1", wanted) == wanted - {UsageCell(D1, REQ, "lkc-1")}

    async def test_a_principal_named_empty_with_a_value_is_usage(self, backend):
        """The empty-cell marker is the NULL value, not the empty principal name."""
        await backend.write_usage("t1", [entry(D1, REQ, "lkc-1", {"": 7})])
        [got] = await backend.read_usage("t1", D1, D2)
        assert dict(got.values) == {"": 7}

    async def test_writing_a_cell_again_replaces_it_whole(self, backend):
        """The second write of a cell leaves only its principals, not a merge."""
        await backend.write_usage("t1", [entry(D1, REQ, "lkc-1", {"sa-1": 1, "sa-2": 2})])
        later = AT + dt.timedelta(days=1)
        await backend.write_usage("t1", [entry(D1, REQ, "lkc-1", {"sa-3": 3}, at=later)])
        [got] = await backend.read_usage("t1", D1, D2)
        assert (dict(got.values), got.fetched_at) == ({"sa-3": 3}, later)
        await backend.write_usage("t1", [entry(D1, REQ, "lkc-1", {})])
        [empty] = await backend.read_usage("t1", D1, D2)
        assert dict(empty.values) == {}

    async def test_reads_filter_by_date_query_resource_and_tenant(self, backend):
        """Dates are [start, end); queries and resources narrow; tenants never mix."""
        await backend.write_usage(
            "t1",
            [
                entry(d, q, r, {"sa": 1})
                for d in (D1, D2, D3)
                for q in (REQ, RESP)
                for r in ("a", "b")
            ],
        )
        await backend.write_usage("t2", [entry(D1, REQ, "a", {"other": 9})])
        assert {e.day for e in await backend.read_usage("t1", D2, D3)} == {D2}
        narrowed = await backend.read_usage("t1", D1, D3, queries=[RESP], resource_ids=["b"])
        assert [e.cell for e in narrowed] == [UsageCell(D1, RESP, "b"), UsageCell(D2, RESP, "b")]
        [theirs] = await backend.read_usage("t2", D1, D3)
        assert dict(theirs.values) == {"other": 9}
        assert await backend.missing_usage("t2", {UsageCell(D2, REQ, "a")}) == {
            UsageCell(D2, REQ, "a")
        }
        assert await backend.missing_usage("t1", set()) == set()

    async def test_the_ledger_survives_a_reopen(self, backend, reopen):
        """What was stored is read by another backend on the same database (a restart)."""
        await backend.write_usage("t1", [entry(D1, REQ, "lkc-1", {"sa-1": 4})])
        async with reopen(read_only=True) as other:
            [got] = await other.read_usage("t1", D1, D2)
        assert dict(got.values) == {"sa-1": 4}


class TestBadInput:
    async def test_a_value_that_is_not_an_int_stores_nothing(self, backend):
        """A float among the values is refused before anything is written."""
        good = entry(D1, REQ, "lkc-1", {"sa-1": 1})
        bad = entry(D1, REQ, "lkc-2", {"sa-1": 1.5})
        with pytest.raises(ValueError, match="not an int"):
            await backend.write_usage("t1", [good, bad])
        assert await backend.read_usage("t1", D1, D2) == []

    async def test_a_value_beyond_64_bits_is_a_storage_error_and_stores_nothing(self, backend):
        """An integer no 64-bit column holds fails the whole write, clearly."""
        good = entry(D1, REQ, "lkc-1", {"sa-1": 1})
        huge = entry(D1, REQ, "lkc-2", {"sa-1": 2**64})
        with pytest.raises(StorageError):
            await backend.write_usage("t1", [good, huge])
        assert await backend.read_usage("t1", D1, D2) == []

    async def test_a_read_only_backend_refuses_to_store_usage(self, backend, reopen):
        """Usage is written only by the writer; a read-only reader says so."""
        async with reopen(read_only=True) as other:
            with pytest.raises(StorageError, match="read-only"):
                await other.write_usage("t1", [entry(D1, REQ, "lkc-1", {})])


class TestBilledResources:
    async def test_distinct_product_types_and_resources_of_stored_lines(
        self, backend, line_factory, rows_factory, commit_date
    ):
        """What collection asks for: the (product type, resource) pairs billed in the range."""
        lines = [
            line_factory("a", 10, day=D1, resource_id="lkc-1"),
            line_factory("b", 10, day=D1, resource_id="lkc-1"),
            line_factory("c", 10, day=D1, product_type="KAFKA_NUM_CKUS", resource_id="lkc-2"),
            line_factory("d", 10, day=D1, product_type="SUPPORT", resource_id=None),
        ]
        rows = [r for line in lines for r in rows_factory("t1", line, ["sa-1"], [1])]
        await commit_date(backend, "t1", D1, lines, rows)
        assert await backend.billed_resources("t1", D1, D2) == {
            ("KAFKA_NETWORK_READ", "lkc-1"),
            ("KAFKA_NUM_CKUS", "lkc-2"),
        }
        assert await backend.billed_resources("t1", D2, D3) == set()


_principals = st.dictionaries(
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=8),
    st.integers(-(2**63), 2**63 - 1),
    max_size=5,
)
_cells = st.dictionaries(
    st.tuples(st.sampled_from([D1, D2]), st.sampled_from([REQ, RESP]), st.sampled_from("abc")),
    _principals,
    max_size=8,
)
_tenants = itertools.count()


async def _write_and_read(settings_: StorageSettings, tenant: str, entries: list[UsageEntry]):
    async with open_backend(settings_) as store:
        await store.write_usage(tenant, entries)
        return await store.read_usage(tenant, D1, D3)


class TestRoundTripProperty:
    @settings(max_examples=25, deadline=None)
    @given(cells=_cells)
    def test_whatever_is_written_reads_back_exactly(self, tmp_path_factory, storage_target, cells):
        """Any cells (empty ones, negative and 64-bit values, odd principal names) round-trip."""
        directory = tmp_path_factory.getbasetemp() / f"ledger_{storage_target.name}"
        directory.mkdir(exist_ok=True)
        entries = [entry(d, q, r, v) for (d, q, r), v in cells.items()]
        got = asyncio.run(
            _write_and_read(storage_target.make(directory), f"t{next(_tenants)}", entries)
        )
        assert {e.cell: dict(e.values) for e in got} == {e.cell: dict(e.values) for e in entries}
