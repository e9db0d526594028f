"""Every request honoured, every failure in the exit status (issue 16, first part).

The daemon and ``chargeback once`` run as real processes against ccloud_sim over HTTP;
the database is read with the sqlite3 module, as an operator would.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
import signal
import sqlite3
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from tests.e2e.test_daemon_e2e import (
    CLI,
    Proc,
    cli,
    daemon_env,
    free_port,
    http_ok,
    metric_value,
    procs,
    settings,
    sim,
    tenant,
    wait_until,
)

from chargeback.core.money import to_decimal
from chargeback.service.progress import PROGRESS_INTERVAL_S

pytestmark = pytest.mark.e2e

__all__ = ["procs", "sim"]  # fixtures, imported to be used here

SLOW_USAGE = {"rate_slow": 1.0, "slow_seconds": 3, "paths": ["/v2/metrics"]}
STALLED_USAGE = {**SLOW_USAGE, "slow_seconds": 60}
"""Slow enough that a run is still going while a second command starts on a loaded machine
(the run makes only a few Metrics API calls since they cover many clusters each)."""


def runs(config_dir: Path) -> list[dict[str, str | None]]:
    """The ``runs`` rows of the test's database, oldest first (none before it exists)."""
    path = config_dir / "var" / "cb.db"
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM runs ORDER BY started_at, rowid").fetchall()
    except sqlite3.OperationalError:  # not created yet, or its tables not yet
        return []
    return [dict(r) for r in rows]


def pending_reruns(config_dir: Path) -> int:
    """How many rerun requests are not completed yet."""
    with sqlite3.connect(config_dir / "var" / "cb.db") as conn:
        (n,) = conn.execute(
            "SELECT COUNT(*) FROM rerun_requests WHERE completed_at IS NULL"
        ).fetchone()
    return int(n)


def write_config(tmp_path: Path, sim: str, *, grace_s: float = 20) -> Path:
    config = tmp_path / "settings.yaml"
    text = settings(tmp_path, free_port(), tenant("demo", sim), grace_s=grace_s)
    # No scheduled run during a test: only the runs the test asks for.
    text = text.replace("scheduling: {", "scheduling: {schedule: '0 0 1 1 *', ")
    config.write_text(text, encoding="utf-8")
    return config


class TestRerunDuringARun:
    def test_rerun_sent_during_a_run_runs_right_after_it(
        self, tmp_path: Path, sim: str, procs: Callable[..., Proc]
    ) -> None:
        """A rerun asked for while the tenant runs is queued, says so, and runs right after."""
        config = write_config(tmp_path, sim)
        port = int(config.read_text("utf-8").split("port: ")[1].split("}")[0])
        base = f"http://127.0.0.1:{port}"
        assert httpx.post(f"{sim}/_sim/faults", json=SLOW_USAGE).status_code == 200
        daemon = procs([*CLI, "run", "--config", str(config)], tmp_path / "d.log", daemon_env())
        wait_until(lambda: http_ok(f"{base}/readyz"), 30, "/readyz")
        daemon.signal(signal.SIGUSR1)
        wait_until(
            lambda: (
                metric_value(httpx.get(f"{base}/metrics").text, "chargeback_tenants_running") == 1
            ),
            30,
            "the first run to be in progress",
        )
        day = (dt.datetime.now(dt.UTC).date() - dt.timedelta(days=8)).isoformat()
        rerun = cli("rerun", "--tenant", "demo", "--from", day, "--to", day, config=config)
        assert rerun.returncode == 0, rerun.stderr
        assert "demo is running now" in rerun.stdout
        assert "the request runs right after that run ends" in rerun.stdout
        # The schedule never fires in the test: only the queued run can take the request.
        wait_until(lambda: pending_reruns(tmp_path) == 0, 90, "the rerun request to be done")
        finished = [r for r in runs(tmp_path) if r["status"] == "success"]
        assert [r["trigger"] for r in finished] == ["signal", "signal"]
        counts = json.loads(str(finished[1]["counts"]))
        assert counts["dates_calculated"] >= 1  # the rerun date really was recalculated
        assert "run queued: it starts when the current run ends" in daemon.text()


def _labelled(text: str, name: str, tenant: str) -> float | None:
    """The value of ``name{tenant="..."}`` in an exposition."""
    prefix = f'{name}{{tenant="{tenant}"}} '
    return next((float(x.split()[1]) for x in text.splitlines() if x.startswith(prefix)), None)


def _window_truth(config_dir: Path) -> tuple[int, int]:
    """The test's own SQL: refused lines, and nanos on no known real identity
    (UNALLOCATED, sentinels, principals not in the stored inventory)."""
    with sqlite3.connect(f"file:{config_dir / 'var' / 'cb.db'}?mode=ro", uri=True) as conn:
        (refused,) = conn.execute(
            "SELECT COUNT(*) FROM billing_lines WHERE error LIKE 'refused: %'"
        ).fetchone()
        (unattributed,) = conn.execute(
            "SELECT COALESCE(SUM(amount), 0) FROM chargeback_rows WHERE identity_id NOT IN "
            "(SELECT identity_id FROM identities WHERE identity_type != 'sentinel')"
        ).fetchone()
        (unknown,) = conn.execute(
            "SELECT COUNT(*) FROM chargeback_rows WHERE identity_id LIKE 'sa-zz%' "
            "AND identity_id NOT IN (SELECT identity_id FROM identities)"
        ).fetchone()
    assert unknown > 0  # the sim's principal IAM does not know was charged
    return int(refused), int(unattributed)


class TestRunSummaryCounts:
    def test_run_finished_names_refused_lines_and_unattributed_cost(
        self, tmp_path: Path, sim: str, procs: Callable[..., Proc]
    ) -> None:
        """A bill with out-of-range amounts and a principal IAM does not know: the daemon's
        ``run finished`` line, the run's stored counts, /api/v1/runs and /metrics carry the
        refused lines and the unattributed cost, equal to the test's own SQL."""
        config = write_config(tmp_path, sim)
        port = int(config.read_text("utf-8").split("port: ")[1].split("}")[0])
        base = f"http://127.0.0.1:{port}"
        huge = {"billing_amounts": {"KAFKA_PARTITION": 1e15}}
        assert httpx.post(f"{sim}/_sim/faults", json=huge).status_code == 200
        daemon = procs([*CLI, "run", "--config", str(config)], tmp_path / "d.log", daemon_env())
        wait_until(lambda: http_ok(f"{base}/readyz"), 30, "/readyz")
        daemon.signal(signal.SIGUSR1)
        wait_until(lambda: '"run finished"' in daemon.text(), 90, "the run to finish")
        events = [json.loads(x) for x in daemon.text().splitlines() if x.startswith("{")]
        [finished] = [e for e in events if e["event"] == "run finished"]
        refused, unattributed = _window_truth(tmp_path)
        assert refused >= finished["dates_calculated"] >= 3  # one KAFKA_PARTITION line a day
        assert finished["refused_lines"] == refused
        assert finished["level"] == "warning"
        assert finished["unattributed"] == str(to_decimal(unattributed))
        assert unattributed > 0
        counts = json.loads(str(runs(tmp_path)[0]["counts"]))
        assert (counts["refused_lines"], counts["unattributed"]) == (refused, unattributed)
        api = httpx.get(f"{base}/api/v1/runs", params={"tenant": "demo"}).json()
        listed = api["runs"][0]["counts"]
        assert (listed["refused_lines"], listed["unattributed"]) == (refused, unattributed)
        exposition = httpx.get(f"{base}/metrics").text
        assert _labelled(exposition, "chargeback_refused_lines_total", "demo") == refused


class TestOnceExitStatus:
    def test_once_exits_1_when_an_emit_failed_and_the_next_run_retries_it(
        self, tmp_path: Path, sim: str
    ) -> None:
        """A failed CSV write makes ``once`` exit 1 saying what to do; the next once emits it."""
        config = write_config(tmp_path, sim)
        blocker = tmp_path / "var" / "csv" / "demo"
        blocker.parent.mkdir(parents=True)
        blocker.write_text("a file where the tenant's CSV directory should be", "utf-8")
        first = cli("once", config=config)
        assert first.returncode == 1, first.stderr
        assert "emits failed" in first.stderr
        assert "the failed emits are retried by the next run" in first.stderr
        assert not any(r["status"] == "running" for r in runs(tmp_path))
        blocker.unlink()
        second = cli("once", config=config)
        assert second.returncode == 0, second.stderr
        calculated = int(first.stderr.split(" dates calculated")[0].rsplit(" ", 1)[1])
        assert calculated >= 3
        written = sorted(p.name for p in blocker.glob("*.csv"))
        assert len(written) == calculated  # every date of the first run, emitted now
        assert "0 emits failed" in second.stderr
        # The run's summary names the window's unattributed cost and refused lines.
        window = (
            r"tenant demo \S+: unattributed [\d.]+ of [\d.]+ \(\d+\.\d%: UNALLOCATED [\d.]+, "
            r"sentinels [\d.]+, \d+ principals not in the inventory [\d.]+\); refused lines 0"
        )
        assert re.search(window, second.stderr), second.stderr

    def test_once_with_a_failing_api_says_what_the_operator_should_do(
        self, tmp_path: Path, sim: str
    ) -> None:
        """A failed run exits 1 and tells the operator to fix the cause and run once again."""
        config = write_config(tmp_path, sim)
        down = {"rate_503": 1.0, "paths": ["/billing"]}
        assert httpx.post(f"{sim}/_sim/faults", json=down).status_code == 200
        done = cli("once", config=config)
        assert done.returncode == 1
        assert "nothing retries this run on its own" in done.stderr
        assert f"chargeback once --config {config} --tenant demo" in done.stderr


class TestProgress:
    def test_once_logs_progress_every_few_seconds_before_the_first_date(
        self, tmp_path: Path, sim: str
    ) -> None:
        """With usage queries slowed, once logs 'run progress' naming the API work done
        before any date is committed, and no gap between log lines reaches the interval
        plus 2 s (so the slow usage phase is covered too)."""
        config = write_config(tmp_path, sim)
        slower = {**SLOW_USAGE, "slow_seconds": 2 * PROGRESS_INTERVAL_S}
        assert httpx.post(f"{sim}/_sim/faults", json=slower).status_code == 200
        done = cli("once", config=config)
        assert done.returncode == 0, done.stderr
        events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        names = [e["event"] for e in events]
        first_date = names.index("date committed")
        progress = [e for e in events[:first_date] if e["event"] == "run progress"]
        assert progress, names[:first_date]
        assert progress[0]["running"] == ["demo"]
        assert progress[0]["api_requests"] > 0
        asked = {
            k for e in progress if isinstance(e["by_endpoint"], dict) for k in e["by_endpoint"]
        }
        assert "/cmk/v2/clusters" in asked, asked  # the inventory phase, by endpoint
        stamps = [dt.datetime.fromisoformat(e["timestamp"]) for e in events]
        gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(stamps)]
        assert max(gaps) < PROGRESS_INTERVAL_S + 2, max(gaps)


class TestOnceStops:
    def test_sigterm_stops_once_like_the_daemon(
        self, tmp_path: Path, sim: str, procs: Callable[..., Proc]
    ) -> None:
        """SIGTERM during ``once``: a log line, the run recorded cancelled, exit 143."""
        config = write_config(tmp_path, sim, grace_s=0.5)
        assert httpx.post(f"{sim}/_sim/faults", json=SLOW_USAGE).status_code == 200
        once = procs([*CLI, "once", "--config", str(config)], tmp_path / "o.log", daemon_env())
        wait_until(lambda: '"dates selected"' in once.text(), 60, "the run to reach usage")
        once.signal(signal.SIGTERM)
        assert once.wait(30) == 128 + signal.SIGTERM
        log = once.text()
        assert '"shutdown requested"' in log
        assert "stopped by SIGTERM" in log
        assert [r["status"] for r in runs(tmp_path)] == ["cancelled"]

    def test_a_killed_once_leaves_a_run_the_next_start_marks_interrupted(
        self, tmp_path: Path, sim: str, procs: Callable[..., Proc]
    ) -> None:
        """``kill -9`` of ``once`` leaves 'running'; the next ``once`` marks it 'interrupted'."""
        config = write_config(tmp_path, sim)
        assert httpx.post(f"{sim}/_sim/faults", json=SLOW_USAGE).status_code == 200
        once = procs([*CLI, "once", "--config", str(config)], tmp_path / "o.log", daemon_env())
        wait_until(lambda: '"dates selected"' in once.text(), 60, "the run to reach usage")
        once.signal(signal.SIGKILL)
        once.wait(10)
        assert [r["status"] for r in runs(tmp_path)] == ["running"]
        assert httpx.post(f"{sim}/_sim/faults", json={"rate_slow": 0}).status_code == 200
        again = cli("once", config=config)
        assert again.returncode == 0, again.stderr
        statuses = [(r["status"], r["error"]) for r in runs(tmp_path)]
        assert statuses[0] == ("interrupted", "the process stopped before the run finished")
        assert statuses[1][0] == "success"
        assert "runs of a stopped process marked interrupted" in again.stdout


def test_a_live_process_run_is_not_interrupted(tmp_path: Path, sim: str) -> None:
    """A run of a process still alive (a slow ``once``) stays 'running' when another starts."""
    config = write_config(tmp_path, sim)
    assert httpx.post(f"{sim}/_sim/faults", json=STALLED_USAGE).status_code == 200
    slow = subprocess.Popen(
        [*CLI, "once", "--config", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=daemon_env(),
    )
    try:
        wait_until(lambda: bool(runs(tmp_path)), 60, "the slow run to start")
        check = cli("rerun", "--tenant", "demo", "--from", "2020-01-01", "--to", "2020-01-01",
                    config=config)  # fmt: skip
        assert check.returncode == 0, check.stderr
        assert [r["status"] for r in runs(tmp_path)] == ["running"]
    finally:
        slow.terminate()
        slow.wait(30)
