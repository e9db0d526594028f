"""The exception tree of ``chargeback.errors``: drawn as it is, and every class is used."""

from __future__ import annotations

import re
from pathlib import Path

from chargeback import errors

SRC = Path(errors.__file__).resolve().parent


def _classes() -> dict[str, type[BaseException]]:
    return {name: getattr(errors, name) for name in errors.__all__}


class TestErrorsTree:
    def test_the_docstring_draws_exactly_the_classes(self) -> None:
        """The tree in the module docstring names every exported class and no other."""
        drawn = set(re.findall(r"(?:├──|└──|^    )\s*(\w+Error)\b", errors.__doc__ or "", re.M))
        assert drawn == set(_classes())

    def test_every_class_is_raised_somewhere(self) -> None:
        """Each class (or, for a base, one of its subclasses) is constructed in the code."""
        code = "\n".join(
            path.read_text(encoding="utf-8")
            for path in SRC.rglob("*.py")
            if path.name != "errors.py"
        )
        built = {name for name in _classes() if re.search(rf"\b{name}\(", code)}
        for name, cls in _classes().items():
            family = {n for n, c in _classes().items() if issubclass(c, cls)}
            assert family & built, f"{name} (and its subclasses) is never raised in src"
