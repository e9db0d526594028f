"""Parsed deployment files for the deploy tests: Dockerfile, Kubernetes, compose, Grafana."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose"


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction: keyword (upper case) and its raw argument text."""

    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """Return the JSON (exec) form's list; fail if the instruction uses the shell form."""
        text = self.args
        if self.keyword == "HEALTHCHECK":  # HEALTHCHECK [OPTIONS] CMD [...]
            text = text.partition("CMD ")[2]
        parsed = json.loads(text)
        assert isinstance(parsed, list), f"{self.keyword} is not in exec form: {self.args}"
        return [str(p) for p in parsed]


@dataclass(slots=True)
class Stage:
    """One build stage: its base image, name and instructions."""

    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        """Return the stage's instructions with ``keyword``."""
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        """Return the stage's last instruction with ``keyword`` (the one in force)."""
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]

    def env(self) -> dict[str, str]:
        """Return the variables the stage's ENV instructions set (``KEY=VALUE`` form)."""
        values: dict[str, str] = {}
        for instr in self.all("ENV"):
            for token in shlex.split(instr.args):
                key, sep, value = token.partition("=")
                assert sep, f"ENV must use KEY=VALUE: {instr.args}"
                values[key] = value
        return values


def parse_dockerfile(text: str) -> list[Stage]:
    """Split a Dockerfile into stages of instructions (continuations joined, ARGs resolved)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a line continuation"
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        args = args.strip()
        if keyword == "FROM":
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args.get(m.group(1), m.group(0)), args)
            parts = image.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append(Stage(base=parts[0], name=name))
        elif not stages:
            assert keyword == "ARG", f"only ARG may come before the first FROM, not {keyword}"
            key, _, default = args.partition("=")
            global_args[key] = default
        else:
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


@pytest.fixture(scope="session")
def dockerfile_stages() -> list[Stage]:
    """The repository Dockerfile, parsed into stages."""
    return parse_dockerfile((REPO / "Dockerfile").read_text())


def _load_all_yaml(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def render_kustomization(folder: Path) -> list[dict[str, Any]]:
    """Render a kustomization: ``kubectl kustomize`` when available, else read its resources.

    The fallback covers what this repository's kustomization uses (resources, namespace,
    a configMapGenerator from files) so the tests mean the same without kubectl.
    """
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        out = subprocess.run(
            [kubectl, "kustomize", str(folder)], capture_output=True, text=True, check=True
        )
        return [doc for doc in yaml.safe_load_all(out.stdout) if doc]
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    objects: list[dict[str, Any]] = []
    for resource in kustomization.get("resources", []):
        objects.extend(_load_all_yaml(folder / resource))
    for generator in kustomization.get("configMapGenerator", []):
        data = {Path(f).name: (folder / f).read_text() for f in generator.get("files", [])}
        objects.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    namespace = kustomization.get("namespace")
    for obj in objects:
        if namespace and obj["kind"] != "Namespace":
            obj["metadata"]["namespace"] = namespace
    return objects


@pytest.fixture(scope="session")
def k8s_objects() -> list[dict[str, Any]]:
    """The rendered Kubernetes objects of deploy/kubernetes."""
    return render_kustomization(K8S)


@pytest.fixture(scope="session")
def k8s_kind(k8s_objects: list[dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
    """Return a lookup of the one rendered object of a kind."""

    def find(kind: str) -> dict[str, Any]:
        found = [o for o in k8s_objects if o["kind"] == kind]
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    return find


@pytest.fixture(scope="session")
def compose_file() -> dict[str, Any]:
    """deploy/compose/compose.yaml, parsed (YAML anchors and merge keys resolved)."""
    data = yaml.safe_load((COMPOSE / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="session")
def prometheus_config() -> dict[str, Any]:
    """deploy/compose/prometheus.yml, parsed."""
    data = yaml.safe_load((COMPOSE / "prometheus.yml").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="session")
def dashboard() -> dict[str, Any]:
    """The provisioned Grafana dashboard, parsed."""
    data = json.loads((COMPOSE / "grafana" / "dashboards" / "chargeback.json").read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository root."""
    return REPO


def dashboard_exprs(dash: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: panel targets and template queries."""
    exprs = [
        target["expr"]
        for panel in dash["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in dash.get("templating", {}).get("list", []):
        query = variable.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else str(query))
    return exprs


METRIC_NAME = re.compile(r"\bchargeback_[a-zA-Z0-9_]+")


@pytest.fixture(scope="session")
def dashboard_expressions(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the provisioned dashboard."""
    return dashboard_exprs(dashboard)


@pytest.fixture(scope="session")
def dashboard_metric_names(dashboard: dict[str, Any]) -> set[str]:
    """Every ``chargeback_*`` series name the dashboard's PromQL refers to."""
    return {name for expr in dashboard_exprs(dashboard) for name in METRIC_NAME.findall(expr)}
