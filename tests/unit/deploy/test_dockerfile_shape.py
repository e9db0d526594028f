"""The Dockerfile's shape: stages, user, signals, health check and what it copies."""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[3]


def _runtime(stages: list[Any]) -> Any:
    return stages[-1]


class TestStages:
    """A builder with the locked dependencies and a slim runtime without build tools."""

    def test_two_stages_on_slim_python(self, dockerfile_stages: list[Any]) -> None:
        """The image builds in a named builder stage and runs on python:3.11-slim."""
        assert len(dockerfile_stages) == 2
        builder, runtime = dockerfile_stages
        assert builder.name == "builder"
        assert builder.base == runtime.base == "python:3.11-slim"

    def test_builder_installs_the_lock_without_dev_deps(self, dockerfile_stages: list[Any]) -> None:
        """The builder runs ``uv sync --frozen --no-dev`` so the image gets exactly uv.lock."""
        runs = [i.args for i in dockerfile_stages[0].all("RUN")]
        syncs = [r for r in runs if "uv sync" in r]
        assert syncs
        assert all("--frozen" in r and "--no-dev" in r for r in syncs)
        assert any("--no-editable" in r for r in syncs), "the project must not be editable"

    def test_runtime_copies_only_the_venv_from_the_builder(
        self, dockerfile_stages: list[Any]
    ) -> None:
        """The runtime stage takes the built virtual environment, not the source tree."""
        builder_env = dockerfile_stages[0].env()
        venv = builder_env["UV_PROJECT_ENVIRONMENT"]
        copies = [c.args for c in _runtime(dockerfile_stages).all("COPY") if "--from=" in c.args]
        assert copies == [f"--from=builder {venv} {venv}"]
        assert _runtime(dockerfile_stages).env()["PATH"].startswith(f"{venv}/bin:")


class TestRuntime:
    """What the running container looks like."""

    def test_runs_as_a_non_root_user(self, dockerfile_stages: list[Any]) -> None:
        """The last USER is a numeric non-zero uid that the stage creates."""
        runtime = _runtime(dockerfile_stages)
        user = runtime.last("USER").args
        uid = user.split(":")[0]
        assert uid.isdigit()
        assert int(uid) != 0
        assert any(f"--uid {uid}" in r.args for r in runtime.all("RUN"))

    def test_signals_reach_the_daemon(self, dockerfile_stages: list[Any]) -> None:
        """SIGTERM stops it, and the exec-form entrypoint is tini, installed in the image."""
        runtime = _runtime(dockerfile_stages)
        assert runtime.last("STOPSIGNAL").args == "SIGTERM"
        entrypoint = runtime.last("ENTRYPOINT").exec_form()
        assert entrypoint == ["/usr/bin/tini", "--"]
        assert any("apt-get install" in r.args and "tini" in r.args for r in runtime.all("RUN"))

    def test_cmd_runs_the_daemon_with_the_default_settings(
        self, dockerfile_stages: list[Any]
    ) -> None:
        """CMD is ``chargeback run --config <the copied settings.yaml>``."""
        runtime = _runtime(dockerfile_stages)
        cmd = runtime.last("CMD").exec_form()
        assert cmd[:2] == ["chargeback", "run"]
        config = cmd[cmd.index("--config") + 1]
        assert f"settings.yaml {config}" in [c.args for c in runtime.all("COPY")]

    def test_database_directory_is_a_volume_owned_by_the_user(
        self, dockerfile_stages: list[Any]
    ) -> None:
        """/var/lib/chargeback is a VOLUME, the working directory, and chowned to the user."""
        runtime = _runtime(dockerfile_stages)
        assert runtime.last("VOLUME").exec_form() == ["/var/lib/chargeback"]
        assert runtime.last("WORKDIR").args == "/var/lib/chargeback"
        assert any(
            "chown" in r.args and "/var/lib/chargeback" in r.args for r in runtime.all("RUN")
        )
        assert runtime.env()["CHARGEBACK_STORAGE__PATH"].startswith("/var/lib/chargeback/")

    def test_healthcheck_is_exec_form_python_on_healthz(self, dockerfile_stages: list[Any]) -> None:
        """The health check needs no curl: a Python one-liner fetching /healthz."""
        check = _runtime(dockerfile_stages).last("HEALTHCHECK")
        options, _, _ = check.args.partition("CMD ")
        assert "--interval=" in options
        argv = check.exec_form()
        assert argv[:2] == ["python", "-c"]
        assert "/healthz" in argv[2]
        compile(argv[2], "<healthcheck>", "exec")


class TestBuildContext:
    """Everything the Dockerfile copies exists and survives .dockerignore."""

    def _ignored(self, path: str) -> bool:
        ignored = False
        for raw in (REPO / ".dockerignore").read_text().splitlines():
            pattern = raw.strip()
            if not pattern or pattern.startswith("#"):
                continue
            negate = pattern.startswith("!")
            pattern = pattern.removeprefix("!").rstrip("/")
            hit = (
                pattern == "**" or fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/")
            )
            if hit:
                ignored = not negate
        return ignored

    def test_copied_sources_exist_and_are_not_ignored(self, dockerfile_stages: list[Any]) -> None:
        """Each COPY source from the build context is in the repository and in the context."""
        sources: list[str] = []
        for stage in dockerfile_stages:
            for copy in stage.all("COPY"):
                if "--from=" in copy.args:
                    continue
                sources.extend(copy.args.split()[:-1])
        assert {"pyproject.toml", "uv.lock", "settings.yaml", "src"} <= set(sources)
        for source in sources:
            assert (REPO / source).exists(), f"COPY {source}: not in the repository"
            assert not self._ignored(source), f"COPY {source}: excluded by .dockerignore"
        assert (REPO / "src" / "chargeback" / "cli.py").exists()
        assert not self._ignored("src/chargeback/cli.py")

    def test_context_leaves_out_local_state(self) -> None:
        """The virtual environment, databases and git history never enter the context."""
        for path in (".venv", ".git", "var/chargeback.db", "tests", "bench", ".tools"):
            assert self._ignored(path), path

    def test_readme_is_in_the_context_for_the_wheel_build(self) -> None:
        """hatchling reads README.md (pyproject's readme) while building the wheel."""
        assert Path(REPO / "README.md").exists()
        assert not self._ignored("README.md")
