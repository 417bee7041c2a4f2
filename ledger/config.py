"""Configuration: `config.toml` in the ledger home (LEDGER_HOME, default ./data).

Every key is documented in the README (a test checks). Unknown keys are refused, so a typo is an
error rather than a silently ignored setting.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ledger.errors import LedgerError

DEFAULT_ORIGIN = "localhost/evidence-ledger"


@dataclass(frozen=True)
class Config:
    origin: str = DEFAULT_ORIGIN
    host: str = "127.0.0.1"
    port: int = 8080
    batch_max: int = 1000
    batch_delay_ms: float = 0.0
    max_request_bytes: int = 4 << 20
    max_events_per_request: int = 10_000
    max_document_bytes: int = 50 << 20
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "extra"]

    def to_toml(self) -> str:
        out = []
        for k in self.keys():
            v = getattr(self, k)
            out.append(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"')
        return "\n".join(out) + "\n"


def home_dir(arg: str | None = None) -> Path:
    return Path(arg or os.environ.get("LEDGER_HOME") or "data").resolve()


def load_config(home: Path) -> Config:
    path = home / "config.toml"
    if not path.exists():
        return Config()
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise LedgerError(f"{path} is not valid TOML: {e}", code="bad_config") from None
    known = set(Config.keys())
    unknown = sorted(set(raw) - known)
    if unknown:
        raise LedgerError(f"{path}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}",
                          code="bad_config")
    defaults = Config()
    for k, v in raw.items():
        want = type(getattr(defaults, k))
        if want is float and isinstance(v, int):
            raw[k] = float(v)
        elif not isinstance(v, want) or isinstance(v, bool):
            raise LedgerError(f"{path}: {k} must be a {want.__name__}", code="bad_config")
    return Config(**raw)
