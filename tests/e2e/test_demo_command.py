"""``chargeback demo`` as a real subprocess: short mode, and serving until SIGINT."""

from __future__ import annotations

import csv
import os
import re
import signal
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
SETTINGS = REPO / "settings.yaml"

pytestmark = pytest.mark.e2e


def _chargeback(*args: str) -> list[str]:
    return [sys.executable, "-m", "chargeback.cli", *args]


def _money(text: str) -> Decimal:
    return Decimal(text.replace(",", ""))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Run the short demo once in a fresh directory; return (workdir, stdout)."""
    cwd = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        _chargeback(
            "demo",
            "--config",
            str(SETTINGS),
            "--days",
            "3",
            "--exit-after-run",
            "--port",
            "0",
            "--workdir",
            "work",
        ),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return cwd / "work", result.stdout


class TestShortMode:
    """``--days 3 --exit-after-run`` backfills, prints the summary and exits."""

    def test_progress_line_per_date(self, demo: tuple[Path, str]) -> None:
        """One progress line per backfilled date, numbered 1/3 to 3/3."""
        _, out = demo
        assert re.findall(r"\[(\d)/3\] \d{4}-\d\d-\d\d", out) == ["1", "2", "3"]
        assert "run success: 3 dates calculated" in out

    def test_summary_reports_a_clean_reconciliation(self, demo: tuple[Path, str]) -> None:
        """The summary has the top identities, the unallocated share and reconciliation OK."""
        _, out = demo
        assert "Top identities by cost" in out
        assert re.search(r"Unallocated: [\d,.]+ of [\d,.]+ \(\d+\.\d%\)", out)
        assert "Reconciliation: OK, allocated equals billed for 3 dates" in out
        assert "MISMATCH" not in out

    def test_csv_files_add_up_to_the_printed_total(self, demo: tuple[Path, str]) -> None:
        """The three CSV files exist and their amounts sum to the summary's grand total."""
        workdir, out = demo
        files = sorted((workdir / "csv" / "demo").glob("*.csv"))
        assert len(files) == 3
        total = Decimal(0)
        identities: set[str] = set()
        for path in files:
            with path.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    total += Decimal(row["amount"])
                    identities.add(row["identity_id"])
        printed = re.search(r"\((\d+) identities\)\s+([\d,.]+)", out)
        assert printed is not None
        assert int(printed.group(1)) == len(identities)
        assert _money(printed.group(2)) == total.quantize(Decimal("0.01"))

    def test_reconcile_command_agrees(self, demo: tuple[Path, str]) -> None:
        """`chargeback reconcile` on the demo's database, as the summary suggests, exits 0."""
        workdir, out = demo
        hint = re.search(r"reconcile\s+CHARGEBACK_STORAGE__PATH=(\S+) chargeback (.+)", out)
        assert hint is not None
        db = Path(hint.group(1))
        assert db == (workdir / "chargeback.db").resolve()
        assert db.is_file()
        env = {**os.environ, "CHARGEBACK_STORAGE__PATH": str(db)}
        result = subprocess.run(
            _chargeback(*hint.group(2).split()),
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "OK" in result.stdout


class TestTeams:
    """The demo's ownership rules map its organization to teams (DESIGN §14)."""

    def test_csv_teams_conserve_and_leave_under_a_tenth_unassigned(
        self, demo: tuple[Path, str]
    ) -> None:
        """Every CSV row has a team; team sums equal the summary's; UNASSIGNED is under 10 %."""
        workdir, out = demo
        by_team: dict[str, Decimal] = {}
        total = Decimal(0)
        for path in sorted((workdir / "csv" / "demo").glob("*.csv")):
            with path.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    assert row["team"], row
                    assert row["currency"] == "USD"
                    by_team[row["team"]] = by_team.get(row["team"], Decimal(0)) + Decimal(
                        row["amount"]
                    )
                    total += Decimal(row["amount"])
        assert sum(by_team.values()) == total
        assert abs(by_team.get("UNASSIGNED", Decimal(0))) < total / 10
        section = out.split("Cost by team", 1)[1].split("\n\n", 1)[0]
        printed = dict(re.findall(r"^  (\S+)\s+(-?[\d,.]+)\s", section, re.M))
        assert {t: _money(a) for t, a in printed.items()} == {
            t: a.quantize(Decimal("0.01")) for t, a in by_team.items()
        }
        assert len(by_team) >= 5  # the sim's organization has eight teams

    def test_rules_agree_with_the_sims_ground_truth(self, demo: tuple[Path, str]) -> None:
        """Every service account an identity rule maps gets the team ccloud-sim says it has."""
        import json  # noqa: PLC0415

        workdir, _ = demo
        truth = subprocess.run(
            [sys.executable, "-m", "ccloud_sim", "truth", "--seed", "0", "--scale", "small",
             "--teams"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        owners = json.loads(truth.stdout)["owners"]
        checked = 0
        for path in sorted((workdir / "csv" / "demo").glob("*.csv")):
            with path.open(newline="") as fh:
                for row in csv.DictReader(fh):
                    if row["identity_id"].startswith("sa-") and row["team"] != "UNASSIGNED":
                        owner = owners.get(row["identity_id"])
                        if owner and owner["signal"] and not owner.get("previous_team"):
                            assert row["team"] == owner["team"], row
                            checked += 1
        assert checked > 100

    def test_rule_tester_on_the_demo_database(self, demo: tuple[Path, str]) -> None:
        """`chargeback ownership` lists every identity with its team and rule, then leaks."""
        workdir, _ = demo
        env = {**os.environ, "CHARGEBACK_STORAGE__PATH": str(workdir / "chargeback.db")}
        result = subprocess.run(
            _chargeback("ownership", "--config", str(SETTINGS), "--tenant", "demo"),
            capture_output=True, text=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        out = result.stdout
        assert re.search(r"^identities \(\d+\)$", out, re.M)
        assert re.search(
            r"^  service_account\s+sa-\S+\s+.*\s(sa-description|sa-svc-name)$", out, re.M
        )
        assert re.search(r"^unmapped cost \d{4}-\d\d-\d\d \.\. \d{4}-\d\d-\d\d: ", out, re.M)


class TestServing:
    """Without ``--exit-after-run`` the demo serves the daemon's endpoints until SIGINT."""

    def test_serves_metrics_and_stops_on_sigint(self, tmp_path: Path) -> None:
        """Probes, /metrics, the UI and the API answer with the demo's data; Ctrl-C exits 0."""
        proc = subprocess.Popen(
            _chargeback(
                "demo",
                "--config",
                str(SETTINGS),
                "--days",
                "2",
                "--port",
                "0",
                "--workdir",
                "work",
            ),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None
            lines: list[str] = []
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("Serving until Ctrl-C"):
                    break
            out = "".join(lines)
            match = re.search(r"chargeback daemon on (http://127\.0\.0\.1:\d+)", out)
            assert match is not None, out
            base = match.group(1)
            with httpx.Client(base_url=base, timeout=10) as client:
                assert client.get("/healthz").status_code == 200
                assert client.get("/readyz").status_code == 200
                metrics = client.get("/metrics").text
                ui_page = client.get("/ui/")
                answer = client.get("/api/v1/allocation", params={"window": "7d"}).json()
            assert f"web UI         {base}/ui/" in out
            assert ui_page.status_code == 200
            assert "Overview" in ui_page.text
            assert answer["tenant"] == "demo"
            assert answer["reconciled"] is True
            assert answer["sets"][0]["calculated_days"] == 2
            assert 'chargeback_runs_total{status="success",tenant="demo"} 1.0' in metrics
            assert re.search(r'chargeback_cost_latest_day\{[^}]*tenant="demo"', metrics)
            assert (tmp_path / "work" / "chargeback.pid").is_file()
            proc.send_signal(signal.SIGINT)
            rest, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, rest + err
            assert not (tmp_path / "work" / "chargeback.pid").exists()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
