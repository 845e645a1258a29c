"""BuildService: ``build`` wired to the engine's stores, runtime, networks and pull.

A build is one call: its request (``engine/image_requests.py``), the context and Dockerfile
streams its caller opened, and a sink for its events (``build/events.py`` plus Docker's JSON
messages of its pulls), which ends with ``{"aux":{"ID":...}}`` or the error.  Rendering them
(BuildKit's ``#N`` lines or block for the CLI, the classic stream for the API) is the
caller's; the CLI's is ``BuildProgress`` (``build/progress.py``), re-exported here.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgspec

from cargohold.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from cargohold.builder.events import BuildSink
    from cargohold.builder.executor import Backend
    from cargohold.builder.progress import Progress as BuildProgress
    from cargohold.engine import Engine
    from cargohold.engine.images.requests import BuildRequest
    from cargohold.engine.prune_filters import PruneFilters
    from cargohold.engine.reports import DiskUsage

__all__ = ["BuildProgress", "BuildResult", "BuildService", "is_remote_context"]


def __getattr__(name: str) -> Any:
    """``BuildProgress``, imported only by the paths that render a build (not ``system df``)."""
    if name == "BuildProgress":
        from cargohold.builder.progress import Progress

        return Progress
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class BuildResult(msgspec.Struct, frozen=True):
    image_id: str
    tags: tuple[str, ...]  # normalised: docker.io/library/x:latest


def is_remote_context(source: str) -> bool:
    """Whether ``source`` names a context elsewhere (http(s) or a git repository), so that
    ``-f`` names a file of that context rather than one beside the caller."""
    if source.startswith(("http://", "https://")):
        return True
    from cargohold.builder.git_context import is_git_url  # not imported for local builds

    return is_git_url(source)


class BuildService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- callbacks handed to the executor ----------------------------------------------------

    def _resolve(self, name: str) -> tuple[str, dict[str, Any], str | None]:
        record = self.engine.images.resolve(name)
        return record.id, self.engine.image_store.config(record.id), record.top_layer

    def _tag(self, image_id: str, name: str) -> str:
        from cargohold.oci.reference import parse_reference

        ref = str(parse_reference(name).with_default_tag())
        store = self.engine.image_store
        if ref not in store.get(image_id).repo_tags:
            store.tag(image_id, ref)
        self.engine.images.emit(image_id, parse_reference(ref).familiar(), "tag", image_id)
        return ref

    def backend(self, events: BuildSink) -> Backend:
        """The engine side of one build; a FROM that must be pulled (missing, or ``build
        --pull``) reports to that build's ``events``."""
        from cargohold.builder.executor import Backend

        e = self.engine

        def pull(name: str) -> None:
            e.registry.ensure(name, "always", events)

        return Backend(
            stores=e.stores,
            root=e.settings.root,
            runroot=e.settings.runroot,
            resolve_image=self._resolve,
            pull_image=pull,
            tag_image=self._tag,
            runtime=lambda: e.runtime,
            network_store=lambda: e.network_store,
        )

    # -- build -------------------------------------------------------------------------------

    def build(
        self,
        request: BuildRequest,
        events: BuildSink,
        *,
        context: BinaryIO | None = None,
        dockerfile: BinaryIO | None = None,
    ) -> BuildResult:
        """Build from ``context`` (a tarball stream, the body of ``POST /build`` or stdin) or
        ``request.remote`` (a directory, tarball, URL or git repository); ``dockerfile``: the
        Dockerfile as a stream of its own (``-f -``).  Nothing is read from this process's
        own stdin."""
        from cargohold.engine.messages import reporting_errors
        from cargohold.transport.registry.events import Aux, aux

        with reporting_errors(events):
            result = self._build(request, events, context, dockerfile)
            events(aux(Aux(id=result.image_id)))
            return result

    def _build(self, request: BuildRequest, events: BuildSink, context: BinaryIO | None,
               dockerfile: BinaryIO | None) -> BuildResult:
        from cargohold.builder.cache import buildcache_dir
        from cargohold.builder.context import BuildContext, StatCache
        from cargohold.builder.executor import Executor
        from cargohold.engine.images.requests import check_build
        from cargohold.oci.reference import parse_reference

        options = check_build(request)
        if context is None and not request.remote:
            raise InvalidArgument("invalid argument: no build context: give a stream or remote")
        dockerfile_text = None
        if dockerfile is not None:  # ``-f -``: the Dockerfile on stdin, the context elsewhere
            if dockerfile is context:
                raise InvalidArgument(
                    "invalid argument: can't use stdin for both build context and dockerfile"
                )
            dockerfile_text = dockerfile.read().decode("utf-8", "surrogateescape")
        root = self.engine.settings.root
        buildcache_dir(root)  # root-only, also on a store an older version made 0755
        with self._context_dir(request.remote, context) as found:
            ctx_dir, text, tmp = found
            stats = None if tmp else StatCache(root / "buildcache" / "statcache.json")
            build_context = BuildContext(ctx_dir, stats)
            if dockerfile_text is not None:
                text = dockerfile_text
            if text is None:
                text, name = build_context.read_dockerfile(options.dockerfile)
            else:
                name = "Dockerfile"
            executor = Executor(self.backend(events), options, build_context, events)
            image_id = executor.build(text, name)
        tags = tuple(str(parse_reference(t).with_default_tag()) for t in options.tags)
        return BuildResult(image_id, tags)

    @contextlib.contextmanager
    def _context_dir(
        self, source: str, stream: BinaryIO | None
    ) -> Iterator[tuple[Path, str | None, bool]]:
        """(context dir, Dockerfile text if it came with the source, is it temporary).

        A local directory is used in place; a stream (a tarball), a tarball file, an http(s)
        tarball or Dockerfile and a git repository (``build/git_context.py``) are unpacked or
        cloned into a temporary directory under ``buildcache/contexts`` that goes when the
        build ends."""
        if (
            stream is None
            and not source.startswith(("http://", "https://"))
            and os.path.isdir(source)
        ):
            yield Path(source), None, False
            return
        import tempfile  # ~1 ms: only contexts that are no directory need it

        from cargohold.builder import git_context
        from cargohold.builder.cache import private_dir
        from cargohold.builder.context import extract_context

        git = (git_context.parse_git_url(source)
               if stream is None and git_context.is_git_url(source) else None)
        tmp_parent = private_dir(self.engine.settings.root, "contexts")
        tmp = Path(tempfile.mkdtemp(prefix="build-context-", dir=tmp_parent))
        try:
            ctx = tmp / "context"
            text: str | None = None
            if stream is not None:
                text = extract_context(stream, ctx)
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
        from cargohold.builder.cache import BuildCache

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
        from cargohold.builder.cache import BuildCache
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
        from cargohold.builder.cache import BuildCache
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


def cache_filters(filters: Sequence[str]) -> PruneFilters:
    """Docker's build cache takes ``until`` as a duration only."""
    from cargohold.engine.prune_filters import PruneFilters
    from cargohold.oci.durations import parse_go_duration

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
