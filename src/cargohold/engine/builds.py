"""BuildService: ``build`` wired to the engine's stores, runtime, networks and pull."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from cargohold.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from cargohold.build.executor import Backend, BuildOptions
    from cargohold.build.progress import Progress
    from cargohold.engine import Engine
    from cargohold.engine.prune_filters import PruneFilters
    from cargohold.engine.reports import DiskUsage
    from cargohold.transport.registry.events import Event, ProgressFn


class BuildService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- callbacks handed to the executor ----------------------------------------------------

    def _resolve(self, name: str) -> tuple[str, dict[str, Any], str | None]:
        record = self.engine.images.resolve(name)
        return record.id, self.engine.image_store.config(record.id), record.top_layer

    def _pull(self, name: str) -> None:
        """FROM of an image that is missing (or ``build --pull``): pull it now."""
        self.engine.registry.ensure(name, "always")

    def _tag(self, image_id: str, name: str) -> str:
        from cargohold.oci.reference import parse_reference

        ref = str(parse_reference(name).with_default_tag())
        store = self.engine.image_store
        if ref not in store.get(image_id).repo_tags:
            store.tag(image_id, ref)
        self.engine.images.emit(image_id, parse_reference(ref).familiar(), "tag", image_id)
        return ref

    def backend(self) -> Backend:
        from cargohold.build.executor import Backend

        e = self.engine
        return Backend(
            stores=e.stores,
            root=e.settings.root,
            runroot=e.settings.runroot,
            resolve_image=self._resolve,
            pull_image=self._pull,
            tag_image=self._tag,
            runtime=lambda: e.runtime,
            network_store=lambda: e.network_store,
        )

    # -- build -------------------------------------------------------------------------------

    def build(
        self,
        source: str,
        options: BuildOptions,
        progress_out: TextIO,
        progress_mode: str = "plain",
        quiet: bool = False,
        stdin: BinaryIO | None = None,
    ) -> str:
        """Build from a context directory, a tarball, a URL or ``-`` (stdin); returns the id."""
        from cargohold.build import entitlements
        from cargohold.build.cache import buildcache_dir
        from cargohold.build.context import BuildContext, StatCache
        from cargohold.build.executor import Executor
        from cargohold.build.progress import Progress
        from cargohold.build.workdir import interrupts_as_errors
        from cargohold.oci.reference import parse_reference

        for tag in options.tags:
            ref = parse_reference(tag)
            if ref.digest:
                raise InvalidArgument(f"invalid reference format: {tag}")
        entitlements.validate(options.allow)
        stdin_text = None
        if options.dockerfile == "-":  # ``-f -``: the Dockerfile on stdin, the context elsewhere
            if source == "-":
                raise InvalidArgument(
                    "invalid argument: can't use stdin for both build context and dockerfile"
                )
            stdin_text = (stdin or _stdin()).read().decode("utf-8", "surrogateescape")
        progress = Progress(progress_out, progress_mode, quiet)
        root = self.engine.settings.root
        buildcache_dir(root)  # root-only, also on a store an older version made 0755
        # the pulls of FROM become notes of its step: lines of their own on the same terminal
        # would be overwritten by the next frame of the redrawn block (plain mode keeps them)
        pull_progress = self.engine.pull_progress
        if progress.display is not None:
            self.engine.pull_progress = pull_notes(progress)
        try:
            with interrupts_as_errors(), self._context_dir(source, stdin) as found:
                ctx_dir, text, tmp = found
                stats = None if tmp else StatCache(root / "buildcache" / "statcache.json")
                context = BuildContext(ctx_dir, stats)
                if stdin_text is not None:
                    text = stdin_text
                if text is None:
                    text, name = context.read_dockerfile(options.dockerfile)
                else:
                    name = "Dockerfile"
                executor = Executor(self.backend(), options, context, progress)
                return executor.build(text, name)
        finally:
            self.engine.pull_progress = pull_progress
            # however the build ended: the TTY block's last frame, its ticker stopped, so
            # that the caller's ERROR line goes below the block
            progress.finish()

    @contextlib.contextmanager
    def _context_dir(
        self, source: str, stdin: BinaryIO | None
    ) -> Iterator[tuple[Path, str | None, bool]]:
        """(context dir, Dockerfile text if it came with the source, is it temporary).

        A local directory is used in place; stdin (``-``), a tarball, an http(s) tarball or
        Dockerfile and a git repository (``build/git_context.py``) are unpacked or cloned into
        a temporary directory under ``buildcache/contexts`` that goes when the build ends."""
        if (
            source != "-"
            and not source.startswith(("http://", "https://"))
            and os.path.isdir(source)
        ):
            yield Path(source), None, False
            return
        from cargohold.build import git_context
        from cargohold.build.cache import private_dir
        from cargohold.build.context import extract_context

        git = git_context.parse_git_url(source) if git_context.is_git_url(source) else None
        tmp_parent = private_dir(self.engine.settings.root, "contexts")
        tmp = Path(tempfile.mkdtemp(prefix="build-context-", dir=tmp_parent))
        try:
            ctx = tmp / "context"
            text: str | None = None
            if source == "-":
                text = extract_context(stdin or _stdin(), ctx)
            elif git is not None:
                ctx = git_context.clone(git, ctx)
            elif source.startswith(("http://", "https://")):
                from cargohold.transport.http import open_url

                with open_url(source) as body:
                    text = extract_context(body, ctx)
            elif os.path.isfile(source):
                with open(source, "rb") as f:
                    text = extract_context(f, ctx)
            else:
                raise NotFound(f"unable to prepare context: path {source!r} not found")
            ctx.mkdir(exist_ok=True)
            yield ctx, text, True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def prune_cache(self) -> int:
        from cargohold.build.cache import BuildCache

        return BuildCache(self.engine.settings.root, self.engine.layers.exists).prune()

    # -- builder prune / system df ------------------------------------------------------------

    def _image_layers(self) -> set[str]:
        layers = self.engine.layers
        out: set[str] = set()
        for record in self.engine.image_store.list():
            if record.top_layer and record.top_layer not in out:
                out.update(ly.chain_id for ly in layers.chain(record.top_layer))
        return out

    def _chain(self, top: str | None, memo: dict[str, list[str]]) -> list[str]:
        """Chain ids of ``top`` and its ancestors (top first); [] when it is gone."""
        if top is None:
            return []
        if top not in memo:
            try:
                memo[top] = [ly.chain_id for ly in reversed(self.engine.layers.chain(top))]
            except NotFound:
                memo[top] = []
        return memo[top]

    def prune(self, all_cache: bool = False, filters: Sequence[str] = ()
              ) -> tuple[list[str], int]:
        """``builder prune``: drop step-cache entries (all with ``all_cache``, else those whose
        result no image holds) and the layers only those entries kept; with ``all_cache`` also
        RUN cache mounts and downloaded URLs.  ``filters``: ``until`` keeps entries written
        later; cache entries carry no labels (``label=`` matches none, ``label!=`` all).
        Returns (removed entry keys, bytes reclaimed)."""
        from cargohold.build.cache import BuildCache
        from cargohold.errors import Conflict

        wanted = cache_filters(filters)

        root = self.engine.settings.root
        cache = BuildCache(root, self.engine.layers.exists)
        held = self._image_layers()
        memo: dict[str, list[str]] = {}
        removed: list[str] = []
        candidates: set[str] = set()
        kept: set[str] = set(held)
        reclaimed = 0
        for key, path, top in cache.entries():
            chain = self._chain(top, memo)
            if (not all_cache and top is not None and top in held) or not _wanted(wanted, path):
                kept.update(chain)
                continue
            try:
                reclaimed += path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append(key)
            candidates.update(chain)
        # layers deepest first: a layer goes only when no kept entry, image, other layer or
        # container builds on it (the layer store refuses the last two)
        depth = {c: len(self._chain(c, memo)) for c in candidates - kept}
        for chain_id in sorted(depth, key=lambda c: (-depth[c], c)):
            try:
                size = self.engine.layers.get(chain_id).size
                self.engine.layers.delete(chain_id)
            except (Conflict, NotFound):
                continue
            reclaimed += size
        if all_cache and wanted.empty:
            for name in ("mounts", "urls"):
                reclaimed += _remove_tree(root / "buildcache" / name)
        return removed, reclaimed

    def disk_usage(self) -> DiskUsage:
        """The ``Build Cache`` row of ``system df``: entries, those an image holds, and the
        bytes of layers only the cache keeps plus cache mounts and downloads."""
        from cargohold.build.cache import BuildCache
        from cargohold.engine.reports import DiskUsage

        root = self.engine.settings.root
        held = self._image_layers()
        memo: dict[str, list[str]] = {}
        total = active = 0
        only_cache: set[str] = set()
        for _key, _path, top in BuildCache(root, self.engine.layers.exists).entries():
            total += 1
            if top is not None and top in held:
                active += 1
            only_cache.update(c for c in self._chain(top, memo) if c not in held)
        size = 0
        for chain_id in only_cache:
            try:
                size += self.engine.layers.get(chain_id).size
            except NotFound:
                continue
        size += sum(_tree_size(root / "buildcache" / n) for n in ("mounts", "urls"))
        return DiskUsage("Build Cache", total, active, size, size)


def _size(n: int) -> str:
    """Bytes in decimal units, three significant digits: ``512kB``, ``3.2MB``."""
    value, unit = float(n), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 999.5 or unit == "TB":
            break
        value /= 1000
    return f"{n}B" if unit == "B" else f"{value:.3g}{unit}"


def _pull_line(status: str) -> str | None:
    """The note for a pull's line of text (None: nothing to add to the FROM step's row)."""
    ref, sep, path = status.partition(": Pulling from ")
    if sep:
        if path.startswith("library/") and path.count("/") == 1:
            path = path.removeprefix("library/")
        return f"pulling {path}{'@' if ':' in ref else ':'}{ref}"
    if status.startswith("Unable to find image "):
        return None
    return status  # Digest: ..., Status: ...


def pull_notes(progress: Progress) -> ProgressFn:
    """Pull events (``transport/registry/events.py``, from the pull's threads too) as notes of
    the running step, BuildKit's way: ``pulling busybox:latest``, then one line per layer
    that its later events replace (``sha256:0123456789ab 1.2MB / 2.2MB``, ``... done``,
    ``extracting sha256:0123456789ab done``), then the digest and status lines."""
    totals: dict[str, int] = {}

    def report(event: Event) -> None:
        if not event.id:
            text = _pull_line(event.status)
            if text is not None:
                progress.note(text, key=f"line {text}")
            return
        status, layer = event.status, f"sha256:{event.id}"
        if event.total > 0:
            totals[event.id] = event.total
        total = totals.get(event.id, 0)
        sizes = _size(event.current) + (f" / {_size(total)}" if total else "")
        if status in ("Already exists", "Verifying Checksum"):
            return  # nothing to fetch; nothing new
        if status == "Downloading" and event.current > 0:
            text = f"{layer} {sizes}"
        elif status == "Download complete":
            text = f"{layer} {_size(total)} / {_size(total)} done" if total else f"{layer} done"
        elif status == "Extracting" and event.current > 0:
            text = f"extracting {layer} {sizes}"
        elif status == "Pull complete":
            text = f"extracting {layer} done"
        elif status == "Pulling fs layer":
            text = f"{layer} waiting"
        else:
            text = f"{layer} {status.lower()}"
        progress.note(text, key=f"layer {event.id}")

    return report


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                continue
    return total


def _remove_tree(path: Path) -> int:
    size = _tree_size(path)
    shutil.rmtree(path, ignore_errors=True)
    return size


def _stdin() -> BinaryIO:
    import sys

    return sys.stdin.buffer


def cache_filters(filters: Sequence[str]) -> PruneFilters:
    """Docker's build cache takes ``until`` as a duration only."""
    from cargohold.engine.prune_filters import PruneFilters
    from cargohold.oci.image import parse_go_duration

    wanted = PruneFilters.parse(filters)
    if wanted.until_text:
        try:
            parse_go_duration(wanted.until_text)
        except InvalidArgument as e:
            raise InvalidArgument(f'failed to prune build cache: "until" filter expects a '
                                  f"duration (e.g., '24h'): {e.message}") from None
    return wanted


def _wanted(wanted: PruneFilters, path: Path) -> bool:
    """Whether the cache entry at ``path`` (its time: its mtime) matches the filters."""
    if wanted.empty:
        return True
    try:
        used = path.stat().st_mtime
    except FileNotFoundError:
        return False
    return wanted.match({}, used)
