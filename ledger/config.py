"""Configuration: `config.toml` in the ledger home (LEDGER_HOME, default ./data).

Flat keys, plus one `[[tsa]]` table per external time-stamping authority (DESIGN.md §5). Every key
is documented in the README (a test checks). Unknown keys are refused, at the top level and inside
a `[[tsa]]` table, so a typo is an error rather than a silently ignored setting.

Where `ledger serve` listens and the address QR codes name may also come from the environment
(`ENVIRONMENT`: LEDGER_HOST, LEDGER_PORT, LEDGER_PUBLIC_URL), so they can be set before the first run,
when there is no config.toml yet. Precedence: an option of `ledger serve` (which it passes on as the
variable) > the environment > config.toml > the default. The environment's values are checked as
config.toml's are, and never written into config.toml.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ledger.errors import LedgerError
from verifier.errors import FormatError
from verifier.note import CosignatureVerifier, _check_name

DEFAULT_ORIGIN = "localhost/evidence-ledger"
LOCAL_TSA_NAME = "local"
DEFAULT_POLICY = "1.3.6.1.4.1.57264.3161.1"  # the local TSA's policy OID (`local_tsa_policy`)
_TSA_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


_CORNERS = ("bottom-right", "bottom-left", "top-right", "top-left")
_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")


@dataclass(frozen=True)
class PrintConfig:
    """How a tenant's print-ready copies (and downloads) look: one `[[printing]]` table each; `tenant =
    "*"` is the default for tenants without a table of their own."""

    tenant: str = "*"
    corner: str = "bottom-right"
    qr_mm: float = 22.0
    margin_mm: float = 8.0
    pages: str = "every"
    watermark: str = ""
    watermark_size: float = 40.0
    watermark_colour: str = "#808080"
    watermark_opacity: float = 0.2
    watermark_angle: float = 45.0
    watermark_tiled: bool = True
    watermark_downloads: bool = True

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_toml(cls, raw: Any, where: str) -> PrintConfig:
        _check_table(raw, where, cls.keys())
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in raw:
                continue
            v, want = raw[f.name], type(f.default)
            if want is float and isinstance(v, int) and not isinstance(v, bool):
                v = float(v)
            if not isinstance(v, want) or isinstance(v, bool) != (want is bool):
                raise _bad(f"{where}: {f.name} must be a {want.__name__}")
            out[f.name] = v
        p = cls(**out)
        checks = [
            (p.tenant == "*" or bool(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", p.tenant)),
             "tenant must be a tenant's name, or \"*\" for every other tenant"),
            (p.corner in _CORNERS, f"corner must be one of {', '.join(_CORNERS)}"),
            (10 <= p.qr_mm <= 100, "qr_mm must be from 10 to 100 (mm)"),
            (0 <= p.margin_mm <= 100, "margin_mm must be from 0 to 100 (mm)"),
            (p.pages in ("every", "last"), "pages must be \"every\" or \"last\""),
            (len(p.watermark) <= 200 and p.watermark.isprintable(), "watermark must be at most 200 printable characters"),
            (6 <= p.watermark_size <= 300, "watermark_size must be from 6 to 300 (points)"),
            (bool(_COLOUR.fullmatch(p.watermark_colour)), "watermark_colour must be #RRGGBB"),
            (0 < p.watermark_opacity <= 1, "watermark_opacity must be in (0, 1]"),
            (-360 <= p.watermark_angle <= 360, "watermark_angle must be from -360 to 360 (degrees)"),
        ]
        for ok, message in checks:
            if not ok:
                raise _bad(f"{where}: {message}")
        return p

    def to_toml(self) -> str:
        out = ["[[printing]]"]
        for f in fields(self):
            v = getattr(self, f.name)
            out.append(f"{f.name} = {'true' if v else 'false'}" if isinstance(v, bool)
                       else f"{f.name} = {json.dumps(v) if isinstance(v, str) else repr(v)}")
        return "\n".join(out) + "\n"


_SEAL_KEYS = ("local", "pkcs12", "pkcs11")


@dataclass(frozen=True)
class SealConfig:
    """The platform's e-seal: its key, the image of its appearance, the TSA of its time-stamps (`[seal]`).

    `key = "local"` (the default) is the seal `ledger init` makes under the local seal CA. `"pkcs12"`
    reads `pkcs12` (its passphrase from the environment variable `passphrase_env`); `"pkcs11"` signs in a
    token (`pkcs11_module`, `pkcs11_token`, `pkcs11_key` its label, the user PIN from `pin_env`), with
    the key's certificate in `cert`, so the key never leaves the token. Files are relative to the
    ledger folder. `chain` are the certificates between the seal and its root, `roots` and `crls`
    what a B-LT seal embeds to validate with nothing fetched. `tsa` is "local" or a `[[tsa]]` table's
    name. `level` "" picks B-LT for the local seal (its CA publishes a CRL) and B-T otherwise.
    """

    key: str = "local"
    pkcs12: str = ""
    passphrase_env: str = ""
    pkcs11_module: str = ""
    pkcs11_token: str = ""
    pkcs11_key: str = ""
    pin_env: str = ""
    cert: str = ""
    chain: tuple[str, ...] = ()
    roots: tuple[str, ...] = ()
    crls: tuple[str, ...] = ()
    image: str = ""
    tsa: str = LOCAL_TSA_NAME
    level: str = ""

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_toml(cls, raw: Any, where: str) -> SealConfig:
        _check_table(raw, where, cls.keys())
        out: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in raw:
                continue
            v = raw[f.name]
            if isinstance(f.default, tuple):
                if not isinstance(v, list) or not all(isinstance(x, str) and x for x in v):
                    raise _bad(f"{where}: {f.name} must be a list of file paths")
                v = tuple(v)
            elif not isinstance(v, str):
                raise _bad(f"{where}: {f.name} must be a string")
            out[f.name] = v
        s = cls(**out)
        need = {"pkcs12": ("pkcs12",), "pkcs11": ("pkcs11_module", "pkcs11_token", "pkcs11_key", "pin_env", "cert")}
        checks = [
            (s.key in _SEAL_KEYS, f"key must be one of {', '.join(_SEAL_KEYS)}"),
            (s.level in ("", "B-T", "B-LT"), 'level must be "B-T" or "B-LT" (or "" to pick)'),
            (s.tsa == LOCAL_TSA_NAME or bool(_TSA_NAME.fullmatch(s.tsa)), 'tsa must be "local" or a [[tsa]] name'),
            (all(getattr(s, n) for n in need.get(s.key, ())),
             f"key = {s.key!r} needs {', '.join(need.get(s.key, ()))}"),
            (s.key == "local" or s.level != "B-LT" or bool(s.roots),
             "a B-LT seal with your own key needs roots (and crls) to embed the validation data"),
        ]
        for ok, message in checks:
            if not ok:
                raise _bad(f"{where}: {message}")
        return s

    @property
    def effective_level(self) -> str:
        return self.level or ("B-LT" if self.key == "local" else "B-T")

    def secret(self, variable: str, what: str) -> str:
        """A passphrase or PIN from the environment variable the table names (never from the file)."""
        value = os.environ.get(variable)
        if value is None:
            raise _bad(f"[seal]: environment variable {variable} ({what}) is not set")
        return value

    def to_toml(self) -> str:
        out = ["[seal]"]
        for f in fields(self):
            v = getattr(self, f.name)
            if v != f.default:
                out.append(f"{f.name} = {json.dumps(list(v) if isinstance(v, tuple) else v)}")
        return "\n".join(out) + "\n"


@dataclass(frozen=True)
class TsaConfig:
    """One external RFC 3161 TSA: where to ask, whom to trust, how to authenticate."""

    name: str
    url: str
    roots: tuple[str, ...]
    certs: tuple[str, ...] = ()
    timeout_s: float = 10.0
    policy: str = ""
    username: str = ""
    password: str = ""
    password_env: str = ""
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_toml(cls, raw: Any, where: str) -> TsaConfig:
        _check_table(raw, where, cls.keys())
        for required in ("name", "url", "roots"):
            if required not in raw:
                raise _bad(f"{where}: `{required}` is required")
        name, url = raw["name"], raw["url"]
        if not isinstance(name, str) or not _TSA_NAME.fullmatch(name) or name == LOCAL_TSA_NAME:
            raise _bad(f"{where}: name must be 1-64 of a-z 0-9 . _ - and not {LOCAL_TSA_NAME!r} "
                       "(reserved for the embedded local TSA)")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise _bad(f"{where}: url must be an http:// or https:// URL")
        if "@" in url.split("/", 3)[2]:  # GET /tsa shows the URL: credentials go in username/password_env
            raise _bad(f"{where}: url must not hold credentials (user:password@); use username and password_env")
        out: dict[str, Any] = {"name": name, "url": url}
        for key in ("roots", "certs"):
            value = raw.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise _bad(f"{where}: {key} must be a list of certificate file paths")
            out[key] = tuple(value)
        if not out["roots"]:
            raise _bad(f"{where}: roots must name at least one trusted root certificate file")
        timeout = raw.get("timeout_s", cls.timeout_s)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 600:
            raise _bad(f"{where}: timeout_s must be a number of seconds in (0, 600]")
        out["timeout_s"] = float(timeout)
        for key in ("policy", "username", "password", "password_env"):
            value = raw.get(key, "")
            if not isinstance(value, str):
                raise _bad(f"{where}: {key} must be a string")
            out[key] = value
        headers = raw.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise _bad(f"{where}: headers must be a table of strings")
        out["headers"] = tuple(sorted(headers.items()))
        if out["username"] and not url.startswith("https://"):
            raise _bad(f"{where}: basic auth sends the password in clear; use an https:// URL")
        return cls(**out)

    def to_toml(self) -> str:
        out = ["[[tsa]]"]
        for f in fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if f.name == "headers":
                inner = ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in value)
                out.append(f"headers = {{ {inner} }}")
            elif isinstance(value, tuple):
                out.append(f"{f.name} = {json.dumps(list(value))}")
            else:
                out.append(f"{f.name} = {json.dumps(value)}")
        return "\n".join(out) + "\n"

    def password_value(self) -> str:
        """The basic-auth password: `password`, or the environment variable named by `password_env`."""
        if self.password_env:
            value = os.environ.get(self.password_env)
            if value is None:
                raise _bad(f"TSA {self.name!r}: environment variable {self.password_env} is not set")
            return value
        return self.password


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
    local_tsa: bool = True
    local_tsa_policy: str = DEFAULT_POLICY
    anchor_interval_s: float = 60.0
    anchor_backoff_max_s: float = 60.0
    renew_within_days: int = 180
    public_url: str = "http://127.0.0.1:8080"
    lookup_rate: float = 10.0
    lookup_burst: int = 30
    upload_rate: float = 20.0  # per API key
    upload_burst: int = 100
    idempotency_hours: float = 24.0
    organisation: str = "Evidence Ledger (demo)"  # the name on the platform's seal
    seal_on_completion: bool = True
    witnesses: tuple[str, ...] = ()
    witness_urls: tuple[tuple[str, str], ...] = ()  # witness name -> base URL of its C2SP tlog-witness
    trusted_proxies: tuple[str, ...] = ()
    signature_roots: tuple[str, ...] = ()  # PEM files (relative to the ledger folder) the PDF signature check trusts
    header_timeout_s: float = 20.0
    idle_timeout_s: float = 75.0
    body_timeout_s: float = 300.0
    max_connections: int = 10_000
    database: str = ""  # "": the SQLite file ledger.db in the ledger folder; else a postgresql:// URL
    database_password_env: str = ""  # the environment variable holding the PostgreSQL password, if one is needed
    read_database: str = ""  # a streaming replica of `database` the portal's pages read from; "" = none
    replica_max_lag_s: float = 5.0  # pages read the primary while the replica lags more than this
    database_pool: int = 10  # PostgreSQL: the most sessions this host's reads hold on the database (and on the replica)
    tiles_folder: str = ""  # where the writer publishes tiles as files (`ledger.storage.publish`); "" = off
    tiles_url: str = ""  # where the portal redirects full tiles and entry bundles; "" = serve them itself
    tsa: tuple[TsaConfig, ...] = ()
    printing: tuple[PrintConfig, ...] = ()
    seal: SealConfig = SealConfig()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def public_host(self) -> str:
        """The host (and port, if any) of `public_url`: the address printed with every QR code, and
        the one each page tells its reader to look for in the address bar."""
        u = urlsplit(self.public_url)
        host = (u.hostname or "").lower()
        host = f"[{host}]" if ":" in host else host
        default = 443 if u.scheme == "https" else 80
        return host if u.port in (None, default) else f"{host}:{u.port}"  # as an address bar shows it

    @property
    def tsa_names(self) -> list[str]:
        """The TSAs configured to anchor this ledger: the local one (if on), then each [[tsa]]."""
        return ([LOCAL_TSA_NAME] if self.local_tsa else []) + [t.name for t in self.tsa]

    def database_password(self) -> str | None:
        """The PostgreSQL password: the environment variable `database_password_env` names (never the file)."""
        if not self.database_password_env:
            return None
        value = os.environ.get(self.database_password_env)
        if value is None:
            raise _bad(f"environment variable {self.database_password_env} (database_password_env: the database "
                       "password) is not set")
        return value

    def printing_for(self, tenant: str) -> PrintConfig:
        """The tenant's `[[printing]]` table, else the `"*"` one, else the defaults."""
        by = {p.tenant: p for p in self.printing}
        return by.get(tenant) or by.get("*") or PrintConfig()

    def witness_verifiers(self) -> list[CosignatureVerifier]:
        """The notaries whose tlog-cosignature/v1 cosignatures the log accepts and shows."""
        return [CosignatureVerifier.from_string(k) for k in self.witnesses]

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in fields(cls) if f.name != "extra"]

    def replace(self, **changes: Any) -> Config:
        return Config(**{**{k: getattr(self, k) for k in self.keys()}, **changes})

    def to_toml(self) -> str:
        out = []
        given = environment()  # this run's settings, not the ledger's: config.toml gets the defaults
        for k in self.keys():
            v = getattr(Config, k) if k in given else getattr(self, k)
            if k in ("tsa", "printing", "seal"):
                continue
            if isinstance(v, bool):
                out.append(f"{k} = {'true' if v else 'false'}")
            elif k == "witness_urls":  # a table, inline: `[witness_urls]` would take the keys after it
                out.append(f"{k} = {{{', '.join(f'{json.dumps(n)} = {json.dumps(u)}' for n, u in v)}}}")
            elif isinstance(v, tuple):
                out.append(f"{k} = {json.dumps(list(v))}")
            else:
                out.append(f"{k} = {v!r}" if not isinstance(v, str) else f"{k} = {json.dumps(v)}")
        return ("\n".join(out) + "\n" + "".join("\n" + t.to_toml() for t in self.tsa)
                + "".join("\n" + p.to_toml() for p in self.printing)
                + ("\n" + self.seal.to_toml() if self.seal != SealConfig() else ""))


def _check_table(raw: Any, where: str, known: list[str]) -> None:
    """A `[[...]]` table of config.toml: a table, with only keys it knows (a typo is an error)."""
    if not isinstance(raw, dict):
        raise _bad(f"{where} must be a table")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise _bad(f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(known)}")


def _bad(message: str) -> LedgerError:
    return LedgerError(message, code="bad_config")


def _strings(raw: dict[str, Any], key: str, message: str) -> list[str]:
    """Take `key`, a list of strings (empty if absent), out of the parsed TOML; `message` if it is not one."""
    value = raw.pop(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(message)
    return value


def home_dir(arg: str | None = None) -> Path:
    return Path(arg or os.environ.get("LEDGER_HOME") or "data").resolve()


def load_config(home: Path) -> Config:
    """config.toml in `home` (defaults if there is none), with the settings the environment gives over it."""
    config = _load_file(home / "config.toml")
    given = environment()
    return config.replace(**given) if given else config


# setting -> the environment variable that gives it (over config.toml; `ledger serve`'s option is over both)
ENVIRONMENT = {"host": "LEDGER_HOST", "port": "LEDGER_PORT", "public_url": "LEDGER_PUBLIC_URL"}


def environment() -> dict[str, Any]:
    """The settings the environment gives (a variable set empty gives none), checked as config.toml's are."""
    out: dict[str, Any] = {}
    for key, name in ENVIRONMENT.items():
        text = os.environ.get(name, "")
        if not text:
            continue
        if key == "port":
            lo, hi, _, allowed = _RANGES[key]
            if not (text.isascii() and text.isdigit() and lo <= int(text) <= hi):
                raise _bad(f"environment variable {name}={text!r} is not a port; it must be {allowed} "
                           "(or leave it unset for config.toml's)")
            out[key] = int(text)
            continue
        if key == "public_url" and (why := public_url_problem(text)):
            raise _bad(f"environment variable {name}: {why}")
        if key == "host" and any(c.isspace() or not c.isprintable() for c in text):
            raise _bad(f"environment variable {name}={text!r} must be an address or a host name without spaces, "
                       "like 127.0.0.1 or 0.0.0.0")
        out[key] = text
    return out


def _load_file(path: Path) -> Config:
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
    tsas = raw.pop("tsa", [])
    if not isinstance(tsas, list):
        raise _bad(f"{path}: tsa must be an array of tables, written [[tsa]]")
    parsed = tuple(TsaConfig.from_toml(t, f"{path} [[tsa]] #{i + 1}") for i, t in enumerate(tsas))
    names = [t.name for t in parsed]
    if len(set(names)) != len(names):
        raise _bad(f"{path}: two [[tsa]] tables have the same name")
    printing = raw.pop("printing", [])
    if not isinstance(printing, list):
        raise _bad(f"{path}: printing must be an array of tables, written [[printing]]")
    prints = tuple(PrintConfig.from_toml(t, f"{path} [[printing]] #{i + 1}") for i, t in enumerate(printing))
    if len({p.tenant for p in prints}) != len(prints):
        raise _bad(f"{path}: two [[printing]] tables are for the same tenant")
    seal = SealConfig.from_toml(raw.pop("seal", {}), f"{path} [seal]")
    if seal.tsa != LOCAL_TSA_NAME and seal.tsa not in {t.name for t in parsed}:
        raise _bad(f"{path} [seal]: tsa = {seal.tsa!r} names no [[tsa]] table")
    witnesses = _strings(raw, "witnesses", f"{path}: witnesses must be a list of witness verifier keys "
                                            "(name+keyid+base64)")
    try:
        names = [CosignatureVerifier.from_string(w).name for w in witnesses]
    except FormatError as e:
        raise _bad(f"{path}: witnesses: {e}") from None
    if len(set(names)) != len(names):
        raise _bad(f"{path}: two witnesses have the same name")
    raw["witnesses"] = tuple(witnesses)
    urls = raw.pop("witness_urls", {})
    if not isinstance(urls, dict) or not all(isinstance(u, str) for u in urls.values()):
        raise _bad(f"{path}: witness_urls must be a table of witness name = URL, like [witness_urls] "
                   '"notary.example/w1" = "https://witness.example"')
    for name, url in urls.items():
        if name not in names:
            raise _bad(f"{path}: witness_urls names {name!r}, which is not the name of a key in witnesses "
                       f"(named there: {', '.join(names) or 'none'})")
        u = urlsplit(url)
        if u.scheme not in ("http", "https") or not u.hostname or u.query or u.fragment or u.username is not None:
            raise _bad(f"{path}: witness_urls: {url!r} of {name!r} must be an http:// or https:// address, without "
                       "credentials, a query or a fragment (the witness serves <address>/add-checkpoint)")
    raw["witness_urls"] = tuple(sorted(urls.items()))
    proxies = _strings(raw, "trusted_proxies", f"{path}: trusted_proxies must be a list of addresses or "
                                               "networks, like [\"10.0.0.0/8\"]")
    for p in proxies:
        try:
            ipaddress.ip_network(p, strict=False)
        except ValueError as e:
            raise _bad(f"{path}: trusted_proxies: {e}") from None
    raw["trusted_proxies"] = tuple(proxies)
    raw["signature_roots"] = tuple(_strings(raw, "signature_roots", f"{path}: signature_roots must be a list of "
                                                                    "PEM file paths, like [\"roots/ca.pem\"]"))
    defaults = Config()
    for k, v in raw.items():
        want = type(getattr(defaults, k))
        if want is float and isinstance(v, int) and not isinstance(v, bool):
            raw[k] = float(v)
        elif not isinstance(v, want) or isinstance(v, bool) != (want is bool):
            raise LedgerError(f"{path}: {k} must be a {want.__name__}", code="bad_config")
    for k, v in raw.items():
        if k in _RANGES:
            lo, hi, open_lo, allowed = _RANGES[k]
            if not ((lo < v if open_lo else lo <= v) and v <= hi):  # also refuses nan
                raise _bad(f"{path}: {k} = {v!r} is out of range; it must be {allowed}")
    try:
        _check_name(raw.get("origin", DEFAULT_ORIGIN))  # the origin names the log's key: the check of signed notes
    except FormatError as e:
        raise _bad(f"{path}: origin: {e}") from None
    organisation = raw.get("organisation", Config.organisation)
    if not 1 <= len(organisation.strip()) <= 64 or not organisation.isprintable():
        raise _bad(f"{path}: organisation must be 1-64 printable characters (the name on the platform's seal)")
    why = public_url_problem(raw.get("public_url", Config.public_url))
    if why:
        raise _bad(f"{path}: public_url: {why}")
    if raw.get("database") and (why := database_problem(raw["database"])):
        raise _bad(f"{path}: database: {why}")
    if not re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)?", raw.get("database_password_env", "")):
        raise _bad(f"{path}: database_password_env must be the name of an environment variable, like LEDGER_DB_PASSWORD")
    if raw.get("read_database"):
        if why := database_problem(raw["read_database"]):
            raise _bad(f"{path}: read_database: {why}")
        if not raw.get("database"):
            raise _bad(f"{path}: read_database names a replica of a PostgreSQL database: set database = "
                       "\"postgresql://...\" (the primary) too, or leave read_database out")
    _check_tiles(raw, path)
    return Config(**raw, tsa=parsed, printing=prints, seal=seal)


def _check_tiles(raw: dict[str, Any], path: Path) -> None:
    """`tiles_folder` is a folder other than the ledger's; `tiles_url` an http(s) address (kept without a
    trailing slash), and only with `tiles_folder`: the portal redirects only what is published there."""
    folder = raw.get("tiles_folder", "")
    if folder and (path.parent / folder).resolve() == path.parent.resolve():
        raise _bad(f"{path}: tiles_folder must be a folder of its own (like \"tiles\" or /srv/ledger-tiles), "
                   "not the ledger folder")
    url = raw.get("tiles_url", "")
    if not url:
        return
    why = public_url_problem(url)
    if why:
        raise _bad(f"{path}: tiles_url: {why}")
    if not folder:
        raise _bad(f"{path}: tiles_url needs tiles_folder: the portal redirects only the tiles the writer has "
                   "published there")
    raw["tiles_url"] = url.rstrip("/")


def database_problem(url: str) -> str | None:
    """What is wrong with a `database` URL, or None: postgresql://user@host[:port]/dbname, no password."""
    try:
        u = urlsplit(url)
        u.port  # noqa: B018  # raises on a port that is no number or out of range
    except ValueError as e:
        return f"{url!r} is not a URL ({e})"
    if u.scheme not in ("postgresql", "postgres") or not u.path.strip("/") or any(c.isspace() for c in url):
        return f"{url!r} must be a postgresql://user@host[:port]/dbname URL (or \"\" for the SQLite file)"
    if u.password is not None or "password=" in u.query:
        return ("the URL holds a password; take it out, and name the environment variable that holds it with "
                "database_password_env (a password is never written in config.toml)")
    return None


def public_url_problem(url: str) -> str | None:
    """What is wrong with a portal address printed in QR codes, or None: http(s), a host, and nothing
    after the path (a query or fragment would break every QR URL built on it), no credentials."""
    if any(c.isspace() or not c.isprintable() for c in url):  # urlsplit drops tabs and newlines silently
        return f"{url!r} must not hold spaces or control characters"
    try:
        u = urlsplit(url)
        u.port  # noqa: B018  # raises on a port that is no number or out of range
    except ValueError as e:
        return f"{url!r} is not a URL ({e})"
    if u.scheme not in ("http", "https") or not u.hostname:
        return f"{url!r} must be an http:// or https:// address with a host, like https://verify.example.com"
    if u.username is not None or u.password is not None:
        return f"{url!r} must not hold a user name or password (it is printed on paper)"
    if u.query or u.fragment or "?" in url or "#" in url:
        return f"{url!r} must not have a query or a fragment"
    return None


_DAY_S = 86_400
MAX_RENEW_DAYS = 36_500  # a renewal window of a century is enough; a longer one overflows dates
# key -> (low, high, low excluded, the range in words). Every numeric setting has one.
_RANGES: dict[str, tuple[float, float, bool, str]] = {
    "port": (1, 65535, False, "a TCP port from 1 to 65535"),
    "batch_max": (1, 100_000, False, "from 1 to 100000 events"),
    "batch_delay_ms": (0, 10_000, False, "from 0 to 10000 milliseconds"),
    "max_request_bytes": (1, 1 << 30, False, f"from 1 to {1 << 30} bytes"),
    "max_events_per_request": (1, 1_000_000, False, "from 1 to 1000000 events"),
    "max_document_bytes": (1, 1 << 40, False, f"from 1 to {1 << 40} bytes"),
    "anchor_interval_s": (0, 7 * _DAY_S, True, f"a positive number of seconds, at most {7 * _DAY_S}"),
    "anchor_backoff_max_s": (0, 7 * _DAY_S, True, f"a positive number of seconds, at most {7 * _DAY_S}"),
    "renew_within_days": (0, MAX_RENEW_DAYS, False, f"from 0 to {MAX_RENEW_DAYS} days"),
    "lookup_rate": (0, 1e6, False, "from 0 (no limit) to 1000000 per second"),
    "lookup_burst": (1, 1_000_000, False, "from 1 to 1000000"),
    "upload_rate": (0, 1e6, False, "from 0 (no limit) to 1000000 per second"),
    "upload_burst": (1, 1_000_000, False, "from 1 to 1000000"),
    "idempotency_hours": (0.01, 8760, False, "from 0.01 to 8760 (a year)"),
    "header_timeout_s": (0, 3600, True, "a positive number of seconds, at most 3600"),
    "idle_timeout_s": (0, _DAY_S, True, f"a positive number of seconds, at most {_DAY_S}"),
    "body_timeout_s": (0, _DAY_S, True, f"a positive number of seconds, at most {_DAY_S}"),
    "max_connections": (1, 1_000_000, False, "from 1 to 1000000 connections"),
    "replica_max_lag_s": (0, 3600, True, "a positive number of seconds, at most 3600"),
    "database_pool": (1, 1000, False, "from 1 to 1000 sessions"),
}
assert {k for k in Config.keys() if type(getattr(Config, k)) in (int, float)} == set(_RANGES)


def read_cert(home: Path, name: str, tsa: str) -> bytes:
    """A certificate file a `[[tsa]]` table names (`roots`, `certs`), relative to the ledger folder."""
    path = Path(name) if Path(name).is_absolute() else home / name
    try:
        return path.read_bytes()
    except OSError as e:
        raise LedgerError(f"TSA {tsa!r}: cannot read certificate {path}: {e}", code="bad_config") from None
