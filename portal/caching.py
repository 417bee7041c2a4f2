"""Small in-process caches: rendered copy pages (see portal.pages.routes), and values kept for a few seconds."""

from __future__ import annotations

import time
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class PageCache:
    """Rendered copy pages, keyed by code and language, valid while `copy_version` is unchanged."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.pages: dict[tuple[str, str], tuple[Any, bytes]] = {}

    def get(self, key: tuple[str, str], version: Any) -> bytes | None:
        hit = self.pages.get(key)
        return hit[1] if hit is not None and hit[0] == version else None

    def put(self, key: tuple[str, str], version: Any, body: bytes) -> None:
        if len(self.pages) >= self.size:
            self.pages.pop(next(iter(self.pages)))
        self.pages[key] = (version, body)


class TtlCache(Generic[K, V]):
    """Values younger than the age each lookup allows; emptied when it holds more than `size`."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._items: dict[K, tuple[float, V]] = {}

    def get(self, key: K, max_age_s: float) -> V | None:
        hit = self._items.get(key)
        return hit[1] if hit is not None and time.monotonic() - hit[0] < max_age_s else None

    def put(self, key: K, value: V) -> None:
        if len(self._items) > self.size:
            self._items.clear()
        self._items[key] = (time.monotonic(), value)
