"""``chargeback export focus`` as a subprocess, on the module backfill's database."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.integration.focus.conftest import TENANT, Backfill

pytestmark = pytest.mark.e2e


def export(tmp_path: Path, backfill: Backfill, *args: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "settings.yaml"
    config.write_text(f"storage:\n  path: {backfill.db_path}\ntenants: {{}}\n", encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-m", "chargeback.cli", "export", "focus", "--config", str(config),
         "--tenant", TENANT, *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_the_command_writes_what_the_emitter_wrote(tmp_path: Path, backfill: Backfill) -> None:
    """Same month, same version: the same bytes as the emitter's month dataset."""
    out = tmp_path / "november.csv"
    done = export(tmp_path, backfill, "--month", "2026-11", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (backfill.out["1.3"] / TENANT / "2026-11.csv").read_bytes()
    assert "21 days" in done.stdout
    assert "billing period 2026-11 is open" in done.stdout
    assert "9 days of 2026-11 are not calculated" in done.stderr


def test_parquet_on_demand(tmp_path: Path, backfill: Backfill) -> None:
    """--out F.parquet writes the Parquet dataset: the emitter's table, value for value."""
    out = tmp_path / "november.parquet"
    done = export(tmp_path, backfill, "--month", "2026-11", "--out", str(out))
    assert done.returncode == 0, done.stderr
    emitted = backfill.out["1.3/parquet"] / TENANT / "2026-11.parquet"
    assert pq.read_table(out).equals(pq.read_table(emitted))
    assert pq.read_table(out).num_rows > 0
    assert f"wrote {out}" in done.stdout


def test_version_12_on_demand(tmp_path: Path, backfill: Backfill) -> None:
    """--version 1.2 gives the 1.2 dataset; a closed month says so."""
    out = tmp_path / "october.csv"
    done = export(tmp_path, backfill, "--month", "2026-10", "--out", str(out), "--version", "1.2")
    assert done.returncode == 0, done.stderr
    assert out.read_bytes() == (backfill.out["1.2"] / TENANT / "2026-10.csv").read_bytes()
    assert "billing period 2026-10 is closed" in done.stdout


@pytest.mark.parametrize(
    ("args", "status", "message"),
    [
        (["--month", "2026-13", "--out", "x.csv"], 2, "is not YYYY-MM"),
        (["--month", "2026-11", "--out", "x.json"], 2, "name a .csv or a .parquet file"),
        (["--month", "2025-01", "--out", "x.csv"], 1, "no calculated date in 2025-01"),
    ],
)
def test_bad_requests_fail_clearly(
    tmp_path: Path, backfill: Backfill, args: list[str], status: int, message: str
) -> None:
    """Bad arguments exit 2, a month without data exits 1; no file is left behind."""
    args = [str(tmp_path / a) if a.startswith("x.") else a for a in args]
    done = export(tmp_path, backfill, *args)
    assert done.returncode == status, done.stderr
    assert message in done.stderr
    assert not list(tmp_path.glob("x.*"))
