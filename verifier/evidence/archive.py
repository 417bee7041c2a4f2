"""An evidence bundle's zip, read without trusting it (PKWARE APPNOTE 6.3.10, as Python's `zipfile` reads it).

What it does: open a zip from a seekable binary stream the caller opened, and refuse, before reading
any member, what would cost unbounded time, memory or disk, or could be read two ways: a central
directory with more than `MAX_MEMBERS` members or larger than `MAX_DIRECTORY_BYTES` (checked from the
end record itself, before `zipfile` reads the directory), a member larger than `MAX_MEMBER_BYTES`, more
than `MAX_TOTAL_BYTES` in all, a compression ratio above `MAX_RATIO` (a zip bomb), encrypted members or
methods other than stored and deflated, names that could leave a folder or mean two things (`..`, `.`,
an absolute path, a drive letter, a backslash, a NUL, control characters) and names that come twice
(also when they differ only in case, which folds them together on Windows and macOS). Members are
read, and hashed, with a size cap: a member that decompresses to more than it claims stops at its
claim and fails its CRC.

What it does not do: extract anything to disk, or know what a bundle must hold (`manifest`, `bundle`).
Every refusal is an `ArchiveError` naming the member and the limit.
"""

from __future__ import annotations

import hashlib
import re
import struct
import zipfile
import zlib
from typing import BinaryIO

from verifier.errors import FormatError

MAX_MEMBERS = 20_000
MAX_DIRECTORY_BYTES = 8 << 20
MAX_MEMBER_BYTES = 256 << 20
MAX_TOTAL_BYTES = 1 << 30
MAX_RATIO = 100  # uncompressed / compressed, for members larger than RATIO_FLOOR
RATIO_FLOOR = 1 << 20
MAX_NAME = 512
_CHUNK = 1 << 20
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"
_DRIVE = re.compile(r"^[A-Za-z]:")


class ArchiveError(FormatError):
    """A bundle refused as an archive: truncated, damaged, hostile or beyond a limit."""

    code = "bad_archive"


def check_name(name: str) -> str:
    """`name` if it is a plain relative path inside the bundle, else the reason it is not."""
    if not name:
        return "an empty name"
    if len(name) > MAX_NAME:
        return f"a name of {len(name)} characters (at most {MAX_NAME})"
    if "\\" in name:
        return "a backslash, which some tools read as a folder separator"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "a control character"
    if name.startswith("/") or _DRIVE.match(name):
        return "an absolute path"
    parts = name.rstrip("/").split("/")
    if any(p in ("", ".", "..") for p in parts):
        return "a '.', '..' or empty path segment, which could leave the bundle's folder"
    return ""


def _end_record(fp: BinaryIO) -> tuple[int, int]:
    """(members, central directory bytes) from the end of central directory record (APPNOTE 4.3.16,
    4.3.14 for ZIP64), read from the stream's tail alone."""
    fp.seek(0, 2)
    size = fp.tell()
    tail_len = min(size, 22 + 0xFFFF)
    fp.seek(size - tail_len)
    tail = fp.read(tail_len)
    at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise ArchiveError("the bundle is not a complete zip file: its end record is missing (a truncated or "
                           "damaged download; fetch the bundle again)", code="truncated_archive")
    _, _, _, _, total, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[at:at + 22])
    if total == 0xFFFF or cd_size == 0xFFFFFFFF:  # ZIP64: the locator sits just before the end record
        loc = tail[at - 20:at] if at >= 20 else b""
        if not loc.startswith(_EOCD64_LOCATOR):
            raise ArchiveError("the bundle's ZIP64 end record is missing (a damaged zip)", code="truncated_archive")
        (offset,) = struct.unpack("<Q", loc[8:16])
        if offset + 56 > size:
            raise ArchiveError("the bundle's ZIP64 end record points outside the file", code="truncated_archive")
        fp.seek(offset)
        rec = fp.read(56)
        if not rec.startswith(_EOCD64):
            raise ArchiveError("the bundle's ZIP64 end record is damaged", code="truncated_archive")
        total, cd_size = struct.unpack("<QQ", rec[32:48])
    return total, cd_size


class Archive:
    """The members of a bundle zip, checked against the limits, readable with a size cap."""

    def __init__(self, fp: BinaryIO) -> None:
        try:
            total, cd_size = _end_record(fp)
        except (OSError, struct.error) as e:
            raise ArchiveError(f"the bundle cannot be read as a zip file: {e}", code="truncated_archive") from None
        if total > MAX_MEMBERS:
            raise ArchiveError(f"the bundle's zip directory claims {total} members, more than the limit of "
                               f"{MAX_MEMBERS}", code="too_many_members")
        if cd_size > MAX_DIRECTORY_BYTES:
            raise ArchiveError(f"the bundle's zip directory is {cd_size} bytes, more than the limit of "
                               f"{MAX_DIRECTORY_BYTES}", code="too_many_members")
        try:
            self._zip = zipfile.ZipFile(fp)
            infos = self._zip.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error,
                NotImplementedError) as e:
            raise ArchiveError(f"the bundle is not a readable zip file ({e}); it may be truncated or damaged",
                               code="truncated_archive") from None
        self._infos: dict[str, zipfile.ZipInfo] = {}
        folded: dict[str, str] = {}
        claimed = 0
        for info in infos:
            self._check(info)
            name = info.filename
            if name.endswith("/"):
                continue  # a folder entry, as `zip -r` writes them: holds nothing
            if name in self._infos:
                raise ArchiveError(f"the bundle holds the name {name!r} twice: a reader could take either",
                                   code="duplicate_member")
            other = folded.setdefault(name.casefold(), name)
            if other != name:
                raise ArchiveError(f"the bundle holds {other!r} and {name!r}, names that differ only in case "
                                   "(one file, once unpacked on Windows or macOS)", code="duplicate_member")
            claimed += info.file_size
            if claimed > MAX_TOTAL_BYTES:
                raise ArchiveError(f"the bundle's members claim more than {MAX_TOTAL_BYTES} bytes in all "
                                   "(a zip bomb?)", code="archive_too_large")
            self._infos[name] = info

    @staticmethod
    def _check(info: zipfile.ZipInfo) -> None:
        raw = info.orig_filename
        why = "a NUL character" if "\x00" in raw else check_name(raw)
        if why:
            raise ArchiveError(f"the bundle holds a member named {raw!r}, with {why}: refused",
                               code="bad_member_name")
        if info.flag_bits & 0x61:  # (APPNOTE 4.4.4) bit 0 encrypted, 5 patched data, 6 strong encryption
            raise ArchiveError(f"member {raw!r} is encrypted or patched; a bundle is neither", code="bad_member")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArchiveError(f"member {raw!r} uses compression method {info.compress_type}; only stored and "
                               "deflated are read", code="bad_member")
        if raw.endswith("/") and info.file_size:
            raise ArchiveError(f"member {raw!r} is a folder that holds data", code="bad_member")
        if info.file_size > MAX_MEMBER_BYTES:
            raise ArchiveError(f"member {raw!r} claims {info.file_size} bytes, more than the limit of "
                               f"{MAX_MEMBER_BYTES} for one file", code="member_too_large")
        if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise ArchiveError(f"member {raw!r} would expand {info.compress_size} bytes to {info.file_size}, a "
                               f"ratio above {MAX_RATIO}: a zip bomb", code="zip_bomb")

    @property
    def names(self) -> list[str]:
        return sorted(self._infos)

    def size(self, name: str) -> int:
        return self._info(name).file_size

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = self._infos.get(name)
        if info is None:
            raise FormatError(f"the bundle has no file {name}", code="missing_file")
        return info

    def read(self, name: str, limit: int) -> bytes:
        """The member's bytes; a member larger than `limit` is refused before it is read."""
        info = self._info(name)
        if info.file_size > limit:
            raise FormatError(f"{name} is {info.file_size} bytes, more than the {limit} such a file may have",
                              code="file_too_large")
        out = bytearray()
        for chunk in self._chunks(info):
            out += chunk
        return bytes(out)

    def sha256(self, name: str) -> tuple[str, int]:
        """SHA-256 (hex) and size of the member, read in chunks."""
        h, n = hashlib.sha256(), 0
        for chunk in self._chunks(self._info(name)):
            h.update(chunk)
            n += len(chunk)
        return h.hexdigest(), n

    def _chunks(self, info: zipfile.ZipInfo) -> _Reader:
        return _Reader(self._zip, info)

    def close(self) -> None:
        self._zip.close()


class _Reader:
    """Iterate over a member's bytes, at most its claimed size; damage is an `ArchiveError`."""

    def __init__(self, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        self.zf, self.info = zf, info

    def __iter__(self) -> _Reader:
        try:
            self._f = self.zf.open(self.info)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error, NotImplementedError) as e:
            raise ArchiveError(f"member {self.info.filename} cannot be read: {e}", code="damaged_member") from None
        self._left = self.info.file_size + 1
        return self

    def __next__(self) -> bytes:
        try:
            chunk = self._f.read(min(_CHUNK, self._left))
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, ValueError, struct.error, NotImplementedError) as e:
            self._f.close()
            raise ArchiveError(f"member {self.info.filename} is damaged: {e}", code="damaged_member") from None
        if not chunk:
            self._f.close()
            raise StopIteration
        self._left -= len(chunk)
        if self._left <= 0:
            self._f.close()
            raise ArchiveError(f"member {self.info.filename} holds more bytes than it claims", code="damaged_member")
        return chunk
