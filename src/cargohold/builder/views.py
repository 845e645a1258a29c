"""What a build mounts for COPY --from and RUN --mount, and how it is thrown away again.

:class:`BuildViews` holds one build's views: read-only rootfs of stages and images (mounted
once per build), throw-away writable ones (``RUN --mount=type=bind,from=X,rw``: a fresh
overlay upper dir, on vfs a copy; ``LayerStore.mount_scratch``) and the context's views.

``RUN --mount=type=bind`` without ``from=`` gets the build context as the build transfers it,
never the user's live directory: an overlay whose lowers are a small whiteout layer (one
whiteout per path .dockerignore excludes; the directories on the way carry the context's own
metadata) over the context directory, read-only without an upper dir, ``rw`` with a fresh
upper dir that goes when the step ends, so writes are allowed and thrown away (BuildKit's
semantics).  The Dockerfile and .dockerignore are in the view unless they are excluded, as in
BuildKit's transferred context.  Where overlay cannot be mounted (no kernel support, no
privileges) a copy of the context minus the excluded paths stands in.

Why an overlay and not a copy (measured here on ext4, 5,000 files / 60 MB in 200 dirs, 200
of them excluded): the first view of a build walks the names (18 ms) and writes the whiteout
layer (~0.19 s), every view then costs 5-20 ms (mount, unmount, removing the upper dir); a copy
(``cp -a``, then the excluded paths removed) took 1.1-12 s per view.

Everything lives in flock-held staging entries under ``<root>/tmp`` (``store/locking.py``), so
the views of a killed build are unmounted and removed by the next store mutation.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from cargohold.builder.context import BuildContext
from cargohold.errors import Internal
from cargohold.store.locking import Staging, umount
from cargohold.util.rmtree import remove_path

if TYPE_CHECKING:
    from cargohold.store.layers import LayerStore


class BuildViews:
    """One build's mounted views; :meth:`close` (the build's end) drops what is left."""

    def __init__(self, layers: LayerStore, context: BuildContext, tmp: Path) -> None:
        self.layers = layers
        self.context = context
        self.tmp = tmp
        self._rootfs: dict[str | None, Path] = {}  # top layer -> its read-only view
        self._context: ContextViews | None = None

    def rootfs(self, top: str | None) -> Path:
        """The read-only merged content of ``top`` (mounted once per build)."""
        if top not in self._rootfs:
            self._rootfs[top] = self.layers.mount_ro(top)
        return self._rootfs[top]

    @contextlib.contextmanager
    def rootfs_view(self, top: str | None, writable: bool) -> Iterator[Path]:
        """``rootfs(top)``, or with ``writable`` a view whose writes go when the block ends."""
        if not writable:
            yield self.rootfs(top)
            return
        path = self.layers.mount_scratch(top)
        try:
            yield path
        finally:
            self.layers.unmount_ro(path)

    def context_view(self, writable: bool) -> contextlib.AbstractContextManager[Path]:
        """The context as transferred (see the module docstring)."""
        if self._context is None:
            self._context = ContextViews(self.context, self.tmp)
        return self._context.view(writable)

    def close(self) -> None:
        try:
            if self._context is not None:
                self._context.close()
        finally:
            for path in self._rootfs.values():
                self.layers.unmount_ro(path)
            self._rootfs.clear()


class ContextViews:
    """Views of one build's context; :meth:`close` drops their shared whiteout layer."""

    def __init__(self, context: BuildContext, tmp: Path) -> None:
        self.context = context
        self.tmp = tmp
        self._excluded: list[tuple[str, bool]] | None = None
        self._whiteouts: Staging | None = None
        self.overlay = os.geteuid() == 0  # mounting needs root; after a failed mount: copies

    def excluded(self) -> list[tuple[str, bool]]:
        if self._excluded is None:
            self._excluded = list(self.context.excluded())
        return self._excluded

    @contextlib.contextmanager
    def view(self, writable: bool) -> Iterator[Path]:
        """The context as transferred; with ``writable`` the step may write, in vain."""
        stage = Staging(self.tmp, "ctxview")
        merged: Path | None = None
        try:
            if self.overlay:
                merged = self._mount(stage.path, writable)
            yield merged if merged is not None else self._copy(stage.path)
        finally:
            if merged is not None:
                umount(merged, detach=True)
                if os.path.ismount(merged):
                    raise Internal(f"could not unmount {merged}")
            stage.close()

    def close(self) -> None:
        if self._whiteouts is not None:
            self._whiteouts.close()
            self._whiteouts = None

    def _mount(self, base: Path, writable: bool) -> Path | None:
        from cargohold.store.drivers.overlay import copy_dir_metadata, mount_overlay

        # lowers by short names relative to ``base``: no length limit, no ':' or ',' to escape
        os.symlink(self.context.root, base / "ctx")
        lowers = ["ctx"]
        whiteouts = self._whiteout_dir()
        if whiteouts is not None:
            os.symlink(whiteouts, base / "wh")
            lowers.insert(0, "wh")
        merged = base / "merged"
        merged.mkdir()
        upper = work = None
        if writable:
            upper, work = base / "upper", base / "work"
            upper.mkdir()
            work.mkdir()
            copy_dir_metadata(self.context.root, upper)
        elif len(lowers) == 1:
            (base / "empty").mkdir()
            lowers.append("empty")  # a mount without an upper dir needs two lowers
        try:
            mount_overlay(base, merged, lowers, upper, work, volatile=True)
        except Internal:
            self.overlay = False
            return None
        return merged

    def _whiteout_dir(self) -> Path | None:
        if self._whiteouts is None:
            excluded = self.excluded()
            if not excluded:
                return None
            stage = Staging(self.tmp, "ctxwh")
            try:
                write_whiteouts(self.context.root, stage.path / "wh", excluded)
            except BaseException:
                stage.close()
                raise
            self._whiteouts = stage
        return self._whiteouts.path / "wh"

    def _copy(self, base: Path) -> Path:
        from cargohold.store.drivers.vfs import copy_tree

        copy = base / "copy"
        copy_tree(self.context.root, copy)
        for rel, kept in self.excluded():
            if not kept:
                remove_path(copy / rel)
        return copy


def write_whiteouts(root: Path, dest: Path, excluded: list[tuple[str, bool]]) -> None:
    """An overlay lower dir hiding ``excluded`` paths of ``root`` (overlay whiteouts: 0/0
    character devices); its directories get the metadata of ``root``'s, which they shadow."""
    dest.mkdir()
    made = {""}

    def ensure(rel: str) -> None:
        if rel in made:
            return
        ensure(posixpath.dirname(rel))
        os.mkdir(dest / rel, 0o700)
        made.add(rel)

    for rel, kept in excluded:
        ensure(posixpath.dirname(rel))
        if kept:
            ensure(rel)
        else:
            os.mknod(dest / rel, stat.S_IFCHR | 0o600, os.makedev(0, 0))
    for rel in sorted(made, reverse=True):  # deepest first: a child's mknod bumps its mtime
        st = os.lstat(root / rel) if rel else os.stat(root)
        target = dest / rel if rel else dest
        if not stat.S_ISDIR(st.st_mode):
            continue  # changed under us; the whiteouts below it hide nothing then
        os.chmod(target, stat.S_IMODE(st.st_mode))
        if os.geteuid() == 0:
            os.chown(target, st.st_uid, st.st_gid)
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
