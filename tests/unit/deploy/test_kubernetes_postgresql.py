"""The PostgreSQL overlay (deploy/kubernetes-postgresql): replicas, rolling, migrate first.

Its files are checked as written; where ``kubectl`` is installed the overlay is also
rendered (``kubectl kustomize``) and the result checked, patches applied.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from chargeback.settings import load_settings

OVERLAY = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes-postgresql"


def _yaml(name: str) -> Any:
    return yaml.safe_load((OVERLAY / name).read_text())


class TestOverlayFiles:
    def test_it_builds_on_the_sqlite_base_and_drops_its_volume_claim(self) -> None:
        """The base's objects, minus the PersistentVolumeClaim, plus the password Secret."""
        kustomization = _yaml("kustomization.yaml")
        assert kustomization["resources"] == ["../kubernetes", "secret.yaml"]
        deletes = [p["patch"] for p in kustomization["patches"] if "patch" in p]
        assert any("PersistentVolumeClaim" in p and "$patch: delete" in p for p in deletes)
        [generator] = kustomization["configMapGenerator"]
        assert (generator["name"], generator["behavior"]) == ("chargeback-settings", "replace")

    def test_replicas_roll_and_migrate_runs_first(self) -> None:
        """Several replicas, RollingUpdate with surge, `chargeback migrate` as init container,
        PGPASSWORD from the Secret, the SQLite path variable removed."""
        spec = _yaml("deployment-patch.yaml")["spec"]
        assert spec["replicas"] >= 2
        assert spec["strategy"]["type"] == "RollingUpdate"
        assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
        [init] = spec["template"]["spec"]["initContainers"]
        assert init["args"][:2] == ["chargeback", "migrate"]
        [daemon] = spec["template"]["spec"]["containers"]
        env = {e["name"]: e for e in daemon["env"]}
        assert env["CHARGEBACK_STORAGE__PATH"] == {
            "name": "CHARGEBACK_STORAGE__PATH", "$patch": "delete"
        }  # fmt: skip
        for container in (init, daemon):
            [pg] = [e for e in container["env"] if e["name"] == "PGPASSWORD"]
            assert pg["valueFrom"]["secretKeyRef"] == {
                "name": "chargeback-postgresql", "key": "password"
            }  # fmt: skip

    def test_settings_name_the_server_without_a_password(self) -> None:
        """settings.yaml loads, selects PostgreSQL and holds no password."""
        settings = load_settings(OVERLAY / "settings.yaml")
        assert settings.storage.url is not None
        assert settings.storage.url.startswith("postgresql://chargeback@")
        assert ":" not in settings.storage.url.split("@")[0].removeprefix("postgresql://")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl renders the overlay")
class TestRendered:
    def test_the_rendered_overlay(self) -> None:
        """Rendered: no claim, 3 replicas rolling, both containers on the same image."""
        out = subprocess.run(
            ["kubectl", "kustomize", str(OVERLAY)], capture_output=True, text=True, check=True
        ).stdout
        objects = [o for o in yaml.safe_load_all(out) if o]
        kinds = sorted(o["kind"] for o in objects)
        assert "PersistentVolumeClaim" not in kinds
        [deployment] = [o for o in objects if o["kind"] == "Deployment"]
        pod = deployment["spec"]["template"]["spec"]
        assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
        assert {c["image"] for c in [*pod["initContainers"], *pod["containers"]]} == {
            "chargeback:latest"
        }
        [data] = [v for v in pod["volumes"] if v["name"] == "data"]
        assert data == {"name": "data", "emptyDir": {}}
        env = [e["name"] for e in pod["containers"][0]["env"]]
        assert "CHARGEBACK_STORAGE__PATH" not in env
        assert "PGPASSWORD" in env
