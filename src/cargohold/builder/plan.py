"""From a parsed Dockerfile to the stages a build runs: global ARGs, FROM expansion, stage
references (``FROM stage``, ``COPY --from``, ``RUN --mount from=``) and ``--target`` pruning."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from cargohold.builder.instructions import (
    ArgInstruction,
    CopyInstruction,
    Dockerfile,
    DockerfileError,
    OnbuildInstruction,
    RunInstruction,
    Stage,
)
from cargohold.builder.shell_lex import EnvExpander
from cargohold.oci.image import host_platform

PROXY_ARGS = frozenset(
    {"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "FTP_PROXY", "ftp_proxy",
     "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}
)  # fmt: skip


def platform_args() -> dict[str, str]:
    """BUILDPLATFORM/TARGETPLATFORM and friends (the target is this machine)."""
    plat = host_platform()
    out: dict[str, str] = {}
    for prefix in ("BUILD", "TARGET"):
        out[f"{prefix}PLATFORM"] = str(plat)
        out[f"{prefix}OS"] = plat.os
        out[f"{prefix}ARCH"] = plat.architecture
        out[f"{prefix}VARIANT"] = plat.variant or ""
    return out


class PlannedStage(msgspec.Struct, frozen=True):
    """A stage to run, with its expanded base and the stages it reads."""

    stage: Stage
    base: str  # expanded FROM name: an image reference, "scratch", or a stage's name
    base_stage: int | None  # index of the stage used as base
    platform: str | None
    deps: frozenset[int]  # stages this one reads (base and --from)

    @property
    def index(self) -> int:
        return self.stage.index

    @property
    def label(self) -> str:
        return self.stage.name or f"stage-{self.stage.index}"


class Plan(msgspec.Struct, frozen=True):
    """The stages a build runs, in order, and the target."""

    dockerfile: Dockerfile
    stages: tuple[PlannedStage, ...]  # the stages to run, in order
    target: int
    meta_args: Mapping[str, str | None]  # global ARGs (after --build-arg) for stage ARGs
    all_stages: int

    def planned(self, index: int) -> PlannedStage:
        return next(s for s in self.stages if s.index == index)


def _meta_args(df: Dockerfile, build_args: Mapping[str, str]) -> dict[str, str | None]:
    values: dict[str, str | None] = dict(platform_args())
    for inst in df.meta_args:
        env = {k: v for k, v in values.items() if v is not None}
        expanded = inst.expand(EnvExpander(env, df.directives.escape))
        for spec in expanded.args:
            if spec.name in build_args:
                values[spec.name] = build_args[spec.name]
            else:
                values[spec.name] = spec.default
    return values


def stage_ref(df: Dockerfile, name: str, current: int) -> int | None:
    """The index of the stage ``name`` names (by name or number) or None for an image."""
    lowered = name.lower()
    for stage in df.stages:
        if stage.name == lowered:
            return stage.index
    if name.isdigit():
        index = int(name)
        if index < len(df.stages):
            return index
    return None


def _check_ref(df: Dockerfile, ref: int, current: int, line: int, value: str) -> None:
    if ref == current:
        raise DockerfileError(
            df.filename, line, f"invalid from flag value {value}: refers to current build stage"
        )
    if ref > current:
        raise DockerfileError(
            df.filename, line, f"invalid from flag value {value}: refers to a later build stage"
        )


def _deps(df: Dockerfile, stage: Stage) -> set[int]:
    deps: set[int] = set()
    for inst in stage.instructions:
        if isinstance(inst, OnbuildInstruction):
            continue
        froms: list[str] = []
        if isinstance(inst, CopyInstruction) and inst.from_:
            froms.append(inst.from_)
        if isinstance(inst, RunInstruction):
            froms += [m.from_ for m in inst.mounts if m.from_]
        for value in froms:
            ref = stage_ref(df, value, stage.index)
            if ref is not None:
                _check_ref(df, ref, stage.index, inst.start_line, value)
                deps.add(ref)
    return deps


def make_plan(df: Dockerfile, build_args: Mapping[str, str], target: str | None) -> Plan:
    if not df.stages:
        raise DockerfileError(df.filename, None, "file with no instructions")
    meta = _meta_args(df, build_args)
    env = {k: v for k, v in meta.items() if v is not None}
    target_stage = df.stage(target) if target else df.stages[-1]
    planned: dict[int, PlannedStage] = {}
    for stage in df.stages:
        src = stage.source.expand(EnvExpander(env, df.directives.escape))
        if not src.base:
            message = f"base name ({stage.base}) should not be blank"
            raise DockerfileError(df.filename, stage.start_line, message)
        base_stage = None
        for earlier in df.stages[: stage.index]:
            if earlier.name is not None and earlier.name == src.base.lower():
                base_stage = earlier.index
        deps = _deps(df, stage)
        if base_stage is not None:
            deps.add(base_stage)
        planned[stage.index] = PlannedStage(
            stage, src.base, base_stage, src.platform, frozenset(deps)
        )
    needed: set[int] = set()
    todo = [target_stage.index]
    while todo:
        index = todo.pop()
        if index in needed:
            continue
        needed.add(index)
        todo.extend(planned[index].deps)
    order = tuple(planned[i] for i in sorted(needed))
    return Plan(df, order, target_stage.index, meta, len(df.stages))


def declared_args(stage: Stage) -> list[str]:
    names: list[str] = []
    for inst in stage.instructions:
        if isinstance(inst, ArgInstruction):
            names += [a.name for a in inst.args]
    return names
