"""The Kubernetes manifests: one writer, real probes, wiring between the objects."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

Kind = Callable[[str], dict[str, Any]]
K8S = Path(__file__).resolve().parents[3] / "deploy" / "kubernetes"


def _pod(kind: Kind) -> dict[str, Any]:
    spec: dict[str, Any] = kind("Deployment")["spec"]["template"]
    return spec


def _container(kind: Kind) -> dict[str, Any]:
    containers = _pod(kind)["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _port(kind: Kind, name: str) -> int:
    ports = {p["name"]: p["containerPort"] for p in _container(kind)["ports"]}
    return int(ports[name])


class TestDeployment:
    """SQLite has a single writer: one pod, never two at once."""

    def test_one_replica_recreated_not_rolled(self, k8s_kind: Kind) -> None:
        """replicas is 1 and the strategy is Recreate, so old and new pods never overlap."""
        spec = k8s_kind("Deployment")["spec"]
        assert spec["replicas"] == 1
        assert spec["strategy"] == {"type": "Recreate"}

    def test_probes_hit_the_health_endpoints_on_the_http_port(self, k8s_kind: Kind) -> None:
        """Liveness asks /healthz, readiness /readyz, both on the container's http port."""
        container = _container(k8s_kind)
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert _port(k8s_kind, "http") > 0

    def test_resources_have_requests_and_limits(self, k8s_kind: Kind) -> None:
        """CPU and memory are requested and memory is limited."""
        resources = _container(k8s_kind)["resources"]
        assert set(resources["requests"]) == {"cpu", "memory"}
        assert "memory" in resources["limits"]

    def test_runs_unprivileged(self, k8s_kind: Kind) -> None:
        """Non-root, no privilege escalation, no capabilities, read-only root filesystem."""
        pod_sc = _pod(k8s_kind)["spec"]["securityContext"]
        assert pod_sc["runAsNonRoot"] is True
        assert pod_sc["runAsUser"] != 0
        assert pod_sc["fsGroup"] == pod_sc["runAsGroup"]
        sc = _container(k8s_kind)["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["readOnlyRootFilesystem"] is True
        assert sc["capabilities"]["drop"] == ["ALL"]

    def test_scrape_annotations_point_at_metrics(self, k8s_kind: Kind) -> None:
        """The prometheus.io annotations name /metrics on the http port."""
        annotations = _pod(k8s_kind)["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/path"] == "/metrics"
        assert int(annotations["prometheus.io/port"]) == _port(k8s_kind, "http")


class TestWiring:
    """Every reference between the objects resolves."""

    def _mounts(self, kind: Kind) -> dict[str, dict[str, Any]]:
        volumes = {v["name"]: v for v in _pod(kind)["spec"]["volumes"]}
        return {m["mountPath"]: volumes[m["name"]] for m in _container(kind)["volumeMounts"]}

    def test_settings_come_from_the_generated_configmap(self, k8s_kind: Kind) -> None:
        """The ConfigMap built from settings.yaml is mounted where --config points."""
        configmap = k8s_kind("ConfigMap")
        assert configmap["data"]["settings.yaml"] == (K8S / "settings.yaml").read_text()
        args = _container(k8s_kind)["args"]
        config = Path(args[args.index("--config") + 1])
        volume = self._mounts(k8s_kind)[str(config.parent)]
        assert volume["configMap"]["name"] == configmap["metadata"]["name"]
        assert config.name == "settings.yaml"

    def test_database_is_on_the_claim(self, k8s_kind: Kind) -> None:
        """The PersistentVolumeClaim is mounted at the directory holding the SQLite file."""
        claim = k8s_kind("PersistentVolumeClaim")
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        volume = self._mounts(k8s_kind)["/var/lib/chargeback"]
        assert volume["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
        settings = yaml.safe_load(k8s_kind("ConfigMap")["data"]["settings.yaml"])
        assert Path(settings["storage"]["path"]).parent == Path("/var/lib/chargeback")

    def test_secret_keys_exist(self, k8s_kind: Kind) -> None:
        """Every secretKeyRef names the Secret and a key it holds."""
        secret = k8s_kind("Secret")
        refs = [
            e["valueFrom"]["secretKeyRef"]
            for e in _container(k8s_kind)["env"]
            if "valueFrom" in e and "secretKeyRef" in e["valueFrom"]
        ]
        assert len(refs) == 2
        for ref in refs:
            assert ref["name"] == secret["metadata"]["name"]
            assert ref["key"] in secret["stringData"]

    def test_service_selects_the_pod_and_targets_its_port(self, k8s_kind: Kind) -> None:
        """The Service's selector matches the pod labels and its targetPort is the http port."""
        service = k8s_kind("Service")
        labels = _pod(k8s_kind)["metadata"]["labels"]
        assert service["spec"]["selector"].items() <= labels.items()
        (port,) = service["spec"]["ports"]
        assert port["targetPort"] == "http"
        assert port["port"] == _port(k8s_kind, "http")

    def test_servicemonitor_selects_the_service_port(self, k8s_kind: Kind) -> None:
        """The ServiceMonitor selects the Service's labels and scrapes /metrics on its port."""
        monitor = k8s_kind("ServiceMonitor")
        service = k8s_kind("Service")
        selector = monitor["spec"]["selector"]["matchLabels"]
        assert selector.items() <= service["metadata"]["labels"].items()
        (endpoint,) = monitor["spec"]["endpoints"]
        assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
        assert endpoint["path"] == "/metrics"

    def test_everything_lives_in_one_namespace(self, k8s_objects: list[dict[str, Any]]) -> None:
        """Every namespaced object is in the namespace the kustomization creates."""
        namespaces = [o["metadata"]["name"] for o in k8s_objects if o["kind"] == "Namespace"]
        assert len(namespaces) == 1
        for obj in k8s_objects:
            if obj["kind"] != "Namespace":
                assert obj["metadata"]["namespace"] == namespaces[0], obj["kind"]

    def test_readme_shows_how_to_rerun(self) -> None:
        """The folder's README tells an operator the kubectl exec rerun command."""
        readme = (K8S / "README.md").read_text()
        assert "kubectl -n chargeback exec deploy/chargeback -- chargeback rerun" in readme
