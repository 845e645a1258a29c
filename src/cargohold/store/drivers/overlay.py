"""The overlay driver: layers are kernel overlayfs lower dirs, containers get upper dirs.

Each layer's ``diff/`` holds only that layer's changes, with deletions as overlay
whiteouts (0/0 character devices, ``trusted.overlay.opaque``).  Mount data must fit in one
page, so every layer also gets a short symlink ``layers/l/<26 hex>`` and we mount with paths
relative to ``layers/`` after a ``chdir`` (as containers/storage does).  Mounts use
``index=off,redirect_dir=off,metacopy=off`` so an upper dir is a plain diff.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import stat
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from cargohold.errors import Internal, InvalidArgument
from cargohold.store.drivers.base import Layout, Whiteouts
from cargohold.store.locking import libc, umount
from cargohold.util import fdtree

MS_RDONLY = 1
LINK_LEN = 26
OPTIONS = "index=off,redirect_dir=off,metacopy=off"
_PAGE = os.sysconf("SC_PAGE_SIZE")
_CWD_LOCK = threading.Lock()
_OPAQUE = "trusted.overlay.opaque"


def link_name(chain_hex: str) -> str:
    return chain_hex[:LINK_LEN]


def mount_overlay(
    layers_dir: Path,
    target: Path,
    lowers: Sequence[str],
    upper: Path | None = None,
    work: Path | None = None,
    volatile: bool = False,
) -> None:
    """Mount overlayfs at ``target``; ``lowers`` are paths relative to ``layers_dir``.

    ``volatile`` (Linux 5.10+, falls back to a plain mount): no sync of the upper file system,
    neither on fsync nor on unmount (which otherwise syncs the whole upper file system, 20-80 ms
    on a busy disk).  Only for upper dirs that are discarded after use."""
    data = "lowerdir=" + ":".join(lowers)
    if upper is not None and work is not None:
        data += f",upperdir={os.path.relpath(upper, layers_dir)}"
        data += f",workdir={os.path.relpath(work, layers_dir)}"
    data += "," + OPTIONS
    raw = data.encode()
    if len(raw) + len(",volatile") >= _PAGE:
        raise InvalidArgument(
            f"overlay mount data too long ({len(raw)} bytes, {len(lowers)} layers)"
        )
    flags = 0 if upper is not None else MS_RDONLY
    dest = os.fsencode(str(target.resolve()))
    with _in_directory(layers_dir):
        rc = -1
        if volatile and upper is not None:
            rc = libc().mount(b"overlay", dest, b"overlay", flags, raw + b",volatile")
        if rc != 0:
            rc = libc().mount(b"overlay", dest, b"overlay", flags, raw)
    if rc != 0:
        err = ctypes.get_errno()
        raise Internal(f"mounting overlay at {target}: {os.strerror(err)}")


@contextlib.contextmanager
def _in_directory(path: Path) -> Iterator[None]:
    """chdir for the duration of a mount call; the process cwd is shared, hence the lock."""
    with _CWD_LOCK:
        try:
            saved: int | None = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            saved = None
        os.chdir(path)
        try:
            yield
        finally:
            if saved is not None:
                os.fchdir(saved)
                os.close(saved)
            else:
                os.chdir("/")


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _opaque_fd(fd: int) -> bool:
    try:
        return os.getxattr(fd, _OPAQUE) == b"y"
    except OSError:
        return False


class OverlayDriver:
    name = "overlay"
    whiteouts: Whiteouts = "overlay"

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    # layers ---------------------------------------------------------------------------

    def init_layer(self, diff: Path, parent: str | None) -> None:
        diff.mkdir(exist_ok=True)

    def _link_dir(self) -> Path:
        return self.layout.layers / "l"

    def layer_created(self, chain_hex: str) -> None:
        link = self._link_dir() / link_name(chain_hex)
        if os.path.lexists(link):
            return
        self._link_dir().mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            os.symlink(f"../{chain_hex}/diff", link)

    def layer_removed(self, chain_hex: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._link_dir() / link_name(chain_hex))

    def layer_diff(self, chain_hex: str, parent: str | None, out: BinaryIO) -> None:
        from cargohold.store import archive

        archive.write_layer_from_upper(self.layout.diff(chain_hex), out)

    def _lower_arg(self, lowers: Sequence[str]) -> list[str]:
        for chain_hex in lowers:
            self.layer_created(chain_hex)  # repairs a link lost to a crash
        return [f"l/{link_name(h)}" for h in lowers]

    # containers -------------------------------------------------------------------------

    def create_rw(self, rw_dir: Path, lowers: Sequence[str]) -> None:
        for sub in ("upper", "work", "merged"):
            (rw_dir / sub).mkdir(exist_ok=True)
        os.chmod(rw_dir / "upper", 0o755)

    def mount_rw(self, rw_dir: Path, lowers: Sequence[str], volatile: bool = False) -> Path:
        merged = rw_dir / "merged"
        if os.path.ismount(merged):
            return merged
        self.layout.empty  # noqa: B018 - makes sure it exists
        args = self._lower_arg(lowers) or [".empty"]
        mount_overlay(
            self.layout.layers, merged, args, rw_dir / "upper", rw_dir / "work", volatile
        )
        return merged

    def unmount_rw(self, rw_dir: Path) -> None:
        merged = rw_dir / "merged"
        if os.path.ismount(merged):
            umount(merged, detach=True)

    def rw_diff(self, rw_dir: Path, lowers: Sequence[str], out: BinaryIO) -> None:
        from cargohold.store import archive

        archive.write_layer_from_upper(rw_dir / "upper", out)

    def rw_changes(self, rw_dir: Path, lowers: Sequence[str]) -> list[tuple[str, str]]:
        diffs = [self.layout.diff(h) for h in lowers]
        return sorted(_upper_changes(rw_dir / "upper", diffs), key=lambda c: c[1])

    def rw_unchanged(self, rw_dir: Path, lowers: Sequence[str]) -> bool:
        with os.scandir(rw_dir / "upper") as it:
            return next(it, None) is None

    def rw_prune_dirs(self, rw_dir: Path, dirs: dict[str, tuple[int, int, int, int]]) -> None:
        upper = rw_dir / "upper"
        for rel in sorted(dirs, key=lambda r: -r.count("/")):  # deepest first
            path = upper / rel
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                continue
            same = (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns) == dirs[rel]
            if not same or not stat.S_ISDIR(st.st_mode) or is_opaque(path):
                continue
            with contextlib.suppress(OSError):  # not empty: a real change stays
                os.rmdir(path)

    def rw_size(self, rw_dir: Path, lowers: Sequence[str]) -> int:
        top = fdtree.open_dir(rw_dir / "upper")
        try:
            return sum(n.st.st_size for n in fdtree.walk(top) if stat.S_ISREG(n.st.st_mode))
        finally:
            os.close(top)

    def mount_ro(self, lowers: Sequence[str], target: Path) -> Path:
        self.layout.empty  # noqa: B018 - makes sure it exists
        args = [*self._lower_arg(lowers), ".empty"]
        if len(args) < 2:
            args.append(".empty")
        mount_overlay(self.layout.layers, target, args)
        return target

    def unmount_ro(self, target: Path) -> None:
        if os.path.ismount(target):
            umount(target, detach=True)

    def mount_scratch(self, lowers: Sequence[str], stage: Path) -> Path:
        """The chain as lowers under a fresh upper dir in ``stage`` (volatile: it is thrown
        away); the upper's root takes the top layer's root metadata, as a merged root does."""
        for sub in ("upper", "work", "merged"):
            (stage / sub).mkdir(exist_ok=True)
        copy_dir_metadata(self.layout.diff(lowers[0]) if lowers else None, stage / "upper")
        self.layout.empty  # noqa: B018 - makes sure it exists
        args = self._lower_arg(lowers) or [".empty"]
        mount_overlay(self.layout.layers, stage / "merged", args, stage / "upper",
                      stage / "work", volatile=True)
        return stage / "merged"


def copy_dir_metadata(source: Path | None, dest: Path) -> None:
    """Give ``dest`` the mode and owner of ``source`` (None: 0755 root, an empty image's)."""
    st = os.stat(source) if source is not None else None
    os.chmod(dest, stat.S_IMODE(st.st_mode) if st is not None else 0o755)
    if st is not None and os.geteuid() == 0:
        os.chown(dest, st.st_uid, st.st_gid)


def _upper_changes(upper: Path, lowers: list[Path]) -> list[tuple[str, str]]:
    """Walk an upper dir (by descriptors: the container may be changing it): whiteouts are
    deletions, entries shadowing lower ones changes.  The lower layers are read by path:
    they are the store's own, never written by a container."""
    out: list[tuple[str, str]] = []
    hidden_below: dict[str, bool] = {"": False}  # dir -> nothing below it exists in a lower
    top = fdtree.open_dir(upper)
    try:
        for node in fdtree.walk(top):
            path = "/" + node.rel
            if is_whiteout(node.st):
                out.append(("D", path))
                continue
            hidden = hidden_below[node.rel.rpartition("/")[0]]
            existed = not hidden and in_lowers(lowers, node.rel.split("/"))
            out.append(("C" if existed else "A", path))
            if node.fd >= 0:
                hidden_below[node.rel] = hidden or not existed or _opaque_fd(node.fd)
    finally:
        os.close(top)
    return out


def in_lowers(lowers: list[Path], parts: list[str]) -> bool:
    """Whether ``parts`` exists in the merged view of ``lowers`` (top first)."""
    for diff in lowers:
        found = _lookup(diff, parts)
        if found is not None:
            return found
    return False


def _lookup(diff: Path, parts: list[str]) -> bool | None:
    """True/False if this layer decides the path's existence, None if it says nothing."""
    cur = diff
    opaque_above = False
    for i, part in enumerate(parts):
        cur = cur / part
        try:
            st = os.lstat(cur)
        except FileNotFoundError:
            return False if opaque_above else None
        if is_whiteout(st):
            return False
        if i == len(parts) - 1:
            return True
        if not stat.S_ISDIR(st.st_mode):
            return False  # a non-directory here hides everything below it
        opaque_above = opaque_above or is_opaque(cur)
    return None
