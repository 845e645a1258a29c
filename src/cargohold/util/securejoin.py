"""Resolve paths inside a root directory so that nothing can lead outside of it.

Two layers, following the semantics of cyphar/filepath-securejoin and the kernel's
``openat2(RESOLVE_IN_ROOT)``:

* :func:`secure_join` is the path-string form: every symlink met while walking ``unsafe`` is
  evaluated *as if* ``root`` were ``/`` (absolute targets restart at the root), ``..`` never
  climbs above the root, missing components are taken literally, and more than
  ``MAX_SYMLINKS`` link traversals raise ``ELOOP``.  The result is only as good as the moment
  it was computed: use it for display and for mount destinations, never for writing.
* :func:`open_beneath` / :func:`mkdir_beneath` work on file descriptors and are what writers use.
  ``open_beneath`` asks the kernel (``openat2`` with ``RESOLVE_IN_ROOT``, Linux >= 5.6) and
  falls back to a component walk in Python where every component is opened with
  ``O_PATH | O_NOFOLLOW`` relative to its parent's descriptor, symlinks are read and re-walked
  from the root's descriptor, and ``..`` pops a stack of descriptors instead of asking the
  file system (so it clamps at the root).  The final component is always opened with
  ``O_NOFOLLOW`` after any symlink there was resolved in-root, so a symlink swapped in between
  the check and the open fails with ``ELOOP`` instead of being followed.

Known limit of the fallback (and the reason the kernel path is preferred): a directory that is
*moved* out of the root while a walk holds its descriptor lets that walk continue below the
moved directory.  Nothing here ever climbs to its parent through the file system.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

MAX_SYMLINKS = 255

_SYS_OPENAT2 = 437  # same number on every architecture (asm-generic unified table)
RESOLVE_NO_XDEV = 0x01
RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
RESOLVE_IN_ROOT = 0x10


class _OpenHow(ctypes.Structure):
    _fields_ = [
        ("flags", ctypes.c_uint64),
        ("mode", ctypes.c_uint64),
        ("resolve", ctypes.c_uint64),
    ]


_openat2_state: list[bool] = []  # [] = not probed yet, [True|False] = result
_libc: ctypes.CDLL | None = None


def _get_libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _raw_openat2(dir_fd: int, path: str, flags: int, mode: int, resolve: int) -> int:
    # the kernel wants mode 0 unless a file is created (O_TMPFILE includes O_DIRECTORY)
    creates = flags & os.O_CREAT or (flags & os.O_TMPFILE) == os.O_TMPFILE
    how = _OpenHow(flags | os.O_CLOEXEC, mode if creates else 0, resolve)
    libc = _get_libc()
    libc.syscall.restype = ctypes.c_long
    fd = int(
        libc.syscall(
            ctypes.c_long(_SYS_OPENAT2),
            ctypes.c_int(dir_fd),
            ctypes.c_char_p(os.fsencode(path)),
            ctypes.byref(how),
            ctypes.c_size_t(ctypes.sizeof(how)),
        )
    )
    if fd < 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return fd


def has_openat2() -> bool:
    """Whether this kernel offers ``openat2`` (probed once; seccomp may hide it as ENOSYS)."""
    if not _openat2_state:
        try:
            fd = _raw_openat2(-100, "/", os.O_PATH | os.O_DIRECTORY, 0, 0)  # AT_FDCWD
        except (OSError, AttributeError):
            _openat2_state.append(False)
        else:
            os.close(fd)
            _openat2_state.append(True)
    return _openat2_state[0]


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


# -- path-string form -----------------------------------------------------------------------------


def secure_join(root: str | Path, unsafe: str, max_symlinks: int = MAX_SYMLINKS) -> str:
    """Join ``unsafe`` onto ``root``, evaluating symlinks as if ``root`` were ``/``.

    Returns a host path that is lexically inside ``root``.  Missing components are kept as
    they are (so the result can name something about to be created).
    """
    root_s = os.path.abspath(os.fspath(root))
    resolved: list[str] = []  # components below the root, all existing non-links (or missing)
    pending = _split(unsafe)
    pending.reverse()
    links = 0
    while pending:
        name = pending.pop()
        if name == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = os.path.join(root_s, *resolved, name)
        try:
            st = os.lstat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            resolved.append(name)
            continue
        if not stat.S_ISLNK(st.st_mode):
            resolved.append(name)
            continue
        links += 1
        if links > max_symlinks:
            raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), unsafe)
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        parts = _split(target)
        parts.reverse()
        pending.extend(parts)
    return os.path.join(root_s, *resolved) if resolved else root_s


# -- descriptor form ------------------------------------------------------------------------------


def open_root(root: str | Path) -> int:
    """An ``O_PATH`` descriptor on ``root`` to hand to the ``*_beneath`` helpers."""
    return os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


class _Walk:
    """A stack of ``O_PATH`` directory descriptors from the root down to the current dir."""

    def __init__(self, root_fd: int) -> None:
        self.root_fd = root_fd
        self.stack: list[int] = []

    @property
    def cwd(self) -> int:
        return self.stack[-1] if self.stack else self.root_fd

    def push(self, fd: int) -> None:
        self.stack.append(fd)

    def up(self) -> None:
        if self.stack:
            os.close(self.stack.pop())

    def reset(self) -> None:
        while self.stack:
            os.close(self.stack.pop())

    def take_cwd(self) -> int:
        """Hand the current directory's descriptor to the caller and close the rest."""
        fd = self.stack.pop() if self.stack else os.dup(self.root_fd)
        self.reset()
        return fd


def _walk_to_parent(
    root_fd: int,
    path: str,
    *,
    follow_final: bool,
    mkdirs: bool,
    dir_mode: int = 0o755,
    final_is_dir: bool = False,
    max_symlinks: int = MAX_SYMLINKS,
) -> tuple[int, str]:
    """Resolve all of ``path`` but its final component inside ``root_fd``.

    Returns ``(parent_fd, name)``; the caller owns ``parent_fd``.  ``name`` is "" when the path
    resolves to a directory by itself (``/``, ``a/..``).  With ``follow_final`` a final symlink
    is resolved in-root too (a dangling one leaves the name it points to, for creation).
    ``mkdirs`` creates missing intermediate directories (and the final one if ``final_is_dir``).
    """
    walk = _Walk(root_fd)
    pending = _split(path)
    pending.reverse()
    links = 0
    try:
        while pending:
            name = pending.pop()
            if name == "..":
                walk.up()
                continue
            is_final = not pending
            if is_final and not final_is_dir:
                if not follow_final:
                    return walk.take_cwd(), name
                try:
                    st = os.stat(name, dir_fd=walk.cwd, follow_symlinks=False)
                except FileNotFoundError:
                    return walk.take_cwd(), name
                if not stat.S_ISLNK(st.st_mode):
                    return walk.take_cwd(), name
            try:
                fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=walk.cwd)
            except FileNotFoundError:
                if not mkdirs:
                    raise
                # A concurrent creator may win the race: re-examine what is there now.
                with suppress(FileExistsError):
                    os.mkdir(name, dir_mode, dir_fd=walk.cwd)
                pending.append(name)
                continue
            st = os.fstat(fd)
            if stat.S_ISLNK(st.st_mode):
                os.close(fd)
                links += 1
                if links > max_symlinks:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=walk.cwd)
                if target.startswith("/"):
                    walk.reset()
                parts = _split(target)
                parts.reverse()
                pending.extend(parts)
                continue
            if not stat.S_ISDIR(st.st_mode):
                os.close(fd)
                raise OSError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), path)
            walk.push(fd)
        return walk.take_cwd(), ""
    except BaseException:
        walk.reset()
        raise


def _open_beneath_walk(root_fd: int, relpath: str, flags: int, mode: int) -> int:
    follow = not flags & os.O_NOFOLLOW
    parent, name = _walk_to_parent(root_fd, relpath, follow_final=follow, mkdirs=False)
    try:
        if not name:
            return os.open(".", (flags & ~os.O_CREAT) | os.O_CLOEXEC, mode, dir_fd=parent)
        # Any final symlink was resolved above: never follow one that appeared since.
        return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=parent)
    finally:
        os.close(parent)


def open_beneath(
    root_fd: int, relpath: str, flags: int, mode: int = 0o644, *, use_openat2: bool | None = None
) -> int:
    """``openat`` confined to ``root_fd``: symlinks and ``..`` are resolved inside the root.

    ``relpath`` may be absolute (taken relative to the root).  ``O_NOFOLLOW`` in ``flags``
    applies to the final component as with ``open(2)``; with ``O_CREAT`` a dangling final
    symlink creates its target inside the root.  Magic links (``/proc/self/fd/N``) are refused.
    ``use_openat2`` forces (True) or forbids (False) the kernel path; None picks automatically.
    """
    rel = relpath.lstrip("/") or "."
    kernel = has_openat2() if use_openat2 is None else use_openat2
    if kernel:
        return _raw_openat2(root_fd, rel, flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)
    return _open_beneath_walk(root_fd, rel, flags, mode)


def mkdir_beneath(root_fd: int, relpath: str, mode: int = 0o755) -> int:
    """``mkdir -p`` of ``relpath`` inside the root; returns an ``O_PATH`` fd of the directory.

    Existing symlinks on the way are followed in-root; nothing is created outside the root.
    """
    fd, name = _walk_to_parent(
        root_fd, relpath, follow_final=True, mkdirs=True, dir_mode=mode, final_is_dir=True
    )
    assert name == ""
    return fd


def resolve_parent(root_fd: int, relpath: str, *, mkdirs: bool = False) -> tuple[int, str]:
    """Descriptor of the resolved parent directory of ``relpath`` and its final name.

    The final component is not followed, so the caller can create, replace, ``lstat`` or
    ``unlink`` it with ``dir_fd=`` calls.  The caller closes the returned descriptor.
    """
    return _walk_to_parent(root_fd, relpath, follow_final=False, mkdirs=mkdirs)


@contextmanager
def opened(fd: int) -> Iterator[int]:
    """Close ``fd`` when the block ends."""
    try:
        yield fd
    finally:
        os.close(fd)
