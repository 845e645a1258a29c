"""The build executor: plan -> per step (expand, key, cache hit or run) -> image.

The engine hands in a :class:`Backend` (stores, runtime, image lookups) so this layer never
imports the engine.  Every step either comes from the cache (nothing mounted) or runs: a
config-only step edits the config; RUN uses a working container that is removed on success,
failure or interruption; COPY/ADD (and WORKDIR, when the directory is missing) generate their
layer tar straight from the sources into ``register_layer`` (``layer_tar``), so each file is
written once and nothing is mounted except a ``--from`` stage.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgspec

from cargohold.builder import dispatch_config
from cargohold.builder import events as E
from cargohold.builder.cache import BuildCache, ImageState, base_key, step_key
from cargohold.builder.context import BuildContext, ContextError, Source
from cargohold.builder.instruction_support import ParseError
from cargohold.builder.instructions import (
    EXPANDED_INSTRUCTIONS,
    AddInstruction,
    ArgInstruction,
    CopyInstruction,
    Dockerfile,
    DockerfileError,
    Instruction,
    OnbuildInstruction,
    RunInstruction,
    WorkdirInstruction,
    parse_dockerfile,
    parse_instruction,
)
from cargohold.builder.plan import PROXY_ARGS, Plan, PlannedStage, make_plan, stage_ref
from cargohold.builder.shell_lex import EnvExpander, ExpansionError
from cargohold.errors import CargoholdError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from cargohold.transport.local import LocalStores


class BuildFailed(InvalidArgument):
    """A build step failed; ``docker build`` exits 1.  ``code``: the failed RUN's exit code
    (Docker's ``errorDetail.code``), else 0."""

    exit_code = 1

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code


class BuildOptions(msgspec.Struct):
    """What ``build`` was asked for (flags of the command)."""

    dockerfile: str = "Dockerfile"
    tags: tuple[str, ...] = ()
    build_args: dict[str, str] = msgspec.field(default_factory=dict)
    no_cache: bool = False
    pull: bool = False
    target: str | None = None
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    network: str = "default"
    secrets: dict[str, str] = msgspec.field(default_factory=dict)
    source_date_epoch: int | None = None
    allow: tuple[str, ...] = ()  # entitlements (build --allow): network.host, security.insecure


class Backend(msgspec.Struct):
    """The engine side of a build: stores, lookups and lazily made runtime/networks."""

    stores: LocalStores
    root: Path
    runroot: Path
    resolve_image: Callable[[str], tuple[str, dict[str, Any], str | None]]
    pull_image: Callable[[str], None]
    tag_image: Callable[[str, str], str]  # image id, name -> normalized name
    runtime: Callable[[], Any]
    network_store: Callable[[], Any]
    # a layer tar applied on a parent chain (None: transport.local.register_layer on stores)
    register: Callable[[BinaryIO, str | None], Any] | None = None

    def register_layer(self, stream: BinaryIO, parent: str | None) -> Any:
        if self.register is not None:
            return self.register(stream, parent)
        from cargohold.transport.local import register_layer

        return register_layer(self.stores, stream, parent)


class Scope(msgspec.Struct):
    """Per-stage build-arg scope: declared ARG names and their values."""

    args: dict[str, str | None] = msgspec.field(default_factory=dict)

    def values(self) -> dict[str, str]:
        return {k: v for k, v in self.args.items() if v is not None}


def display(inst: Instruction) -> str:
    text = " ".join(inst.original.split("\n", 1)[0].split())
    kw, _, rest = text.partition(" ")
    text = f"{kw.upper()} {rest}".strip()
    return text if len(text) <= 200 else text[:197] + "..."


def canonical(inst: Instruction) -> list[Any]:
    """The expanded instruction without its source text and lines, for cache keys."""
    if isinstance(inst, OnbuildInstruction):
        return [inst.keyword, inst.expression]
    out: list[Any] = [inst.keyword]
    for name in inst.__struct_fields__:  # not structs.fields(): that resolves type hints
        if name in ("original", "start_line", "end_line", "keyword", "mount_specs"):
            continue
        out.append([name, _plain(getattr(inst, name))])
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, msgspec.Struct):
        return {k: _plain(v) for k, v in msgspec.structs.asdict(value).items()}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    return value


class Executor:
    def __init__(
        self,
        backend: Backend,
        options: BuildOptions,
        context: BuildContext,
        events: E.BuildSink,
    ) -> None:
        """``events``: this build's sink (``build/events.py``), called from the build's
        thread and, for RUN output, from the thread reading the step's process."""
        self.backend = backend
        self.options = options
        self.context = context
        self.emit = events
        self.cache = BuildCache(backend.root, backend.stores.layers.exists)
        self.results: dict[int, ImageState] = {}
        self.df: Dockerfile | None = None
        self.plan: Plan | None = None
        self.used_args: set[str] = set()
        from cargohold.builder.views import BuildViews

        self.views = BuildViews(backend.stores.layers, context, backend.root / "tmp")
        self.pulls = 0  # base images pulled (a FROM that pulled is done, not CACHED)

    # -- entry point -----------------------------------------------------------------------

    def build(self, text: str, filename: str = "Dockerfile") -> str:
        self.emit(E.StepStarted(f"[internal] load build definition from {filename}"))
        self.emit(E.StepNote(f"transferring dockerfile: {len(text.encode())}B done"))
        df = parse_dockerfile(text, filename)
        if not df.stages:
            raise DockerfileError(filename, None, "file with no instructions")
        for warning in df.warnings:
            self.emit(E.StepNote(f"WARNING: {warning}"))
        if df.directives.syntax:
            self.emit(E.StepNote(f"# syntax={df.directives.syntax} is ignored"))
        self.emit(E.StepDone())
        self.df = df
        self.plan = make_plan(df, self.options.build_args, self.options.target)
        self._check_entitlements(self.plan)
        # steps: the definition above, each stage's FROM and instructions, the export
        steps = 2 + sum(len(ps.stage.instructions) + 1 for ps in self.plan.stages)
        self.emit(E.Planned(steps, len(df.meta_args) + sum(len(s.instructions) + 1
                                                         for s in df.stages)))
        try:
            for ps in self.plan.stages:
                self.results[ps.index] = self._stage(ps)
            final = self.results[self.plan.target]
            return self._export(final)
        finally:
            try:
                self.views.close()
            finally:
                self.context.close()

    def _check_entitlements(self, plan: Plan) -> None:
        """Refuse, before any step runs, a RUN asking for more than the build was granted."""
        from cargohold.builder.entitlements import granted, refusals

        assert self.df is not None
        for line, why in refusals(plan, granted(self.options.allow, self.options.network)):
            raise BuildFailed(f"{self.df.filename}:{line}: {why}")

    # -- stages ------------------------------------------------------------------------------

    def _counter(self, ps: PlannedStage, k: int, total: int) -> str:
        assert self.plan is not None
        prefix = f"{ps.label} " if self.plan.all_stages > 1 else ""
        return f"[{prefix}{k}/{total}]"

    def _stage(self, ps: PlannedStage) -> ImageState:
        assert self.df is not None
        insts = list(ps.stage.instructions)
        total = len(insts) + 1
        # the classic builder's step numbers count every instruction of the file
        first = len(self.df.meta_args) + sum(len(s.instructions) + 1
                                             for s in self.df.stages[:ps.index]) + 1
        self.emit(E.StepStarted(f"{self._counter(ps, 1, total)} FROM {ps.base}",
                              ps.stage.source.original, first))
        state, cached = self._base(ps)
        self.emit(E.StepCached(state.key) if cached else E.StepDone(state.key))
        scope = Scope()
        triggers = state.section.pop("OnBuild", None) or []
        if triggers:
            state.key = step_key(state.key, ["onbuild-reset"])
        if (insts or triggers) and "PATH" not in state.env():
            # Docker's builder (classic and BuildKit) gives a stage without PATH the default
            from cargohold.container.spec import DEFAULT_PATH

            state.section["Env"] = [*(state.section.get("Env") or []), DEFAULT_PATH]
            state.key = step_key(state.key, ["default-path"])
        for expr in triggers:
            inst = self._parse_trigger(str(expr), ps)
            self.emit(E.StepStarted(f"{self._counter(ps, 1, total)} ONBUILD {display(inst)}",
                                  inst.original))
            state = self._step(inst, state, scope, ps)
        for k, inst in enumerate(insts, start=2):
            self.emit(E.StepStarted(f"{self._counter(ps, k, total)} {display(inst)}",
                                  inst.original, first + k - 1))
            state = self._step(inst, state, scope, ps)
        return state

    def _parse_trigger(self, expr: str, ps: PlannedStage) -> Instruction:
        from cargohold.builder.parser import parse

        assert self.df is not None
        result = parse(expr, self.df.filename)
        if not result.nodes:
            raise DockerfileError(self.df.filename, ps.stage.start_line, "empty ONBUILD trigger")
        return parse_instruction(result.nodes[0], self.df.filename)

    def _base(self, ps: PlannedStage) -> tuple[ImageState, bool]:
        if ps.base_stage is not None:
            src = self.results[ps.base_stage]
            state = src.fork()
            state.cmd_set = False
            return state, True
        if ps.base.lower() == "scratch":
            config = {"architecture": "", "os": "linux", "config": {},
                      "rootfs": {"type": "layers", "diff_ids": []}, "history": []}
            from cargohold.oci.image import host_platform

            plat = host_platform()
            config["architecture"] = plat.architecture
            if plat.variant:
                config["variant"] = plat.variant
            return ImageState(base_key(None), None, config), True
        pulls = self.pulls
        image_id, config, top = self._image(ps.base, ps.stage.start_line)
        fields = ("created", "author", "architecture", "variant", "os", "config", "rootfs",
                  "history")
        keep: dict[str, Any] = {k: config[k] for k in fields if k in config}
        keep.setdefault("config", {})
        keep.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        keep.setdefault("history", [])
        # BuildKit shows a FROM it had to pull as done, not CACHED
        return ImageState(base_key(image_id, ps.platform or ""), top, keep), pulls == self.pulls

    def _image(self, name: str, line: int) -> tuple[str, dict[str, Any], str | None]:
        if self.options.pull:
            self._pull(name, line)
        try:
            return self.backend.resolve_image(name)
        except NotFound:
            self._pull(name, line)
            return self.backend.resolve_image(name)

    def _pull(self, name: str, line: int) -> None:
        assert self.df is not None
        self.pulls += 1
        try:
            self.backend.pull_image(name)
        except CargoholdError as exc:
            raise BuildFailed(f"{self.df.filename}:{line}: {exc.message}") from None

    # -- steps -------------------------------------------------------------------------------

    def _error(self, inst: Instruction, message: str, code: int = 0) -> BuildFailed:
        assert self.df is not None
        self.emit(E.StepFailed(message))
        return BuildFailed(f"{self.df.filename}:{inst.start_line}: {message}", code)

    def _step(
        self, inst: Instruction, state: ImageState, scope: Scope, ps: PlannedStage
    ) -> ImageState:
        assert self.df is not None
        env = {**scope.values(), **state.env()}
        expander = EnvExpander(env, self.df.directives.escape)
        try:
            expanded = inst.expand(expander) if inst.keyword in EXPANDED_INSTRUCTIONS else inst
            self.used_args |= expander.matched & set(scope.args)
            return self._dispatch(expanded, state, scope, ps)
        except (ParseError, ExpansionError, ContextError) as exc:
            raise self._error(inst, exc.message) from None
        except BuildFailed:
            raise
        except DockerfileError as exc:
            self.emit(E.StepFailed(exc.detail))
            raise BuildFailed(exc.message) from None

    def _dispatch(
        self, inst: Instruction, state: ImageState, scope: Scope, ps: PlannedStage
    ) -> ImageState:
        if isinstance(inst, ArgInstruction):
            return self._arg(inst, state, scope)
        if isinstance(inst, RunInstruction):
            return self._run(inst, state, scope, ps)
        if isinstance(inst, CopyInstruction | AddInstruction):
            return self._copy(inst, state, ps)
        if isinstance(inst, WorkdirInstruction):
            return self._workdir(inst, state)
        key = step_key(state.key, canonical(inst))

        def run(new: ImageState) -> str:
            return dispatch_config.apply_config(inst, new)

        return self._cached_or(key, state, run, empty=True)

    def _cached_or(
        self,
        key: str,
        state: ImageState,
        run: Callable[[ImageState], str],
        empty: bool,
    ) -> ImageState:
        """The cached result of ``key``, else ``run`` on a fork of ``state``.  ``empty`` says
        whether the step makes no layer; a step that may or may not (WORKDIR) passes False and
        its ``run`` leaves ``new.top`` unchanged when it made none."""
        if not self.options.no_cache:
            hit = self.cache.get(key)
            if hit is not None:
                self.emit(E.StepCached(key))
                return hit
        new = state.fork()
        new.key = key
        created_by = run(new)
        empty = empty or (new.top == state.top and len(new.diff_ids) == len(state.diff_ids))
        created = self._now()
        from cargohold.oci.image import history_entry

        new.history.append(history_entry(created_by, created=created, empty_layer=empty))
        new.config["created"] = created
        self.cache.put(new)
        self.emit(E.StepDone(key))
        return new

    def _now(self) -> str:
        from cargohold.oci.image import rfc3339_nano

        epoch = self.options.source_date_epoch
        return rfc3339_nano(epoch * 1_000_000_000 if epoch is not None else None)

    def _arg(self, inst: ArgInstruction, state: ImageState, scope: Scope) -> ImageState:
        assert self.plan is not None
        parts: list[str] = []
        for spec in inst.args:
            if spec.name in self.options.build_args:
                value: str | None = self.options.build_args[spec.name]
            elif spec.default is not None:
                value = spec.default
            else:
                value = self.plan.meta_args.get(spec.name)
            scope.args[spec.name] = value
            self.used_args.add(spec.name)
            parts.append(f"{spec.name}={value}" if value is not None else spec.name)
        key = step_key(state.key, ["ARG", parts])
        text = "ARG " + " ".join(
            f"{a.name}={a.default}" if a.default is not None else a.name for a in inst.args
        )
        return self._cached_or(key, state, lambda new: dispatch_config.nop(new, text), empty=True)

    # -- RUN -----------------------------------------------------------------------------------

    def _run(
        self, inst: RunInstruction, state: ImageState, scope: Scope, ps: PlannedStage
    ) -> ImageState:
        from cargohold.builder.dispatch_run import run_argv
        from cargohold.builder.entitlements import granted, refusal

        why = refusal(inst, granted(self.options.allow, self.options.network))
        if why is not None:  # an ONBUILD trigger: the Dockerfile's own RUNs were checked
            raise self._error(inst, why)
        argv = run_argv(inst, dispatch_config.shell_of(state))
        # Docker's FilterAllowed: the stage's ENV hides an ARG of the same name (from the
        # history line and the key as well as from the process); undeclared proxy args only
        # reach the process
        env = state.env()
        args = {k: v for k, v in scope.values().items() if k not in env}
        proxies = {k: v for k, v in self.options.build_args.items()
                   if k in PROXY_ARGS and k not in args}
        self.used_args |= proxies.keys()
        network = inst.network if inst.network != "default" else self.options.network
        if args:
            pairs = " ".join(f"{k}={v}" for k, v in sorted(args.items()))
            created_by = f"|{len(args)} {pairs} " + " ".join(argv)
        else:
            created_by = " ".join(argv)
        from cargohold.builder.run_mounts import mount_inputs

        inputs = mount_inputs(inst, self.context, lambda name: self._from_key(name, ps, inst))
        key = step_key(state.key, [*canonical(inst), sorted(args.items()), network, *inputs])

        def run(new: ImageState) -> str:
            proc_env = {**args, **proxies, **state.env()}
            cwd = state.section.get("WorkingDir") or "/"
            user = str(state.section.get("User") or "")
            self._in_container(new, lambda wc: self._exec(wc, inst, argv, proc_env, cwd, user,
                                                          network, created_by, ps))
            return created_by

        return self._cached_or(key, state, run, empty=False)

    def _exec(self, wc: Any, inst: RunInstruction, argv: list[str], proc_env: dict[str, str],
              cwd: str, user: str, network: str, created_by: str, ps: PlannedStage) -> None:
        from cargohold.builder.cache import buildcache_dir
        from cargohold.builder.dispatch_run import execute
        from cargohold.builder.run_mounts import RunEnv

        run_env = RunEnv(
            runtime=self.backend.runtime(),
            network_store=self.backend.network_store() if network != "host" else None,
            runroot=self.backend.runroot,
            buildcache=buildcache_dir(self.backend.root),
            secrets=self.options.secrets,
            context_view=self.views.context_view,
            image_view=lambda name, writable: self.views.rootfs_view(
                self._source_top(name, ps, inst), writable),
        )
        def output(data: bytes) -> None:  # from the thread reading the process
            self.emit(E.StepOutput(data))

        self.emit(E.StepContainer(wc.rw_id))
        code = execute(wc, run_env, inst, argv, proc_env, cwd, user, network, output)
        if code != 0:
            raise self._error(inst, f"The command '{created_by}' returned a non-zero code: {code}",
                              code)

    def _in_container(self, new: ImageState, work: Callable[[Any], None]) -> None:
        from cargohold.builder.workdir import WorkingContainer

        with WorkingContainer(self.backend.stores, new.top) as wc:
            work(wc)
            layer = wc.commit(self.options.source_date_epoch)
        if layer is not None:  # else: nothing changed, an empty_layer step as in Docker
            new.top = layer.chain_id
            new.diff_ids.append(layer.diff_id)

    # -- COPY / ADD ----------------------------------------------------------------------------

    def _source_top(self, name: str, ps: PlannedStage, inst: Instruction) -> str | None:
        assert self.df is not None
        ref = stage_ref(self.df, name, ps.index)
        if ref is not None:
            return self.results[ref].top
        return self._image(name, inst.start_line)[2]

    def _source_root(self, name: str, ps: PlannedStage, inst: Instruction) -> Path:
        """A read-only rootfs of a stage or image named by --from (mounted once per build)."""
        return self.views.rootfs(self._source_top(name, ps, inst))

    def _from_key(self, name: str, ps: PlannedStage, inst: Instruction) -> str:
        assert self.df is not None
        ref = stage_ref(self.df, name, ps.index)
        if ref is not None:
            return self.results[ref].key
        image_id, _, _ = self._image(name, inst.start_line)
        return image_id

    def _copy(
        self, inst: CopyInstruction | AddInstruction, state: ImageState, ps: PlannedStage
    ) -> ImageState:
        from cargohold.builder import dispatch_copy as dc

        from_ = inst.from_ if isinstance(inst, CopyInstruction) else ""
        dest, explicit_dir = dc.destination(inst.dest, state.section.get("WorkingDir") or "/")
        urls = [s for s in inst.sources if dc.is_url(s)] if isinstance(inst, AddInstruction) else []
        if urls and len(inst.sources) > 1 and not explicit_dir:
            raise ContextError(dc.MULTI_SOURCE.format(kw=inst.keyword))
        parts: list[Any] = [*canonical(inst)]
        if from_:
            parts.append(["from", self._from_key(from_, ps, inst)])
            sources: list[Source] = []
            content = ""
        else:
            sources = dc.context_sources(self.context, inst)
            if len(sources) + len(urls) + len(inst.contents) > 1 and not explicit_dir:
                raise ContextError(dc.MULTI_SOURCE.format(kw=inst.keyword))
            content = self.context.digest(sources)
            parts.append(["content", content])
        from cargohold.builder.cache import private_dir

        try:
            downloads = [dc.fetch_url(u, private_dir(self.backend.root, "urls"),
                                      getattr(inst, "checksum", "")) for u in urls] if urls else []
        except InvalidArgument as exc:  # the URL's answer: named with the Dockerfile line
            raise self._error(inst, exc.message) from None
        parts.append(["urls", [d.digest for d in downloads]])
        key = step_key(state.key, parts)

        def run(new: ImageState) -> str:
            self._tar_layer(new, lambda view, tar: self._emit_copy(
                tar, view, inst, ps, sources, downloads, dest, explicit_dir))
            # Docker's "COPY [--chown=X ]file|dir|multi:<digest> in <dest as written> "; a
            # downloaded file alone has its bare digest
            if len(sources) + len(urls) > 1:
                what = f"multi:{content or key}"
            elif downloads:
                what = downloads[0].digest.removeprefix("sha256:")
            else:
                what = f"{'dir' if sources and sources[0].is_dir else 'file'}:{content or key}"
            chown = f"--chown={inst.chown} " if inst.chown else ""
            return dispatch_config.nop(state, f"{inst.keyword} {chown}{what} in {inst.dest} ",
                                       single=True)

        try:
            return self._cached_or(key, state, run, empty=False)
        except (BuildFailed, ContextError):
            raise
        except InvalidArgument as exc:  # a hostile or broken archive refused by the layer store
            raise self._error(inst, exc.message) from None

    def _tar_layer(self, new: ImageState, emit: Callable[[Any, Any], None]) -> None:
        """A layer generated as a tar straight from its sources (no working container)."""
        from cargohold.builder.layer_tar import ParentView, register_tar

        parent = new.top
        view = ParentView.of(self.backend.stores.layers, parent)
        layer = register_tar(lambda stream: self.backend.register_layer(stream, parent), view,
                             int(time.time()), self.options.source_date_epoch,
                             lambda tar: emit(view, tar))
        new.top = layer.chain_id
        new.diff_ids.append(layer.diff_id)

    def _emit_copy(self, tar: Any, view: Any, inst: CopyInstruction | AddInstruction,
                   ps: PlannedStage, sources: list[Source], downloads: list[Any], dest: str,
                   explicit_dir: bool) -> None:
        from cargohold.builder import dispatch_copy as dc

        from_ = inst.from_ if isinstance(inst, CopyInstruction) else ""
        ctx = self.context
        if from_:  # ``sources`` (empty) is filled in place: the history line names their kind
            ctx = BuildContext(self._source_root(from_, ps, inst), use_ignore=False)
            sources[:] = [s for p in inst.sources for s in ctx.sources(p, inst.keyword)]
            if len(sources) > 1 and not explicit_dir:
                raise ContextError(dc.MULTI_SOURCE.format(kw=inst.keyword))
        dc.emit_copy(tar, view, inst, ctx, sources, downloads, dest, explicit_dir,
                     self.options.source_date_epoch)

    # -- WORKDIR -------------------------------------------------------------------------------

    def _workdir(self, inst: WorkdirInstruction, state: ImageState) -> ImageState:
        """Config, plus a layer with the directory (owned by USER) when the image lacks it."""
        key = step_key(state.key, canonical(inst))

        def run(new: ImageState) -> str:
            from cargohold.builder.layer_tar import ParentView, resolve_user

            created_by = dispatch_config.apply_config(inst, new)
            path = str(new.section["WorkingDir"])
            view = ParentView.of(self.backend.stores.layers, new.top)
            if view.resolve(path).is_dir:
                return created_by
            user = str(new.section.get("User") or "")
            ids = resolve_user(user, view) if user else (0, 0)

            def emit(view: Any, tar: Any) -> None:
                node = view.resolve(path)
                if node.st is not None and not node.is_dir:
                    raise ContextError(f"cannot create WORKDIR {path}: not a directory")
                tar.ensure_dir(node.rel, (0o755, *ids))

            self._tar_layer(new, emit)
            return created_by

        return self._cached_or(key, state, run, empty=False)

    # -- export --------------------------------------------------------------------------------

    def _export(self, state: ImageState) -> str:
        from cargohold.oci.image import Platform, encode_json, new_config

        self.emit(E.StepStarted("exporting to image"))
        section = dict(state.section)
        if self.options.labels:
            section["Labels"] = {**(section.get("Labels") or {}), **self.options.labels}
        plat = Platform(str(state.config.get("os") or "linux"),
                        str(state.config.get("architecture") or ""),
                        state.config.get("variant"))
        created = state.config.get("created")
        if self.options.source_date_epoch is not None or not created:
            created = self._now()
        config = new_config(
            config=section,
            diff_ids=state.diff_ids,
            history=state.history,
            created=str(created),
            author=str(state.config.get("author") or ""),
            platform=plat if plat.architecture else None,
        )
        stores = self.backend.stores
        data = encode_json(config)
        image_id = "sha256:" + hashlib.sha256(data).hexdigest()
        try:
            record = stores.images.get(image_id)  # a rebuild of a stored image: no writes
        except NotFound:
            size = sum(ly.size for ly in stores.layers.chain(state.top)) if state.top else 0
            record = stores.images.add(data, state.top, size=size)
        self.emit(E.ImageWritten(record.id))
        for tag in self.options.tags:
            self.emit(E.ImageTagged(self.backend.tag_image(record.id, tag)))
        self.emit(E.StepDone(record.id))
        self._warn_unused()
        return record.id

    def _warn_unused(self) -> None:
        unused = sorted(set(self.options.build_args) - self.used_args - PROXY_ARGS)
        if unused:
            self.emit(E.BuildWarning(
                f"[Warning] One or more build-args {unused} were not consumed".replace("'", "")
            ))
