"""The suite reads like a spec: every test says in one sentence what it proves (STYLE 13)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def _tests_without_docstring() -> list[str]:
    missing = []
    for path in sorted(TESTS.rglob("test_*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith(
                "test_"
            ):
                doc = ast.get_docstring(node)
                if not doc or not doc.strip():
                    missing.append(f"{path.relative_to(TESTS)}:{node.lineno} {node.name}")
    return missing


class TestSuiteConventions:
    def test_every_test_has_a_docstring(self) -> None:
        """Every test function carries a docstring saying what it proves."""
        assert _tests_without_docstring() == []

    def test_the_check_finds_tests(self) -> None:
        """The docstring check really walks the suite (it would pass vacuously otherwise)."""
        count = sum(
            1
            for path in TESTS.rglob("test_*.py")
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.name.startswith("test_")
        )
        assert count > 300
