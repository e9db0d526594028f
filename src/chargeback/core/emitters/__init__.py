"""Emitters: the registry, the runner and the built-in ``csv`` and ``prometheus`` (DESIGN §8)."""
