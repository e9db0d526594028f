"""A tiny dict-based LRU cache (``functools.lru_cache`` leaks on methods)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["LRU"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Least-recently-used mapping of at most *maxsize* entries."""

    def __init__(self, maxsize: int) -> None:
        self._max = maxsize
        self._data: OrderedDict[K, V] = OrderedDict()

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """Return the cached value for *key*, computing it with *make* on a miss."""
        try:
            value = self._data[key]
        except KeyError:
            value = make()
            self._data[key] = value
            if len(self._data) > self._max:
                self._data.popitem(last=False)
            return value
        self._data.move_to_end(key)
        return value

    def discard(self, key: K) -> None:
        """Drop *key* if cached."""
        self._data.pop(key, None)

    def clear(self) -> None:
        """Drop every entry."""
        self._data.clear()
