"""Readable over clever: no function of src/chargeback over 60 lines, no module over 500
(STYLE; issue 17). Sizes are measured with ``ast``: a module by its lines, a function
from its ``def`` line to its last line (docstring included, decorators not)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

SRC = Path(__file__).resolve().parents[2] / "src" / "chargeback"
MAX_FUNCTION_LINES = 60
MAX_MODULE_LINES = 500

KNOWN_OVERSIZE: dict[str, int] = {
    # Empty since 07:25 UTC: every module and function of src/chargeback fits. An entry
    # may be added only while its owner splits it, with its size then.
}
"""Oversized functions and modules still being split by their owners, with their size
when this test landed. Each may only shrink: one that grows fails, and one that fits
the limits must leave this table (so the table itself only shrinks). Keys are
``path`` for a module, ``path:function`` for a function (paths under src/chargeback)."""


class Oversize(NamedTuple):
    """A module or function over its limit."""

    key: str
    lines: int


def oversize(root: Path = SRC) -> list[Oversize]:
    """Every module over MAX_MODULE_LINES and function over MAX_FUNCTION_LINES under root."""
    found: list[Oversize] = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(root).as_posix()
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(Oversize(name, lines))
        for node in ast.walk(ast.parse(text, filename=str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(Oversize(f"{name}:{node.name}", length))
    return found


class TestSourceSizes:
    def test_no_function_or_module_is_over_its_limit(self) -> None:
        """Every module of src/chargeback has at most 500 lines and every function at most
        60, apart from the known oversized ones, which may not grow."""
        found = {o.key: o.lines for o in oversize()}
        new = {k: n for k, n in found.items() if k not in KNOWN_OVERSIZE}
        grown = {
            k: (KNOWN_OVERSIZE[k], n) for k, n in found.items() if n > KNOWN_OVERSIZE.get(k, n)
        }
        assert new == {}, "split these, or (while they are being split) see KNOWN_OVERSIZE"
        assert grown == {}, "a KNOWN_OVERSIZE entry grew: (size when listed, size now)"

    def test_the_known_oversized_ones_only_shrink_out_of_the_table(self) -> None:
        """An entry of KNOWN_OVERSIZE that fits the limits now must be removed from it."""
        found = {o.key for o in oversize()}
        fixed = sorted(set(KNOWN_OVERSIZE) - found)
        assert fixed == [], "these fit the limits now: remove them from KNOWN_OVERSIZE"

    def test_the_check_sees_long_functions_and_modules(self, tmp_path: Path) -> None:
        """The measurement finds a 61-line function and a 501-line module (and nothing in a
        60-line function), so the tests above cannot pass vacuously."""
        body = "\n".join(f"    x{i} = {i}" for i in range(59))
        fits = f"def fits():\n{body}\n"
        too_long = f"async def too_long():\n{body}\n    return 0\n"
        (tmp_path / "small.py").write_text(fits, encoding="utf-8")
        (tmp_path / "long.py").write_text(too_long, encoding="utf-8")
        (tmp_path / "big.py").write_text("x = 1\n" * 501, encoding="utf-8")
        assert oversize(tmp_path) == [Oversize("big.py", 501), Oversize("long.py:too_long", 61)]
        assert len(list(SRC.rglob("*.py"))) > 50
