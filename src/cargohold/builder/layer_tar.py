"""COPY/ADD/WORKDIR layers written as a tar straight from their sources: no working container.

The step's layer tar is generated from the context (or a ``--from`` rootfs, a download, an
archive) and piped into ``register_layer``, so every file is written exactly once (by
``apply_layer``) and the layer store records its tar-split for save/push.

The tar is deterministic: entries in the sources' sorted walk order, PAX headers with empty
uname/gname, whole-second mtimes (clamped to SOURCE_DATE_EPOCH when set), no atime/ctime, mode
and owner per ``--chmod``/``--chown``.  The destination is resolved against the parent image
through :class:`ParentView`, which reads the layer chain's diff dirs top-down (overlay
whiteouts and opaque dirs honoured; a vfs layer is already the merged tree), so nothing is
mounted.  Parent directories of the destination are emitted with the parent image's metadata
when they exist there, else created 0755 root.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import posixpath
import stat
import tarfile
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, BinaryIO

import msgspec

from cargohold.builder.context import ContextError, Entry
from cargohold.errors import InvalidArgument
from cargohold.oci.digest import hex_of
from cargohold.store.archive_apply import (
    BLOCK,
    WHITEOUT_PREFIX,
    UnsafeArchive,
    checked_members,
    clean_name,
    open_stream,
    xattrs_of,
)
from cargohold.store.archive_create import exported_xattrs, is_whiteout_device, read_xattrs

if TYPE_CHECKING:
    from cargohold.store.layers import Layer, LayerStore

MAX_SYMLINKS = 40
_OPAQUE = "trusted.overlay.opaque"
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
_FLUSH = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)


# -- the parent image, read from its layers' diff dirs --------------------------------------


class Node(msgspec.Struct, frozen=True):
    """A path in the parent image: ``rel`` resolved (no symlinks on the way), ``st`` None when
    it does not exist, ``host`` the topmost layer's copy, ``dirs`` the layers merged into it."""

    rel: str
    st: os.stat_result | None
    host: str
    dirs: tuple[str, ...]

    @property
    def is_dir(self) -> bool:
        return self.st is not None and stat.S_ISDIR(self.st.st_mode)


class ParentView:
    """Lookups in the merged content of a layer chain without mounting it."""

    def __init__(self, dirs: list[str], overlay: bool) -> None:
        self.dirs = tuple(dirs)  # top first
        self.overlay = overlay
        self._memo: dict[str, Node] = {}

    @classmethod
    def of(cls, layers: LayerStore, top: str | None) -> ParentView:
        if top is None:
            return cls([], False)
        overlay = layers.driver.whiteouts == "overlay"
        if not overlay:  # vfs: each layer's diff dir is the whole tree
            return cls([str(layers.diff_path(top))], False)
        chain = layers.chain(top)
        return cls([str(layers.layout.diff(hex_of(ly.chain_id))) for ly in reversed(chain)], True)

    def _opaque(self, path: str) -> bool:
        try:
            return os.getxattr(path, _OPAQUE, follow_symlinks=False) == b"y"
        except OSError:
            return False

    def _child(self, parent: Node, name: str) -> Node:
        rel = f"{parent.rel}/{name}" if parent.rel else name
        found: os.stat_result | None = None
        host = ""
        below: list[str] = []
        for d in parent.dirs:
            path = os.path.join(d, rel)
            try:
                st = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if self.overlay and is_whiteout_device(st):
                break
            is_dir = stat.S_ISDIR(st.st_mode)
            if found is None:
                found, host = st, path
            elif not is_dir:
                break
            if not is_dir:
                break
            below.append(d)
            if self.overlay and self._opaque(path):
                break
        return Node(rel, found, host, tuple(below))

    def root(self) -> Node:
        st = os.stat(self.dirs[0]) if self.dirs else None
        return Node("", st, self.dirs[0] if self.dirs else "", self.dirs)

    def resolve(self, path: str, follow_final: bool = True) -> Node:
        """``path`` with symlinks evaluated inside the image (absolute targets restart at its
        root, ``..`` stops there); missing components are kept as they are."""
        todo = [p for p in path.split("/") if p and p != "."]
        stack = [self.root()]
        links = 0
        while todo:
            part = todo.pop(0)
            if part == "..":
                if len(stack) > 1:
                    stack.pop()
                continue
            parent = stack[-1]
            if parent.st is not None and not parent.is_dir:
                raise ContextError(f"cannot copy to {path}: /{parent.rel} is not a directory")
            node = self._child(parent, part)
            if node.st is not None and stat.S_ISLNK(node.st.st_mode) and (todo or follow_final):
                links += 1
                if links > MAX_SYMLINKS:
                    raise ContextError(f"too many levels of symbolic links: {path}")
                target = os.readlink(node.host)
                if target.startswith("/"):
                    del stack[1:]
                todo = [p for p in target.split("/") if p and p != "."] + todo
                continue
            stack.append(node)
        return stack[-1]

    def lookup(self, rel: str) -> Node:
        """A symlink-free ``rel`` (memoised: the parents of every destination)."""
        node = self._memo.get(rel)
        if node is None:
            parent = self.lookup(posixpath.dirname(rel)) if rel else None
            node = self.root() if parent is None else self._child(parent, posixpath.basename(rel))
            self._memo[rel] = node
        return node

    def read_file(self, path: str, limit: int = 16 << 20) -> bytes | None:
        try:
            node = self.resolve(path)
        except ContextError:
            return None
        if node.st is None or not stat.S_ISREG(node.st.st_mode):
            return None
        with open(node.host, "rb") as f:
            return f.read(limit)


MAX_ID = 2**32 - 2  # uid_t/gid_t; (uid_t)-1 means "leave unchanged" to chown(2)


def is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def lookup_id(name: str, entries: list, kind: str) -> int:  # type: ignore[type-arg]
    """A --chown user or group: a number, or a name from the image's passwd/group file."""
    if is_number(name):
        value = int(name)
    else:
        found = [e for e in entries if e.name == name]
        if not found:
            raise InvalidArgument(f"unable to convert {kind} {name} to a number: no such {kind}")
        value = int(found[0].uid if kind == "user" else found[0].gid)
    if not 0 <= value <= MAX_ID:
        raise InvalidArgument(f'unable to convert {kind} {name} to a number: strconv.ParseUint: '
                              f'parsing "{value}": value out of range')  # fmt: skip
    return value


def resolve_chown(spec: str, view: ParentView) -> tuple[int, int]:
    """--chown user[:group] with names looked up in the parent's /etc/passwd and /etc/group;
    without a group a uid is also the gid and a user name brings its passwd group (BuildKit;
    the classic builder looks for a group of the user's name and fails without one)."""
    from cargohold.container.users import parse_group, parse_passwd

    user, _, group = spec.partition(":")
    passwd = [] if is_number(user) else parse_passwd(view.read_file("/etc/passwd"))
    uid = lookup_id(user, passwd, "user")
    if not group:
        entry = next((p for p in passwd if p.name == user), None)
        return uid, entry.gid if entry is not None else uid
    groups = [] if is_number(group) else parse_group(view.read_file("/etc/group"))
    return uid, lookup_id(group, groups, "group")


def resolve_user(spec: str, view: ParentView) -> tuple[int, int]:
    """The uid/gid of a USER value (for WORKDIR's directory)."""
    from cargohold.container.users import parse_group, parse_passwd
    from cargohold.container.users import resolve_user as resolve

    if not spec:
        return 0, 0
    user = resolve(spec, parse_passwd(view.read_file("/etc/passwd")),
                   parse_group(view.read_file("/etc/group")))
    return user.uid, user.gid


# -- writing the tar --------------------------------------------------------------------------


class Rules(msgspec.Struct, frozen=True):
    """Owner, mode and time rules of the copied entries."""

    uid: int | None = None  # --chown; None: 0 (context) or the source's (--from)
    gid: int | None = None
    mode: int | None = None  # --chmod
    keep_owner: bool = False
    epoch: int | None = None

    def ids(self, st: os.stat_result) -> tuple[int, int]:
        if self.uid is not None:
            return self.uid, self.gid if self.gid is not None else 0
        if self.keep_owner:
            return st.st_uid, st.st_gid
        return 0, 0

    def mtime(self, seconds: int) -> int:
        return min(seconds, self.epoch) if self.epoch is not None else seconds

    def made_ids(self) -> tuple[int, int]:
        """The owner of directories a copy creates itself: --chown's, else root."""
        if self.uid is not None:
            return self.uid, self.gid if self.gid is not None else 0
        return 0, 0


class LayerTar:
    """Emits a layer tar onto a file descriptor (a pipe); file content goes by sendfile."""

    def __init__(self, fd: int, view: ParentView, now: int, epoch: int | None) -> None:
        self.fd = fd
        self.view = view
        self.epoch = epoch
        self.now = min(now, epoch) if epoch is not None else now
        self.buf = bytearray()
        self.links: dict[tuple[int, int], str] = {}
        self.emitted: set[str] = set()  # directories already in the tar
        # (mode, uid, gid) of the directories a step creates: COPY --chown's owner (Docker's
        # MkdirAllAndChownNew), else root
        self.new_dirs: tuple[int, int, int] = (0o755, 0, 0)

    # -- raw output ----------------------------------------------------------------------------

    def flush(self) -> None:
        with memoryview(self.buf) as view:
            done = 0
            while done < len(view):
                done += os.write(self.fd, view[done:])
        self.buf.clear()

    def header(self, info: tarfile.TarInfo) -> None:
        self.buf += info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
        if len(self.buf) >= _FLUSH:
            self.flush()

    def _pad(self, size: int) -> None:
        if size % BLOCK:
            self.buf += bytes(BLOCK - size % BLOCK)

    def content_file(self, path: str, size: int) -> None:
        """Exactly ``size`` bytes of ``path`` (zero-filled if it shrank), then padding."""
        self.flush()
        src = os.open(path, _READ_FLAGS)
        try:
            offset = 0
            while offset < size:
                try:
                    sent = os.sendfile(self.fd, src, offset, min(size - offset, 1 << 30))
                except OSError as exc:
                    if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                        raise
                    sent = self._copy_slow(src, offset, size - offset)
                if sent == 0:
                    self.buf += bytes(size - offset)
                    break
                offset += sent
        finally:
            os.close(src)
        self._pad(size)

    def _copy_slow(self, src: int, offset: int, count: int) -> int:
        data = os.pread(src, min(count, 1 << 20), offset)
        self.buf += data
        self.flush()
        return len(data)

    def content_stream(self, stream: BinaryIO, size: int) -> None:
        left = size
        while left:
            chunk = stream.read(min(left, 1 << 20))
            if not chunk:
                self.buf += bytes(left)
                break
            self.buf += chunk
            left -= len(chunk)
            if len(self.buf) >= _FLUSH:
                self.flush()
        self._pad(size)

    def finish(self) -> None:
        self.buf += bytes(2 * BLOCK)
        self.flush()

    # -- directories -------------------------------------------------------------------------

    def _dir_info(self, rel: str, mode: int, uid: int, gid: int, mtime: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(rel)
        info.type = tarfile.DIRTYPE
        info.mode, info.uid, info.gid, info.mtime = mode, uid, gid, mtime
        return info

    def ensure_dir(self, rel: str, created: tuple[int, int, int] | None = None) -> None:
        """``rel`` and its parents in the tar: the parent image's metadata where they exist,
        else ``created`` (mode, uid, gid; default ``new_dirs``) with the step's time."""
        if not rel or rel in self.emitted:
            return
        created = created or self.new_dirs
        self.ensure_dir(posixpath.dirname(rel), created)
        node = self.view.lookup(rel)
        if node.is_dir:
            assert node.st is not None
            st = node.st
            mtime = st.st_mtime_ns // 1_000_000_000
            if self.epoch is not None:
                mtime = min(mtime, self.epoch)
            info = self._dir_info(rel, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, mtime)
            info.pax_headers = {
                "SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                for k, v in exported_xattrs(read_xattrs(node.host)).items()
            }
        else:
            mode, uid, gid = created
            info = self._dir_info(rel, mode, uid, gid, self.now)
        self.header(info)
        self.emitted.add(rel)

    # -- entries -------------------------------------------------------------------------------

    def entry(self, name: str, path: str, st: os.stat_result, rules: Rules) -> bool:
        """One context (or --from) entry at ``name``; False when its type is skipped."""
        info = tarfile.TarInfo(name)
        mode = st.st_mode
        info.uid, info.gid = rules.ids(st)
        info.mtime = rules.mtime(st.st_mtime_ns // 1_000_000_000)
        info.mode = rules.mode if rules.mode is not None else stat.S_IMODE(mode)
        if stat.S_ISREG(mode):
            if st.st_nlink > 1:
                key = (st.st_dev, st.st_ino)
                first = self.links.get(key)
                if first is not None:
                    info.type, info.linkname = tarfile.LNKTYPE, first
                    self.header(info)
                    return True
                self.links[key] = name
            info.size = st.st_size
            self.header(info)
            if st.st_size:
                self.content_file(path, st.st_size)
            return True
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
            self.header(info)
            self.emitted.add(name)
            return True
        if stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
            info.mode = 0o777
            self.header(info)
            return True
        return False  # sockets, fifos and devices in a context are skipped as Docker does

    def data(self, name: str, data: bytes | str, size: int, mode: int, mtime: int,
             rules: Rules) -> None:
        """A file from bytes or from a host path (inline heredoc, downloaded URL)."""
        info = tarfile.TarInfo(name)
        info.uid, info.gid = (rules.uid or 0,
                              rules.gid if rules.gid is not None else (rules.uid or 0))
        info.mode = rules.mode if rules.mode is not None else mode
        info.mtime = rules.mtime(mtime)
        info.size = size
        self.header(info)
        if isinstance(data, bytes):
            self.buf += data
            self._pad(size)
        elif size:
            self.content_file(data, size)

    def tree(self, entries: Iterable[Entry], target: str, rules: Rules) -> None:
        """A directory source's entries below ``target`` (its own entry ``rel == ""`` names
        the target dir: kept as the image has it, else created with the source's metadata)."""
        written = {""}
        implicit: set[str] = set()
        made = (0o755, *rules.made_ids())
        for e in entries:
            if e.rel == "":
                if target and target not in self.emitted:
                    self.ensure_dir(posixpath.dirname(target))
                    # a new destination is made 0755 (owned by --chown), not the source's
                    # mode: Docker's CopyWithTar, BuildKit alike
                    self.ensure_dir(target, made)
                continue
            parent = posixpath.dirname(e.rel)
            if e.implicit:
                if parent in written or parent in implicit:
                    implicit.add(e.rel)
                continue
            if parent not in written:
                if parent not in implicit:
                    continue  # below an excluded directory
                self._implicit_parents(target, parent, written, implicit, made)
            name = f"{target}/{e.rel}" if target else e.rel
            if self.entry(name, e.path, e.st, rules) and stat.S_ISDIR(e.st.st_mode):
                written.add(e.rel)

    def _implicit_parents(self, target: str, rel: str, written: set[str], implicit: set[str],
                          made: tuple[int, int, int]) -> None:
        """The ignored directories above an exception, as Docker's daemon recreates them."""
        chain = []
        while rel not in written and rel in implicit:
            chain.append(rel)
            rel = posixpath.dirname(rel)
        for rel in reversed(chain):
            name = f"{target}/{rel}" if target else rel
            self.header(self._dir_info(name, *made, self.now))
            self.emitted.add(name)
            written.add(rel)

    def archive(self, stream: BinaryIO, target: str, rules: Rules) -> None:
        """ADD of a local archive: its entries re-emitted below ``target`` with their own owners
        (Docker applies --chown to copied files, never to an archive's content).

        Names are cleaned as apply_layer does (``..`` escapes refused); an entry below a
        symlink (the archive's own, or the image's where the archive has no directory) is
        refused, as is a hard link out of the archive."""
        symlinks: set[str] = set()
        own_dirs: set[str] = set()
        with open_stream(stream) as tf:
            for info in checked_members(tf):  # mtime nan, uid -5, ... refused by name
                rel = clean_name(info.name)
                if rel == "":
                    continue
                name = f"{target}/{rel}" if target else rel
                self._archive_parents(info.name, name, target, symlinks, own_dirs)
                out = tarfile.TarInfo(name)
                out.type = info.type
                out.mode = 0o777 if info.issym() else info.mode & 0o7777
                out.uid, out.gid = info.uid, info.gid  # ADD --chown leaves archives as they are
                out.mtime = rules.mtime(int(info.mtime))
                out.devmajor, out.devminor = info.devmajor, info.devminor
                out.pax_headers = {
                    "SCHILY.xattr." + k: v.decode("utf-8", "surrogateescape")
                    for k, v in xattrs_of(info).items()
                }
                base = posixpath.basename(rel)
                if base.startswith(WHITEOUT_PREFIX):
                    out.type, out.mode = tarfile.REGTYPE, 0o600
                    self.header(out)
                    continue
                if info.islnk():
                    link = clean_name(info.linkname)
                    if not link or any(link == s or link.startswith(s + "/") for s in symlinks):
                        raise UnsafeArchive(f"unsafe tar entry {info.name!r}: hard link target "
                                            f"{info.linkname!r}")
                    out.linkname = f"{target}/{link}" if target else link
                elif info.issym():
                    out.linkname = info.linkname
                    symlinks.add(name)
                elif info.isdir():
                    own_dirs.add(name)
                    symlinks.discard(name)
                    self.emitted.add(name)
                if info.isreg():
                    out.size = info.size
                    self.header(out)
                    body = tf.extractfile(info)
                    assert body is not None
                    self.content_stream(body, info.size)  # type: ignore[arg-type]
                else:
                    self.header(out)

    def _archive_parents(self, entry: str, name: str, target: str, symlinks: set[str],
                         own_dirs: set[str]) -> None:
        parent = posixpath.dirname(name)
        probe = parent
        while probe and probe != target:
            if probe in symlinks:
                raise UnsafeArchive(f"unsafe tar entry {entry!r}: path component {probe!r} is a "
                                    "symbolic link")
            if probe not in own_dirs and probe not in self.emitted:
                node = self.view.lookup(probe)
                if node.st is not None and stat.S_ISLNK(node.st.st_mode):
                    raise UnsafeArchive(f"unsafe tar entry {entry!r}: path component {probe!r} "
                                        "is a symbolic link in the image")
            probe = posixpath.dirname(probe)
        self.ensure_dir(parent)


# -- registering ------------------------------------------------------------------------------


def register_tar(register: Callable[[BinaryIO], Layer], view: ParentView, now: int,
                 epoch: int | None, emit: Callable[[LayerTar], None]) -> Layer:
    """Run ``emit`` in a thread writing the layer tar into a pipe that ``register`` (the
    layer store's ``register_layer`` on the parent) applies; the producer's own error wins
    over the broken stream it leaves behind."""
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):  # a bigger pipe: fewer wake-ups per MB
        fcntl.fcntl(write_fd, _F_SETPIPE_SZ, 1 << 20)
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            tar = LayerTar(write_fd, view, now, epoch)
            emit(tar)
            tar.finish()
        except BaseException as exc:
            failure.append(exc)
            # make sure the reader fails too (an empty stream would be a valid empty layer)
            with contextlib.suppress(OSError):
                os.write(write_fd, b"\xff" * BLOCK)
        finally:
            os.close(write_fd)

    worker = threading.Thread(target=produce, name="layer-tar", daemon=True)
    worker.start()
    try:
        with os.fdopen(read_fd, "rb", buffering=1 << 20) as inp:
            layer = register(inp)
    except BaseException:
        worker.join()
        if failure and not isinstance(failure[0], BrokenPipeError):
            raise failure[0] from None
        raise
    worker.join()
    if failure:
        raise failure[0]
    return layer
