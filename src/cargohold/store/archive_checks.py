"""Checks of one layer tar entry's header before anything is created from it.

``tarfile`` parses whatever numbers a header holds (PAX records are arbitrary decimal text,
GNU base-256 fields arbitrary integers), so a hostile archive hands us an mtime of 1e30, a uid
of 2**40 or -5, a path 3,000 directories deep or a sparse map describing terabytes.  Each is
refused here with the entry and the field named, before it reaches a system call.

Limits, and why:

* paths: at most 4095 bytes (PATH_MAX less its NUL) and 255 bytes per component (NAME_MAX),
  as the kernel takes them.  moby extracts with path-based calls, so Docker refuses longer
  ones too ("file name too long").
* uid/gid: 0 ..< 2**32 - 1 (``(uid_t)-1`` means "leave unchanged" to chown).
* mtime: a whole number of nanoseconds that fits in 64 bits (years 1678-2262).
* devices: major < 4096, minor < 2**20 (what ``mknod`` can encode).
* sparse files: at most ``MAX_SPARSE_SIZE`` real bytes and ``MAX_SPARSE_ENTRIES`` map
  entries; regions in order, not overlapping, inside the real size, and their data present
  in the archive.
"""

from __future__ import annotations

import math
import tarfile
from typing import cast

from cargohold.errors import InvalidArgument

MAX_PATH = 4095
MAX_COMPONENT = 255
MAX_ID = 2**32 - 2
MAX_DEV_MAJOR = (1 << 12) - 1
MAX_DEV_MINOR = (1 << 20) - 1
MAX_SIZE = 2**63 - 1
MAX_SPARSE_SIZE = 64 << 30
MAX_SPARSE_ENTRIES = 1 << 17
_MAX_SECONDS = (2**63 - 1) // 1_000_000_000

Region = tuple[int, int]  # (offset in the file, length)


def shown(name: str, limit: int = 120) -> str:
    """A member name as error messages quote it (long names cut in the middle)."""
    if len(name) > limit:
        name = f"{name[: limit // 2]}...{name[-limit // 2 :]}"
    return repr(name)


def bad_entry(info: tarfile.TarInfo, what: str) -> InvalidArgument:
    return InvalidArgument(f"invalid tar entry {shown(info.name)}: {what}")


def check_path(info: tarfile.TarInfo, field: str, path: str) -> None:
    """``path`` (a cleaned name or a link target) fits the kernel's limits."""
    raw = path.encode("utf-8", "surrogateescape")
    if len(raw) > MAX_PATH:
        raise bad_entry(info, f"{field} is {len(raw)} bytes long (the limit is {MAX_PATH})")
    if len(raw) > MAX_COMPONENT and max(map(len, raw.split(b"/"))) > MAX_COMPONENT:
        raise bad_entry(info, f"{field} has a component longer than {MAX_COMPONENT} bytes")


def check_header(info: tarfile.TarInfo) -> None:
    """Refuse numbers no file system call can take (the path is checked by the caller)."""
    if "\x00" in info.linkname:
        raise bad_entry(info, "NUL byte in linkname")
    if info.linkname:
        check_path(info, "linkname", info.linkname)
    _check_int(info, "size", info.size, 0, MAX_SIZE)
    _check_int(info, "uid", info.uid, 0, MAX_ID)
    _check_int(info, "gid", info.gid, 0, MAX_ID)
    _check_mtime(info)
    if info.ischr() or info.isblk():
        _check_int(info, "devmajor", info.devmajor, 0, MAX_DEV_MAJOR)
        _check_int(info, "devminor", info.devminor, 0, MAX_DEV_MINOR)


def _check_int(info: tarfile.TarInfo, field: str, value: object, low: int, high: int) -> None:
    if not isinstance(value, int) or not low <= value <= high:
        raise bad_entry(info, f"{field} {value!r} is out of range ({low}..{high})")


def _check_mtime(info: tarfile.TarInfo) -> None:
    value = info.mtime
    if isinstance(value, float) and not math.isfinite(value):
        raise bad_entry(info, f"mtime {value!r} is not a number of seconds")
    if not isinstance(value, int | float) or not -_MAX_SECONDS <= value <= _MAX_SECONDS:
        raise bad_entry(info, f"mtime {value!r} is out of range")


def check_xattr(info: tarfile.TarInfo, name: str) -> None:
    if "\x00" in name:
        raise bad_entry(info, f"NUL byte in xattr name {name!r}")


def sparse_regions(info: tarfile.TarInfo, stored: int) -> list[Region]:
    """The data regions of a sparse member, checked; ``stored``: bytes it has in the archive.

    ``info.size`` is the real (expanded) size; holes between regions stay holes on disk.
    """
    regions = cast(list[Region], info.sparse or [])  # typeshed calls it bytes
    if info.size > MAX_SPARSE_SIZE:
        raise bad_entry(info, f"sparse file of {info.size} bytes is larger than the limit "
                              f"of {MAX_SPARSE_SIZE} bytes")
    if len(regions) > MAX_SPARSE_ENTRIES:
        raise bad_entry(info, f"sparse map has {len(regions)} entries (the limit is "
                              f"{MAX_SPARSE_ENTRIES})")
    end = data = 0
    out: list[Region] = []
    for offset, length in regions:
        if not isinstance(offset, int) or not isinstance(length, int) or length < 0:
            raise bad_entry(info, f"sparse map entry ({offset}, {length}) is invalid")
        if length == 0:  # GNU's end marker (size, 0) and unused slots of the old format
            continue
        if offset < 0:
            raise bad_entry(info, f"sparse map entry ({offset}, {length}) is invalid")
        if offset < end:
            raise bad_entry(info, "sparse map entries overlap or are out of order")
        end = offset + length
        if end > info.size:
            raise bad_entry(info, f"sparse map entry ({offset}, {length}) lies beyond the "
                                  f"file's size of {info.size} bytes")
        data += length
        out.append((offset, length))
    if data > stored:
        raise bad_entry(info, f"sparse map refers to {data} bytes of data, the archive holds "
                              f"{stored}")
    return out
