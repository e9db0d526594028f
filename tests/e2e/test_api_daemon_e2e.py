"""The query API on `chargeback run` as a subprocess: tokens guard it and never reach a log."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import httpx
from tests.e2e.test_daemon_e2e import (  # the daemon e2e's helpers and fixtures
    CLI,
    Proc,
    daemon_env,
    free_port,
    http_ok,
    procs,  # noqa: F401  (fixture)
    settings,
    sim,  # noqa: F401  (fixture)
    tenant,
    wait_until,
)

TOKEN = "Api-T0ken-e2e-5d1f0b7c2a94"
SCOPED = "Sc0ped-T0ken-e2e-93ab17f4c6"
WRONG = "Wr0ng-T0ken-e2e-0e8d4a2b61"


class TestApiOnTheDaemon:
    def test_tokens_guard_the_api_and_never_appear_in_logs(
        self,
        tmp_path: Path,
        sim: str,  # noqa: F811
        procs: Callable[..., Proc],  # noqa: F811
    ) -> None:
        """401/403/200 by token; the daemon's whole log (debug) never shows a token."""
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        config = tmp_path / "settings.yaml"
        text = settings(tmp_path, port, tenant("demo", sim)).replace("level: info", "level: debug")
        config.write_text(text, encoding="utf-8")
        env = daemon_env() | {"CHARGEBACK_API_TOKENS": f"{TOKEN}, {SCOPED}@other"}
        daemon = procs([*CLI, "run", "--config", str(config)], tmp_path / "daemon.log", env)
        wait_until(lambda: http_ok(f"{base}/readyz"), 30, "/readyz")
        daemon.signal(signal.SIGUSR1)
        good = {"authorization": f"Bearer {TOKEN}"}

        def calculated() -> bool:
            index = httpx.get(f"{base}/api/v1/", headers=good).json()
            return bool(index["tenants"]) and index["tenants"][0]["latest_date"] is not None

        wait_until(calculated, 60, "a calculated date in /api/v1/")
        answer = httpx.get(f"{base}/api/v1/allocation", params={"window": "30d"}, headers=good)
        assert answer.status_code == 200
        assert answer.json()["reconciled"] is True
        assert answer.json()["sets"][0]["calculated_days"] == 4
        assert httpx.get(f"{base}/api/v1/allocation").status_code == 401
        wrong = httpx.get(f"{base}/api/v1/runs", headers={"authorization": f"Bearer {WRONG}"})
        assert wrong.status_code == 401
        scoped = httpx.get(
            f"{base}/api/v1/runs", params={"tenant": "demo"},
            headers={"authorization": f"Bearer {SCOPED}"},
        )  # fmt: skip
        assert scoped.status_code == 403
        query_token = httpx.get(f"{base}/api/v1/runs", params={"access_token": TOKEN})
        assert query_token.status_code == 401
        metrics = httpx.get(f"{base}/metrics").text
        daemon.signal(signal.SIGTERM)
        assert daemon.wait(30) == 0
        log = daemon.text()
        assert "storage opened" in log  # debug lines were written
        for token in (TOKEN, SCOPED, WRONG):
            assert token not in log
            assert token not in metrics
            assert token not in wrong.text + scoped.text + query_token.text
