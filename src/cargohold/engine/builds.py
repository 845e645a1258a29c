"""BuildService: ``build`` wired to the engine's stores, runtime, networks and pull."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from cargohold.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from cargohold.build.executor import Backend, BuildOptions
    from cargohold.engine import Engine


class BuildService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- callbacks handed to the executor ----------------------------------------------------

    def _resolve(self, name: str) -> tuple[str, dict[str, Any], str | None]:
        record = self.engine.images.resolve(name)
        return record.id, self.engine.image_store.config(record.id), record.top_layer

    def _pull(self, name: str) -> None:
        images: Any = self.engine.images
        if not hasattr(images, "pull"):
            raise NotFound(
                f"pull access denied for {name}, repository does not exist or may require "
                f"'docker login': No such image: {name}"
            )
        images.pull(name)

    def _tag(self, image_id: str, name: str) -> str:
        from cargohold.oci.reference import parse_reference

        ref = str(parse_reference(name).with_default_tag())
        store = self.engine.image_store
        if ref not in store.get(image_id).repo_tags:
            store.tag(image_id, ref)
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
        from cargohold.build.context import BuildContext, StatCache
        from cargohold.build.executor import Executor
        from cargohold.build.progress import Progress
        from cargohold.build.workdir import interrupts_as_errors
        from cargohold.oci.reference import parse_reference

        for tag in options.tags:
            ref = parse_reference(tag)
            if ref.digest:
                raise InvalidArgument(f"invalid reference format: {tag}")
        progress = Progress(progress_out, progress_mode, quiet)
        root = self.engine.settings.root
        with interrupts_as_errors(), self._context_dir(source, stdin) as (ctx_dir, text, tmp):
            stats = None if tmp else StatCache(root / "buildcache" / "statcache.json")
            context = BuildContext(ctx_dir, stats)
            if text is None:
                text, name = context.read_dockerfile(options.dockerfile)
            else:
                name = "Dockerfile"
            executor = Executor(self.backend(), options, context, progress)
            return executor.build(text, name)

    @contextlib.contextmanager
    def _context_dir(
        self, source: str, stdin: BinaryIO | None
    ) -> Iterator[tuple[Path, str | None, bool]]:
        """(context dir, Dockerfile text if it came with the source, is it temporary)."""
        if source != "-" and not source.startswith(("http://", "https://")) and (
            os.path.isdir(source)
        ):
            yield Path(source), None, False
            return
        from cargohold.build.context import extract_context

        tmp_parent = self.engine.settings.root / "buildcache" / "contexts"
        tmp_parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix="build-context-", dir=tmp_parent))
        try:
            ctx = tmp / "context"
            if source == "-":
                text = extract_context(stdin or _stdin(), ctx)
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


def _stdin() -> BinaryIO:
    import sys

    return sys.stdin.buffer
