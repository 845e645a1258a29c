"""The working container of a RUN/COPY/ADD step: an rw layer on the parent chain, mounted,
changed, diffed into a registered layer, and always removed (success, failure or Ctrl-C)."""

from __future__ import annotations

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
        root_fd = self.root_fd()
        try:
            return [p for p in MOUNT_STUBS if _lstat_in_root(root_fd, p) is None]
        finally:
            os.close(root_fd)

    def remove_stubs(self, stubs: list[str]) -> None:
        """Drop mount points runc created (empty dirs and files) so they stay out of the layer.

        The step may have replaced a directory on the way with a symlink: every path is
        resolved inside the rootfs, never on the host."""
        from cargohold.util.securejoin import resolve_parent

        root_fd = self.root_fd()
        try:
            for rel in stubs:
                try:
                    parent, name = resolve_parent(root_fd, rel)
                except OSError:
                    continue
                try:
                    st = os.stat(name, dir_fd=parent, follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        os.rmdir(name, dir_fd=parent)
                    elif stat.S_ISREG(st.st_mode) and st.st_size == 0:
                        os.unlink(name, dir_fd=parent)
                except OSError:
                    continue
                finally:
                    os.close(parent)
        finally:
            os.close(root_fd)

    def commit(self, epoch: int | None) -> Layer:
        """Diff the rw layer into a registered layer on ``parent`` (mtimes clamped to epoch)."""
        from cargohold.transport.local import register_layer

        layers = self.stores.layers
        layers.unmount_rw(self.rw_id)
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
