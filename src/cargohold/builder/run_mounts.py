"""The host side of ``RUN --mount``: what each mount binds, and nothing a step could turn
against the host.

* ``cache``: the id (default: the target, as BuildKit) is a name, never a path: the directory
  is ``<root>/buildcache/mounts/<sha256(id)>``, created and opened through directory fds
  without following symlinks, mode and owner applied to the opened fd.  Only that directory
  is ever mounted, so no step reaches ``mounts/`` or the rest of the build cache, and the path
  handed to runc has no component a step could swap.  ``sharing=locked|private`` are
  honoured across concurrent builds (:func:`_shared_cache`).
* ``bind`` of the context: a view of the context as transferred (``build/context_view.py``).
* ``bind,from=``: a read-only view of the stage or image, or with ``rw`` a throw-away
  writable one (``LayerStore.mount_scratch``); the stored layers are never writable.
* ``secret``: a copy in the step's bundle dir under a name derived from the id.

A step's cache key covers what its binds read (:func:`mount_inputs`), as BuildKit's does.

Views made for a step are released by the step's ``ExitStack`` however it ends.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold.builder.context import BuildContext, ContextError
from cargohold.errors import Internal, InvalidArgument

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from cargohold.builder.instructions import Mount, RunInstruction
    from cargohold.network.store import NetworkStore
    from cargohold.runtime.base import OCIRuntime

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class RunEnv(msgspec.Struct):
    """What a RUN needs from the engine side."""

    runtime: OCIRuntime
    network_store: NetworkStore | None
    runroot: Path
    buildcache: Path  # <root>/buildcache (root-only): cache mounts below its mounts/
    secrets: dict[str, str]  # id -> host file
    # writable -> the build context as transferred (a view, never the live directory)
    context_view: Callable[[bool], AbstractContextManager[Path]]
    # stage/image name, writable -> a rootfs view (writable ones are thrown away)
    image_view: Callable[[str, bool], AbstractContextManager[Path]]


def _open_child(parent_fd: int, name: str, mode: int) -> int:
    """Open (creating it) the directory ``name`` below ``parent_fd``, never through a symlink;
    a symlink or file in its place (planted through an older version's cache mounts) goes."""
    for _ in range(2):
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, mode, dir_fd=parent_fd)
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            os.unlink(name, dir_fd=parent_fd)
    raise Internal(f"cache mount directory {name} keeps being replaced")


def cache_dir(buildcache: Path, cache_id: str, mode: int | None = None,
              uid: int | None = None, gid: int | None = None) -> Path:
    """The host directory of the cache mount ``cache_id`` (see the module docstring)."""
    name = hashlib.sha256(cache_id.encode("utf-8", "surrogateescape")).hexdigest()
    top = os.open(buildcache, _DIR_FLAGS)
    try:
        mounts = _open_child(top, "mounts", 0o700)
    finally:
        os.close(top)
    try:
        os.fchmod(mounts, 0o700)
        fd = _open_child(mounts, name, 0o755)
    finally:
        os.close(mounts)
    try:
        if mode is not None:
            os.fchmod(fd, mode)
        if uid is not None or gid is not None:
            os.fchown(fd, uid or 0, gid or 0)
    finally:
        os.close(fd)
    return buildcache / "mounts" / name


PRIVATE_INSTANCES = 64


def _shared_cache(m: Mount, cache_id: str, buildcache: Path, stack: contextlib.ExitStack
                  ) -> Path:
    """The cache directory for ``m`` as its ``sharing`` asks, across the steps of every
    build at once (threads of one service, or processes): ``shared`` (the default) by all
    together; ``locked`` by one step at a time (the others wait for its lock); ``private``:
    a step that finds it in use gets an instance of its own (kept for later steps).  Locks
    are ``mounts/<name>.lock``, held until the step's ``stack`` closes."""
    from cargohold.util.lockfile import FileLock

    instances = PRIVATE_INSTANCES if m.sharing == "private" else 1
    for n in range(instances):
        path = cache_dir(buildcache, cache_id if n == 0 else f"{cache_id}\0private-{n}",
                         m.mode, m.uid, m.gid)
        if m.sharing not in ("locked", "private"):
            return path
        lock = FileLock(path.with_name(path.name + ".lock"))
        if lock.acquire(blocking=m.sharing == "locked"):
            stack.callback(lock.release)
            return path
    raise Internal(f"cache mount {cache_id}: {instances} private instances are all in use")


def mount_inputs(inst: RunInstruction, context: BuildContext,
                 from_key: Callable[[str], str]) -> list[Any]:
    """What the step's bind mounts read, for its cache key (as BuildKit: the content of the
    context path bound, or the key of the stage or image bound); [] without binds."""
    out: list[Any] = []
    for m in inst.mounts:
        if m.type != "bind":
            continue
        if m.from_:
            out.append(["bind", m.target, "from", from_key(m.from_)])
            continue
        try:
            sources = context.sources(m.source or ".", "RUN --mount")
        except ContextError:
            raise ContextError(_not_found(m)) from None
        out.append(["bind", m.target, "context", context.digest(sources)])
    return out


def _not_found(m: Mount) -> str:
    where = f"stage or image {m.from_}" if m.from_ else "build context"
    return f"failed to mount {m.source or '/'}: not found in the {where}"


def step_mounts(inst: RunInstruction, env: RunEnv, bundle: Path, cwd: str,
                stack: contextlib.ExitStack) -> list[Any]:
    """The spec mounts of the step's ``--mount`` flags; views it makes go with ``stack``."""
    from cargohold.container.spec import Mount as SpecMount

    out = []
    for m in inst.mounts:
        target = m.target if m.target.startswith("/") else os.path.join(cwd, m.target)
        mount = _one_mount(m, target, env, bundle, stack, SpecMount)
        if mount is not None:
            out.append(mount)
    return out


def _one_mount(m: Mount, target: str, env: RunEnv, bundle: Path,
               stack: contextlib.ExitStack, cls: Any) -> Any:
    if m.type == "tmpfs":
        return cls("tmpfs", target, tmpfs_size=m.size_limit or None)
    if m.type == "cache":
        path = _shared_cache(m, m.cache_id or target, env.buildcache, stack)
        return cls("bind", target, str(path), readonly=m.readonly)
    if m.type == "secret":
        return _secret(m, env, bundle, cls)
    if m.type == "bind":
        from cargohold.util.securejoin import secure_join

        if m.from_:
            base = stack.enter_context(env.image_view(m.from_, not m.readonly))
        else:
            base = stack.enter_context(env.context_view(not m.readonly))
        src = secure_join(base, m.source or "/")
        if not os.path.lexists(src):
            raise ContextError(_not_found(m))
        return cls("bind", target, src, readonly=m.readonly)
    raise InvalidArgument(f"RUN --mount=type={m.type} is not supported")


def _secret(m: Mount, env: RunEnv, bundle: Path, cls: Any) -> Any:
    secret_id = m.cache_id or os.path.basename(m.target or m.source)
    src = env.secrets.get(secret_id)
    if src is None:
        if m.required:
            raise InvalidArgument(f"secret {secret_id} not found")
        return None
    dest = m.target or f"/run/secrets/{secret_id}"
    # the id is Dockerfile text: a name derived from it, never a path below the bundle
    name = hashlib.sha256(f"{secret_id}\0{dest}".encode()).hexdigest()[:16]
    data = Path(src).read_bytes()
    fd = os.open(bundle / f"secret-{name}",
                 os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        os.fchmod(fd, m.mode if m.mode is not None else 0o400)
        os.fchown(fd, m.uid or 0, m.gid or 0)
    copy = bundle / f"secret-{name}"
    return cls("bind", dest, str(copy), readonly=True, recursive=False)
