"""A full backfill gives the same rows as the engine gave before it was reshaped.

The engine as it stood before the reshaping of issue 17 (commit :data:`BASELINE`) is
extracted from git into a temporary folder and run as a subprocess with that folder
first on ``PYTHONPATH``; the current engine runs in this process. Both backfill the
same organization from one out-of-process ccloud_sim, and every field of every
chargeback row (in stored order) and every date's billed and allocated sums must be
the same. A change meant to change results (a new rule, a new default) must keep this
comparison on settings where the results did not change, and say so here.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.sim import serve_sim

from chargeback.core.engine.orchestrator import TenantRuntime
from chargeback.core.engine.types import RunStatus, TenantConfig
from chargeback.core.storage.sqlite import SQLiteBackend
from chargeback.plugins.confluent_cloud import ConfluentCloudPlugin

BASELINE = "c2fad36"
"""The last commit before the engine was reshaped (issue 17)."""

NOW = dt.datetime(2026, 3, 20, 12, tzinfo=dt.UTC)
REPO = Path(__file__).resolve().parents[3]
DRIVER = Path(__file__).with_name("golden_driver.py")
_spec = importlib.util.spec_from_file_location("golden_driver", DRIVER)
assert _spec is not None
assert _spec.loader is not None
golden_driver = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden_driver)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def baseline_src(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``src`` tree of :data:`BASELINE`, extracted from the repository's history."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.fail("the golden comparison needs git and the repository's history")
    out = tmp_path_factory.mktemp("baseline")
    archive = out / "src.tar"
    subprocess.run(
        ["git", "-C", str(REPO), "archive", "--output", str(archive), BASELINE, "src"],
        check=True,
    )
    with tarfile.open(archive) as tar:
        tar.extractall(out, filter="data")
    return out / "src"


@pytest.fixture
def sim_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A ccloud_sim (the current one) on a free port, clock frozen at :data:`NOW`."""
    scale, seed = request.param
    with serve_sim(tmp_path / "sim.log", scale=scale, seed=seed, now=NOW.isoformat()) as url:
        yield url


def _baseline_run(src: Path, db: Path, url: str, lookback: int) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run(
        [sys.executable, str(DRIVER), str(db), url, str(lookback), NOW.isoformat()],
        capture_output=True, text=True, env=env, check=False, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


async def _current_run(db: Path, url: str, lookback: int) -> dict[str, Any]:
    async def no_sleep(_: float) -> None:
        return None

    storage = SQLiteBackend(db)
    await storage.open()
    config = TenantConfig(
        name=golden_driver.TENANT,
        ecosystem="confluent_cloud",
        # The sim keeps every day's usage; the baseline had no retention setting.
        plugin_settings={**golden_driver.plugin_settings(url), "metrics": {"retention_days": None}},
        lookback_days=lookback,
        cutoff_days=3,
    )
    runtime = TenantRuntime(
        config, ConfluentCloudPlugin(sleep=no_sleep), storage, clock=lambda: NOW
    )
    try:
        summary = await runtime.run()
        assert summary.status is RunStatus.SUCCESS, summary.error
        first = NOW.date() - dt.timedelta(days=lookback)
        got: dict[str, Any] = await golden_driver.digest(
            storage.read_rows, storage.reconcile, first, NOW.date()
        )
        return got
    finally:
        await runtime.aclose()
        await storage.close()


class TestBackfillGolden:
    @pytest.mark.parametrize(
        ("sim_url", "lookback"), [(("small", 7), 12), (("medium", 11), 8)], indirect=["sim_url"]
    )
    async def test_the_current_engine_gives_the_rows_the_baseline_engine_gave(
        self, baseline_src: Path, sim_url: str, lookback: int, tmp_path: Path
    ) -> None:
        """Against one sim, the current engine's backfill stores exactly the rows and sums the
        engine of BASELINE stores: same count, same fields, same order."""
        before = _baseline_run(baseline_src, tmp_path / "before.db", sim_url, lookback)
        after = await _current_run(tmp_path / "after.db", sim_url, lookback)
        assert before["rows"] > 1000
        assert after == before

    def test_the_baseline_really_is_the_old_engine(self, baseline_src: Path) -> None:
        """The extracted tree is the pre-reshape engine (its 116-line date loop is there), so
        the comparison above is against old code, not the current code twice."""
        orchestrator = baseline_src / "chargeback" / "core" / "engine" / "orchestrator.py"
        assert "async def _calculate(" in orchestrator.read_text(encoding="utf-8")
        assert not (baseline_src / "chargeback" / "core" / "engine" / "pipeline.py").exists()
