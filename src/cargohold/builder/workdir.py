"""The working container of a RUN/COPY/ADD step: an rw layer on the parent chain, mounted,
changed, diffed into a registered layer, and always removed (success, failure or Ctrl-C)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import msgspec

if TYPE_CHECKING:
    from cargohold.store.layers import Layer
    from cargohold.transport.local import LocalStores

# where runc creates mount points the image may lack; removed again before the diff
MOUNT_STUBS = ("proc", "sys", "dev", "etc/resolv.conf", "etc/hosts", "etc/hostname", "etc")


class WorkingContainer(msgspec.Struct):
    """An rw layer on ``parent``, mounted while the step writes into it."""

    stores: LocalStores
    parent: str | None
    rw_id: str = msgspec.field(default_factory=lambda: "build-" + secrets.token_hex(8))
    rootfs: Path | None = None
    # image directories the mount points go in (etc): mode, uid, gid, mtime before and after
    # the points were made, names
    stub_parents: dict[str, tuple[int, int, int, int, int, frozenset[str]]] = msgspec.field(
        default_factory=dict)
    untouched: dict[str, tuple[int, int, int, int]] = msgspec.field(default_factory=dict)

    def __enter__(self) -> WorkingContainer:
        layers = self.stores.layers
        layers.create_rw(self.rw_id, self.parent)
        try:
            self.rootfs = layers.mount_rw(self.rw_id)
        except BaseException:
            layers.remove_rw(self.rw_id)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stores.layers.remove_rw(self.rw_id)

    def root_fd(self) -> int:
        assert self.rootfs is not None
        return os.open(self.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)

    def missing_stubs(self) -> list[str]:
        """The mount points runc needs that the image lacks.  Those inside an image directory
        (/etc/hosts...) are made here, so the directory's mtime afterwards tells whether the
        step itself changed it (see :meth:`remove_stubs`)."""
        root_fd = self.root_fd()
        try:
            stubs = [p for p in MOUNT_STUBS if _lstat_in_root(root_fd, p) is None]
        finally:
            os.close(root_fd)
        for parent in {os.path.dirname(p) for p in stubs} - {""} - set(stubs):
            with contextlib.suppress(OSError):
                self._make_stubs(parent, [os.path.basename(p) for p in stubs
                                          if os.path.dirname(p) == parent])
        return stubs

    def _make_stubs(self, parent: str, names: list[str]) -> None:
        root_fd = self.root_fd()
        try:
            fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                         dir_fd=root_fd)
        finally:
            os.close(root_fd)
        try:
            before = os.fstat(fd)
            entries = frozenset(os.listdir(fd))
            for name in names:
                os.close(os.open(name, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, 0o644, dir_fd=fd))
            after = os.fstat(fd).st_mtime_ns
        finally:
            os.close(fd)
        self.stub_parents[parent] = (before.st_mode, before.st_uid, before.st_gid,
                                     before.st_mtime_ns, after, entries)

    def remove_stubs(self, stubs: list[str]) -> None:
        """Drop the mount points (empty dirs and files) so they stay out of the layer.  An image
        directory the step did not touch itself (its mtime is the one the mount points left)
        gets its mtime back and is left out of the diff, as Docker keeps mount points in a
        layer of their own: a RUN that changes nothing makes no layer.  Every path is opened
        from the root without following symlinks (the step may have replaced /etc by one)."""
        root_fd = self.root_fd()
        try:
            untouched = {}
            for rel, (mode, uid, gid, mtime, stubbed, names) in self.stub_parents.items():
                with contextlib.suppress(OSError):
                    st = os.stat(rel, dir_fd=root_fd, follow_symlinks=False)
                    if (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns) == (mode, uid, gid,
                                                                              stubbed):
                        untouched[rel] = (mode, uid, gid, mtime, names)
            for rel in stubs:
                with contextlib.suppress(OSError):
                    _remove_stub(root_fd, rel)
            for rel, (mode, uid, gid, mtime, names) in untouched.items():
                with contextlib.suppress(OSError):
                    fd = os.open(rel, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW
                                 | os.O_CLOEXEC, dir_fd=root_fd)
                    try:
                        if frozenset(os.listdir(fd)) == names:
                            os.utime(fd, ns=(os.fstat(fd).st_atime_ns, mtime))
                            self.untouched[rel] = (mode, uid, gid, mtime)
                    finally:
                        os.close(fd)
        finally:
            os.close(root_fd)

    def commit(self, epoch: int | None) -> Layer | None:
        """Diff the rw layer into a registered layer on ``parent`` (mtimes clamped to epoch);
        None when the step changed nothing (Docker's ``empty_layer``: no layer at all)."""
        from cargohold.transport.local import register_layer

        layers = self.stores.layers
        layers.unmount_rw(self.rw_id)
        if self.untouched:
            layers.rw_prune_dirs(self.rw_id, self.untouched)
        if layers.rw_unchanged(self.rw_id):
            return None
        read_fd, write_fd = os.pipe()
        failure: list[BaseException] = []

        def produce() -> None:
            try:
                with os.fdopen(write_fd, "wb", buffering=1 << 20) as out:
                    if epoch is None:
                        layers.rw_diff(self.rw_id, out)
                    else:
                        _clamped_diff(lambda o: layers.rw_diff(self.rw_id, o), out, epoch)
            except BaseException as exc:
                failure.append(exc)

        worker = threading.Thread(target=produce, daemon=True)
        worker.start()
        try:
            with os.fdopen(read_fd, "rb", buffering=1 << 20) as inp:
                layer = register_layer(self.stores, inp, self.parent)
        finally:
            worker.join()
        if failure:
            raise failure[0]
        return layer


def _lstat_in_root(root_fd: int, rel: str) -> os.stat_result | None:
    """lstat of ``rel`` with the path resolved inside the root (None: missing)."""
    from cargohold.util.securejoin import resolve_parent

    try:
        parent, name = resolve_parent(root_fd, rel)
    except OSError:
        return None
    try:
        return os.stat(name, dir_fd=parent, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(parent)


def _remove_stub(root_fd: int, rel: str) -> None:
    """Remove an empty directory or empty regular file ``rel`` (at most one level deep)."""
    parent, _, name = rel.rpartition("/")
    fd = os.open(parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
                 dir_fd=root_fd) if parent else root_fd
    try:
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            os.rmdir(name, dir_fd=fd)
        elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
            os.unlink(name, dir_fd=fd)
    finally:
        if fd != root_fd:
            os.close(fd)


def _clamped_diff(write: Callable[[BinaryIO], None], out: BinaryIO, epoch: int) -> None:
    """Re-emit a tar stream with every mtime clamped to ``epoch`` (SOURCE_DATE_EPOCH)."""
    read_fd, write_fd = os.pipe()
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with os.fdopen(write_fd, "wb", buffering=1 << 20) as pipe_out:
                write(pipe_out)
        except BaseException as exc:
            failure.append(exc)

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    try:
        with os.fdopen(read_fd, "rb", buffering=1 << 20) as inp:
            clamp_tar(inp, out, epoch)
    finally:
        worker.join()
    if failure:
        raise failure[0]


def clamp_tar(inp: BinaryIO, out: BinaryIO, epoch: int) -> None:
    with tarfile.open(fileobj=inp, mode="r|") as tf:
        for info in tf:
            info.mtime = min(int(info.mtime), epoch)
            info.pax_headers = {
                k: v for k, v in info.pax_headers.items() if k not in ("mtime", "atime", "ctime")
            }
            out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
            if info.isreg() and info.size:
                src = tf.extractfile(info)
                assert src is not None
                shutil.copyfileobj(src, out, 1 << 20)
                if info.size % 512:
                    out.write(bytes(512 - info.size % 512))
    out.write(bytes(1024))
