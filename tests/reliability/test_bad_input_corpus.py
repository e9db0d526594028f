"""Malformed billing, inventory and metrics answers: clear logs, UNALLOCATED, nothing lost."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs
from tests.reliability.conftest import (
    TENANT,
    HarnessFactory,
    SimHarness,
    check_db,
    dump_db,
    rewriting_transport,
)

from chargeback.core.engine.types import RunStatus
from chargeback.core.models import UNALLOCATED

Rows = dict[str, list[tuple[Any, ...]]]
NAN, INF = float("nan"), float("inf")


def without(rows: Rows, day: dt.date) -> Rows:
    """Every table's rows except those of ``day`` (column 1 is the date)."""
    out = {}
    for table, values in rows.items():
        col = 2 if table == "emitted" else 1
        if table in ("resources", "identities"):
            out[table] = values
        else:
            out[table] = [r for r in values if r[col] != day.isoformat()]
    return out


async def committed_then_rerun(h: SimHarness, day: dt.date) -> Rows:
    """A clean run of the window, then a rerun request for ``day``; the clean dump."""
    summary = await (await h.runtime()).run()
    assert summary.status is RunStatus.SUCCESS, summary.error
    before = dump_db(h.db_path)
    storage = await h.open_storage()
    await storage.request_rerun(TENANT, day, day, h.now())
    return before


def billing_corpus(template: dict[str, Any], day: dt.date) -> list[Any]:
    """The malformed rows, each built from one real row of ``day``."""

    def variant(suffix: str, **changes: Any) -> dict[str, Any]:
        row = copy.deepcopy(template)
        row["id"] = f"bad-{suffix}"
        for key, value in changes.items():
            if value is ...:
                row.pop(key, None)
            else:
                row[key] = value
        return row

    changed_dup = copy.deepcopy(template)
    changed_dup["amount"] = 1.5
    return [
        variant("missing-amounts", amount=..., original_amount=..., discount_amount=...),
        variant("string-number", amount="12.5", original_amount="12.5", discount_amount="0"),
        variant("text-amount", amount="twelve", original_amount=108.0, discount_amount=16.2),
        variant("nan", amount=NAN, original_amount=NAN),
        variant("infinity", amount=INF, original_amount=5.0, discount_amount=0),
        variant("huge", amount=1e15, original_amount=1e15, discount_amount=0),
        variant("negative-zero", amount=-0.0, original_amount=-0.0, discount_amount=-0.0),
        variant("unknown-type", line_type="QUANTUM_WIDGETS", amount=3.25),
        variant("missing-line-type", line_type=..., amount=2.0),
        variant("null-resource", resource=None, amount=4.0),
        variant("outside-window", start_date="2025-01-01", end_date="2025-01-02"),
        variant("wrong-end-date", end_date="2026-01-01", amount=1.0),
        variant("no-dates", start_date=..., end_date=...),
        variant("bool-amount", amount=True, original_amount=None),
        copy.deepcopy(template),  # the same row twice: dropped
        changed_dup,  # the same id, another row: kept under a derived id
        "not an object",
        42,
        None,
        [1, 2],
    ]


class TestBillingCorpus:
    async def test_malformed_billing_rows(self, make_harness: HarnessFactory) -> None:
        """Every malformed row is logged and stored visibly; no crash; other dates unchanged."""
        h = make_harness()
        day = h.days()[2]
        before = await committed_then_rerun(h, day)
        template: dict[str, Any] = {}

        def rewrite(request: httpx.Request, status: int, body: bytes) -> tuple[int, bytes] | None:
            if request.url.path != "/billing/v1/costs" or status != 200:
                return None
            page = json.loads(body)
            rows = [r for r in page["data"] if r["line_type"] == "KAFKA_NUM_CKUS"]
            template.update(rows[0])
            page["data"] = page["data"] + billing_corpus(rows[0], day)
            return 200, json.dumps(page).encode()  # NaN and Infinity as JS literals

        transport = rewriting_transport(h.app, rewrite)
        with capture_logs() as logs:
            summary = await (await h.runtime(transport=transport)).run()
        assert summary.status is RunStatus.SUCCESS, summary.error
        check_db(h.db_path)
        after = dump_db(h.db_path)
        assert without(after, day) == without(before, day)  # nothing else touched

        lines = {r[2]: r for r in after["billing_lines"] if r[1] == day.isoformat()}
        errors = {lid: row[-1] for lid, row in lines.items()}
        rows: dict[str, list[tuple[Any, ...]]] = {}
        for r in after["chargeback_rows"]:
            if r[1] == day.isoformat():
                rows.setdefault(r[2], []).append(r)

        def unallocated(line_id: str) -> list[tuple[Any, ...]]:
            return [r for r in rows.get(line_id, []) if r[3] == UNALLOCATED]

        # Nothing to derive the amount from: refused, kept with amount 0 and visible.
        assert errors["bad-missing-amounts"].startswith("refused: amount is null")
        assert lines["bad-missing-amounts"][7] == 0
        [missing_row] = unallocated("bad-missing-amounts")
        assert (missing_row[10], missing_row[11][:23]) == (0, "source_error: refused: ")
        assert errors["bad-string-number"] is None
        assert lines["bad-string-number"][7] == 12_500_000_000
        assert "'twelve' is not a number" in errors["bad-text-amount"]
        [text_row] = unallocated("bad-text-amount")
        assert text_row[10] == 91_800_000_000
        assert text_row[11].startswith("source_error: amount 'twelve' is not a number")
        assert "not a number" in errors["bad-nan"]
        assert unallocated("bad-infinity")[0][10] == 5_000_000_000
        assert errors["bad-huge"].startswith("refused: amount 1000000000000000.0 is out of range")
        assert lines["bad-huge"][7] == 0
        assert json.loads(lines["bad-huge"][-2])["reported_amount"] == "1000000000000000.0"
        [huge_row] = unallocated("bad-huge")
        assert huge_row[10] == 0
        assert errors["bad-negative-zero"] is None
        assert lines["bad-negative-zero"][7] == 0
        assert "bad-negative-zero" not in rows
        [unknown] = unallocated("bad-unknown-type")
        assert unknown[10] == 3_250_000_000
        assert "QUANTUM_WIDGETS" in unknown[11]
        assert errors["bad-missing-line-type"] == "line_type is missing"
        assert lines["bad-missing-line-type"][3] == "UNKNOWN"
        assert unallocated("bad-missing-line-type")[0][11].startswith("source_error:")
        assert sum(r[10] for r in rows["bad-null-resource"]) == 4_000_000_000
        assert all(r[11] for r in unallocated("bad-null-resource"))
        assert "bad-outside-window" not in lines
        assert "bad-no-dates" not in lines
        assert sum(r[10] for r in rows["bad-wrong-end-date"]) == 1_000_000_000
        assert "not a number" in errors["bad-bool-amount"]
        same_id = [lid for lid in lines if lid.split("#")[0] == template["id"]]
        assert len(same_id) == 2, same_id  # the original and the changed duplicate
        for line_id in lines:
            for r in unallocated(line_id):
                assert r[11], f"UNALLOCATED without a reason on {line_id}"

        events = {e["event"] for e in logs}
        malformed = {e["line_id"] for e in logs if e["event"] == "billing row malformed"}
        assert {lid for lid, err in errors.items() if err} <= malformed
        assert {
            "billing duplicate row dropped",
            "billing id reused by a different row",
            "billing row without a date skipped",
            "billing rows outside window dropped",
            "product type has no handler",
            "listing items that are not objects skipped",
        } <= events
        skipped = next(
            e for e in logs if e["event"] == "listing items that are not objects skipped"
        )
        assert skipped["skipped"] == 4


def inventory_items(path: str) -> list[Any]:
    """Malformed items added to a listing (missing ids, wrong types, junk)."""
    junk: list[Any] = [
        {"display_name": "no id at all"},
        {"id": 12345, "display_name": "numeric id"},
        {"id": None},
        {"id": ""},
        "a string item",
        None,
    ]
    if path == "/iam/v2/service-accounts":
        junk.append({"id": "sa-weird1", "metadata": "not-an-object", "display_name": ["x"]})
    if path == "/iam/v2/api-keys":
        junk.append({"id": "WEIRDKEY1", "spec": {"owner": "not-an-object", "resource": 7}})
    if path == "/cmk/v2/clusters":
        junk.append({"id": "lkc-weird1", "spec": "not-an-object", "metadata": {"created_at": 5}})
    return junk


LISTINGS = ("/iam/v2/service-accounts", "/iam/v2/users", "/iam/v2/api-keys", "/cmk/v2/clusters")
HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"

Failure = Callable[[int], tuple[int, bytes]]
FAILURES: dict[str, tuple[Failure, str]] = {
    "html_502": (lambda _: (502, HTML_502), "last: 502"),
    "non_json_200": (lambda _: (200, b"<html>maintenance</html>"), "last: invalid_json"),
    "json_array_body": (lambda _: (200, b"[1, 2, 3]"), "non-object body"),
    "data_not_a_list": (lambda _: (200, b'{"data": {"id": "x"}}'), "non-list 'data'"),
}


class TestInventoryCorpus:
    async def test_malformed_items_are_skipped(self, make_harness: HarnessFactory) -> None:
        """Items without ids or with wrong types are skipped; the run completes and conserves."""
        h = make_harness()
        day = h.days()[2]
        before = await committed_then_rerun(h, day)

        def rewrite(request: httpx.Request, status: int, body: bytes) -> tuple[int, bytes] | None:
            if request.url.path not in LISTINGS or status != 200:
                return None
            page = json.loads(body)
            page["data"] = page["data"] + inventory_items(request.url.path)
            return 200, json.dumps(page).encode()

        with capture_logs() as logs:
            summary = await (await h.runtime(transport=rewriting_transport(h.app, rewrite))).run()
        assert summary.status is RunStatus.SUCCESS, summary.error
        check_db(h.db_path)
        after = dump_db(h.db_path)
        settled = set(h.days()[: -h.cutoff_days - 3]) - {day}  # outside the recalculation window
        for table in ("billing_lines", "chargeback_rows", "ccloud_billing"):
            keep = [r for r in before[table] if dt.date.fromisoformat(r[1]) in settled]
            assert [r for r in after[table] if dt.date.fromisoformat(r[1]) in settled] == keep
        ids = {r[1] for r in after["identities"]} | {r[1] for r in after["resources"]}
        assert {"", "12345", "None"}.isdisjoint(ids)
        assert any(e["event"] == "listing items that are not objects skipped" for e in logs)

    @pytest.mark.parametrize("failure", sorted(FAILURES))
    async def test_broken_listing_fails_cleanly(
        self, failure: str, make_harness: HarnessFactory
    ) -> None:
        """A listing that keeps answering garbage fails the run clearly; nothing stored changes."""
        h = make_harness()
        day = h.days()[2]
        before = await committed_then_rerun(h, day)
        make_body, expected = FAILURES[failure]

        def rewrite(request: httpx.Request, status: int, body: bytes) -> tuple[int, bytes] | None:
            return make_body(status) if request.url.path == "/iam/v2/users" else None

        with capture_logs() as logs:
            summary = await (await h.runtime(transport=rewriting_transport(h.app, rewrite))).run()
        assert summary.status is RunStatus.FAILED
        assert summary.error is not None
        assert summary.error.startswith("SourceError: GET http://sim/iam/v2/users"), summary.error
        assert expected in summary.error
        assert any(e["event"] == "run failed" for e in logs)
        check_db(h.db_path)
        assert dump_db(h.db_path) == before
        later = await (await h.runtime()).run()  # the API is fixed: the rerun is done
        assert later.status is RunStatus.SUCCESS, later.error
        assert later.dates_calculated == 1
        assert dump_db(h.db_path)["chargeback_rows"] == before["chargeback_rows"]

    async def test_one_html_502_is_retried(self, make_harness: HarnessFactory) -> None:
        """A single HTML 502 page from a proxy is retried and changes nothing."""
        clean = make_harness(name="clean")
        assert (await (await clean.runtime()).run()).status is RunStatus.SUCCESS
        h = make_harness(name="proxy")
        served: list[str] = []

        def rewrite(request: httpx.Request, status: int, body: bytes) -> tuple[int, bytes] | None:
            if request.url.path in LISTINGS and request.url.path not in served:
                served.append(request.url.path)
                return 502, HTML_502
            return None

        summary = await (await h.runtime(transport=rewriting_transport(h.app, rewrite))).run()
        assert summary.status is RunStatus.SUCCESS, summary.error
        assert sorted(served) == sorted(LISTINGS)
        assert dump_db(h.db_path) == dump_db(clean.db_path)


def corrupt_metrics(page: dict[str, Any], label: str, wipe: str) -> dict[str, Any]:
    """Break a Metrics API page: no data for one resource, junk values elsewhere."""
    data: list[Any] = page.get("data", [])
    broken = [dict(r) for r in data if r.get(label) != wipe]
    junk_values: list[Any] = ["lots", None, NAN, "1e999", -5e9, True]
    for i, row in enumerate(broken[: len(junk_values)]):
        row["value"] = junk_values[i]
    if len(broken) > 8:
        broken[6]["timestamp"] = "yesterday"
        broken[7]["metric.principal_id"] = 42
        broken[8].pop(label)
    page["data"] = [*broken, 42, "junk", {"value": 1.0}]
    return page


def filtered_ids(flt: dict[str, Any]) -> list[str]:
    """The resource ids of a Metrics API filter (EQ, or an OR of EQs)."""
    return [f["value"] for f in flt["filters"]] if flt["op"] == "OR" else [flt["value"]]


class TestMetricsCorpus:
    async def test_malformed_metrics_rows_are_skipped(self, make_harness: HarnessFactory) -> None:
        """Missing data, non-numeric and negative values, rows without their resource:
        skipped or ignored, lines conserve."""
        h = make_harness()
        bodies: list[str] = []

        def rewrite(request: httpx.Request, status: int, body: bytes) -> tuple[int, bytes] | None:
            if request.url.path != "/v2/metrics/cloud/query" or status != 200:
                return None
            query = json.loads(request.content)
            ids = filtered_ids(query["filter"])
            bodies.append(ids[0])
            page = corrupt_metrics(json.loads(body), query["group_by"][0], wipe=min(ids))
            return 200, json.dumps(page).encode()

        with capture_logs() as logs:
            summary = await (await h.runtime(transport=rewriting_transport(h.app, rewrite))).run()
        assert summary.status is RunStatus.SUCCESS, summary.error
        assert bodies, "the run asked the Metrics API"
        check_db(h.db_path)
        rows = dump_db(h.db_path)["chargeback_rows"]
        assert all(r[11] for r in rows if r[3] == UNALLOCATED)
        network = [r for r in rows if r[4].startswith("KAFKA_NETWORK")]
        assert network
        assert all(r[10] >= 0 for r in network)  # a negative value never made a negative share
        skipped = [e for e in logs if e["event"] == "metrics row skipped"]
        assert len(skipped) >= 5
