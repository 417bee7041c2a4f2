"""A small cache of rendered copy pages (see portal.pages)."""

from __future__ import annotations

from typing import Any


class PageCache:
    """Rendered copy pages, keyed by code, language and host, valid while `copy_version` is unchanged."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self.pages: dict[tuple[str, str, str], tuple[Any, bytes]] = {}

    def get(self, key: tuple[str, str, str], version: Any) -> bytes | None:
        hit = self.pages.get(key)
        return hit[1] if hit is not None and hit[0] == version else None

    def put(self, key: tuple[str, str, str], version: Any, body: bytes) -> None:
        if len(self.pages) >= self.size:
            self.pages.pop(next(iter(self.pages)))
        self.pages[key] = (version, body)
