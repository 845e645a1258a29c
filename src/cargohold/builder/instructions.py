"""Typed, validated Dockerfile instructions and :func:`parse_dockerfile`.

Every instruction is a frozen Struct built from a parser :class:`Node`; flags are checked
here (``Dockerfile:3: unknown flag: --foo``), arguments counted with Docker's wording
("RUN requires at least one argument").  Nothing is expanded at parse time: instructions listed
in :data:`EXPANDED_INSTRUCTIONS` have an ``expand(expander)`` method the executor calls with an
:class:`~cargohold.builder.shell_lex.EnvExpander` built from the environment *before* the
instruction, which gives Docker's ``ENV a=1 b=$a`` (b sees the old a) for free.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
from msgspec.structs import replace

from cargohold.builder.instruction_support import (
    Flags,
    Mount,
    ParseError,
    go_duration,
    parse_mount,
    suggest,
)
from cargohold.builder.instruction_types import (
    EXPANDED_INSTRUCTIONS,
    INSTRUCTION_NAMES,
    AddInstruction,
    ArgInstruction,
    ArgSpec,
    CmdInstruction,
    CopyInstruction,
    EntrypointInstruction,
    EnvInstruction,
    Expander,
    ExposeInstruction,
    FromInstruction,
    HealthcheckInstruction,
    InlineFile,
    Instruction,
    KeyValue,
    LabelInstruction,
    MaintainerInstruction,
    OnbuildInstruction,
    RunInstruction,
    ShellInstruction,
    StopsignalInstruction,
    UserInstruction,
    VolumeInstruction,
    WorkdirInstruction,
)
from cargohold.builder.parser import (
    Directives,
    DockerfileError,
    Heredoc,
    Node,
    chomp_heredoc,
    parse,
    parse_heredoc,
)

__all__ = [
    "EXPANDED_INSTRUCTIONS",
    "INSTRUCTION_NAMES",
    "AddInstruction",
    "ArgInstruction",
    "ArgSpec",
    "CmdInstruction",
    "CopyInstruction",
    "Directives",
    "Dockerfile",
    "DockerfileError",
    "EntrypointInstruction",
    "EnvInstruction",
    "Expander",
    "ExposeInstruction",
    "FromInstruction",
    "HealthcheckInstruction",
    "InlineFile",
    "Instruction",
    "KeyValue",
    "LabelInstruction",
    "MaintainerInstruction",
    "Mount",
    "OnbuildInstruction",
    "RunInstruction",
    "ShellInstruction",
    "Stage",
    "StopsignalInstruction",
    "UserInstruction",
    "VolumeInstruction",
    "WorkdirInstruction",
    "parse_dockerfile",
    "parse_instruction",
]

_I = TypeVar("_I", bound=Instruction)
_STAGE_NAME = re.compile(r"[a-z][a-z0-9\-_.]*\Z")
RESERVED_STAGE_NAMES = frozenset({"scratch", "context"})

# -- node -> instruction ----------------------------------------------------------------------


class _Req(msgspec.Struct, frozen=True):

    node: Node
    flags: Flags

    @property
    def args(self) -> tuple[str, ...]:
        return self.node.args


def _new(cls: type[_I], req: _Req, **fields: Any) -> _I:
    n = req.node
    return cls(
        keyword=n.name.upper(),
        original=n.original.strip(),
        start_line=n.start_line,
        end_line=n.end_line,
        **fields,
    )


def _at_least_one(name: str) -> ParseError:
    return ParseError(f"{name} requires at least one argument")


def _exactly_one(name: str) -> ParseError:
    return ParseError(f"{name} requires exactly one argument")


def _pairs(req: _Req, name: str) -> tuple[KeyValue, ...]:
    req.flags.parse()
    args = req.args
    if not args:
        raise _at_least_one(name)
    if len(args) % 3:
        raise ParseError(f"Bad input to {name}, too many arguments")
    out = []
    for i in range(0, len(args), 3):
        if not args[i]:
            raise ParseError(f"{name} names can not be blank")
        out.append(KeyValue(args[i], args[i + 1], args[i + 2] == ""))
    return tuple(out)


def _env(req: _Req) -> Instruction:
    return _new(EnvInstruction, req, pairs=_pairs(req, "ENV"))


def _label(req: _Req) -> Instruction:
    return _new(LabelInstruction, req, pairs=_pairs(req, "LABEL"))


def _one(req: _Req, name: str) -> str:
    if len(req.args) != 1:
        raise _exactly_one(name)
    req.flags.parse()
    return req.args[0]


def _maintainer(req: _Req) -> Instruction:
    return _new(MaintainerInstruction, req, maintainer=_one(req, "MAINTAINER"))


def _user(req: _Req) -> Instruction:
    return _new(UserInstruction, req, user=_one(req, "USER"))


def _workdir(req: _Req) -> Instruction:
    return _new(WorkdirInstruction, req, path=_one(req, "WORKDIR"))


def _stopsignal(req: _Req) -> Instruction:
    return _new(StopsignalInstruction, req, signal=_one(req, "STOPSIGNAL"))


def _command_line(req: _Req) -> dict[str, Any]:
    args = req.args
    if args and not req.node.json:
        args = (" ".join(args),)
    files = tuple(
        InlineFile(d.name, chomp_heredoc(d.content) if d.chomp else d.content, d.expand, d.chomp)
        for d in req.node.heredocs
    )
    return {"command": args, "shell_form": not req.node.json, "files": files}


def _run(req: _Req) -> Instruction:
    mount = req.flags.add_strings("mount")
    network = req.flags.add_string("network", "default")
    security = req.flags.add_string("security", "sandbox")
    req.flags.parse()
    if not req.args:
        raise _at_least_one("RUN")
    if network.value not in ("default", "none", "host"):
        raise ParseError(f'invalid network mode "{network.value}"')
    if security.value not in ("sandbox", "insecure"):
        raise ParseError(f'unsupported security mode "{security.value}"')
    mounts = tuple(parse_mount(spec, None) for spec in mount.values)
    return _new(
        RunInstruction,
        req,
        mounts=mounts,
        mount_specs=tuple(mount.values),
        network=network.value,
        security=security.value,
        **_command_line(req),
    )


def _cmd(req: _Req) -> Instruction:
    req.flags.parse()
    if not req.args and not req.node.json:
        raise _at_least_one("CMD")
    return _new(CmdInstruction, req, **_command_line(req))


def _entrypoint(req: _Req) -> Instruction:
    req.flags.parse()
    if not req.args and not req.node.json:
        raise _at_least_one("ENTRYPOINT")
    return _new(EntrypointInstruction, req, **_command_line(req))


def _shell(req: _Req) -> Instruction:
    req.flags.parse()
    if not req.args:
        raise _at_least_one("SHELL")
    if not req.node.json:
        raise ParseError(
            f"SHELL requires the arguments to be in JSON form (not {req.node.original.strip()!r})"
        )
    return _new(ShellInstruction, req, shell=req.args)


def _expose(req: _Req) -> Instruction:
    if not req.args:
        raise _at_least_one("EXPOSE")
    req.flags.parse()
    return _new(ExposeInstruction, req, ports=tuple(sorted(req.args)))


def _volume(req: _Req) -> Instruction:
    if not req.args:
        raise _at_least_one("VOLUME")
    req.flags.parse()
    volumes = tuple(v.strip() for v in req.args)
    if any(not v for v in volumes):
        raise ParseError("VOLUME specified can not be an empty string")
    return _new(VolumeInstruction, req, volumes=volumes)


def _arg(req: _Req) -> Instruction:
    if not req.args:
        raise _at_least_one("ARG")
    req.flags.parse()
    specs = []
    for word in req.args:
        if "=" in word:
            name, default = word.split("=", 1)
            if not name:
                raise ParseError("ARG names can not be blank")
            specs.append(ArgSpec(name, default))
        else:
            specs.append(ArgSpec(word))
    return _new(ArgInstruction, req, args=tuple(specs))


def _transfer(req: _Req, name: str) -> dict[str, Any]:
    if len(req.args) < 2:
        raise ParseError(
            f"{name} requires at least two arguments, but only one was provided. "
            "Destination could not be determined"
        )
    *srcs, dest = req.args
    if parse_heredoc(dest) is not None:
        raise ParseError(f"{name} cannot accept a heredoc as a destination")
    docs = {d.name: d for d in req.node.heredocs}
    sources: list[str] = []
    contents: list[InlineFile] = []
    for src in srcs:
        doc = parse_heredoc(src)
        if doc is None:
            sources.append(src)
            continue
        found = docs.get(doc.name, Heredoc(doc.name))
        data = chomp_heredoc(found.content) if doc.chomp else found.content
        contents.append(InlineFile(doc.name, data, doc.expand, doc.chomp))
    return {"sources": tuple(sources), "dest": dest, "contents": tuple(contents)}


def _add(req: _Req) -> Instruction:
    f = req.flags
    chown, chmod = f.add_string("chown", ""), f.add_string("chmod", "")
    link, keep_git = f.add_bool("link"), f.add_bool("keep-git-dir")
    checksum, unpack = f.add_string("checksum", ""), f.add_bool("unpack")
    exclude = f.add_strings("exclude")
    parts = _transfer(req, "ADD")
    f.parse()
    return _new(
        AddInstruction,
        req,
        chown=chown.value,
        chmod=chmod.value,
        link=link.is_true,
        checksum=checksum.value,
        keep_git_dir=keep_git.is_true if keep_git.used else None,
        unpack=unpack.is_true if unpack.used else None,
        excludes=tuple(exclude.values),
        **parts,
    )


def _copy(req: _Req) -> Instruction:
    f = req.flags
    chown, chmod = f.add_string("chown", ""), f.add_string("chmod", "")
    from_, link = f.add_string("from", ""), f.add_bool("link")
    exclude, parents = f.add_strings("exclude"), f.add_bool("parents")
    parts = _transfer(req, "COPY")
    f.parse()
    if "$" in from_.value:
        raise ParseError(
            "variable expansion is not supported for --from, define a new stage with FROM "
            "using ARG from global scope as a workaround"
        )
    return _new(
        CopyInstruction,
        req,
        chown=chown.value,
        chmod=chmod.value,
        from_=from_.value,
        link=link.is_true,
        parents=parents.is_true,
        excludes=tuple(exclude.values),
        **parts,
    )


def _from(req: _Req) -> Instruction:
    args = req.args
    stage: str | None = None
    if len(args) == 3 and args[1].lower() == "as":
        stage = args[2].lower()
        if not _STAGE_NAME.match(stage):
            raise ParseError(
                f'invalid name for build stage: "{args[2]}", '
                "name can't start with a number or contain symbols"
            )
    elif len(args) != 1:
        raise ParseError("FROM requires either one or three arguments")
    platform = req.flags.add_string("platform", "")
    req.flags.parse()
    return _new(
        FromInstruction,
        req,
        base=args[0],
        stage_name=stage,
        platform=platform.value if platform.used else None,
    )


def _interval(flag_name: str, value: str) -> int:
    if not value:
        return 0
    ns = go_duration(value)
    if ns == 0:
        return 0
    if ns < 1_000_000:
        raise ParseError(f'Interval "{flag_name}" cannot be less than 1ms')
    return ns


def _healthcheck(req: _Req) -> Instruction:
    if not req.args:
        raise _at_least_one("HEALTHCHECK")
    kind, args = req.args[0].upper(), req.args[1:]
    if kind == "NONE":
        if args:
            raise ParseError("HEALTHCHECK NONE takes no arguments")
        req.flags.parse()
        return _new(HealthcheckInstruction, req, test=("NONE",))
    names = ("interval", "timeout", "start-period", "start-interval", "retries")
    flags = {n: req.flags.add_string(n, "") for n in names}
    req.flags.parse()
    if kind != "CMD":
        raise ParseError(f'Unknown type "{kind}" in HEALTHCHECK (try CMD)')
    if not args:
        raise ParseError("Missing command after HEALTHCHECK CMD")
    test = ("CMD", *args) if req.node.json else ("CMD-SHELL", " ".join(args))
    durations = {n: _interval(n, flags[n].value) for n in names[:4]}
    retries = 0
    if flags["retries"].value:
        try:
            retries = int(flags["retries"].value, 10)
        except ValueError:
            raise ParseError(
                f'strconv.ParseInt: parsing "{flags["retries"].value}": invalid syntax'
            ) from None
        if retries < 0:
            raise ParseError(f"--retries cannot be negative ({retries})")
    return _new(
        HealthcheckInstruction,
        req,
        test=test,
        interval=durations["interval"],
        timeout=durations["timeout"],
        start_period=durations["start-period"],
        start_interval=durations["start-interval"],
        retries=retries,
    )


def _onbuild(req: _Req) -> Instruction:
    child = req.node.child
    if child is None:
        raise _at_least_one("ONBUILD")
    req.flags.parse()
    trigger = child.name.upper()
    if trigger == "ONBUILD":
        raise ParseError("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("MAINTAINER", "FROM"):
        raise ParseError(f"{trigger} isn't allowed as an ONBUILD trigger")
    expression = re.sub(r"(?i)^\s*ONBUILD\s*", "", req.node.original)
    for doc in req.node.heredocs:
        expression += "\n" + doc.content + doc.name
    nested = replace(child, heredocs=req.node.heredocs)
    return _new(OnbuildInstruction, req, expression=expression, trigger=_typed(nested))


_PARSERS: dict[str, Callable[[_Req], Instruction]] = {
    "add": _add,
    "arg": _arg,
    "cmd": _cmd,
    "copy": _copy,
    "entrypoint": _entrypoint,
    "env": _env,
    "expose": _expose,
    "from": _from,
    "healthcheck": _healthcheck,
    "label": _label,
    "maintainer": _maintainer,
    "onbuild": _onbuild,
    "run": _run,
    "shell": _shell,
    "stopsignal": _stopsignal,
    "user": _user,
    "volume": _volume,
    "workdir": _workdir,
}


def _typed(node: Node) -> Instruction:
    fn = _PARSERS.get(node.name)
    if fn is None:
        raise ParseError(
            suggest(f"unknown instruction: {node.keyword}", node.keyword, INSTRUCTION_NAMES, False)
        )
    return fn(_Req(node, Flags(node.flags)))


def parse_instruction(node: Node, filename: str = "Dockerfile") -> Instruction:
    """Turn one parser node into its typed instruction (errors located at the node)."""
    try:
        return _typed(node)
    except ParseError as exc:
        raise DockerfileError(filename, node.start_line, str(exc)) from None


# -- the whole file ---------------------------------------------------------------------------


class Stage(msgspec.Struct, frozen=True):

    index: int
    name: str | None  # lower-case, None when the stage has no AS name
    base: str  # unexpanded FROM argument (an image, a stage name or "scratch")
    platform: str | None
    source: FromInstruction
    instructions: tuple[Instruction, ...]
    start_line: int
    end_line: int


class Dockerfile(msgspec.Struct, frozen=True):

    filename: str
    directives: Directives
    meta_args: tuple[ArgInstruction, ...]  # global ARGs before the first FROM
    stages: tuple[Stage, ...]
    warnings: tuple[str, ...] = ()

    def stage(self, name_or_index: str | int) -> Stage:
        """A stage by (case-insensitive) name or by index; raises DockerfileError."""
        if isinstance(name_or_index, int) or name_or_index.isdigit():
            index = int(name_or_index)
            if 0 <= index < len(self.stages):
                return self.stages[index]
        else:
            for stage in self.stages:
                if stage.name == name_or_index.lower():
                    return stage
        raise DockerfileError(self.filename, None, f"target stage {name_or_index!r} not found")


def parse_dockerfile(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse and validate a whole Dockerfile into global ARGs and stages."""
    result = parse(text, filename)
    meta: list[ArgInstruction] = []
    stages: list[tuple[FromInstruction, list[Instruction]]] = []
    warnings = list(result.warnings)
    seen: dict[str, int] = {}
    for node in result.nodes:
        inst = parse_instruction(node, filename)
        if isinstance(inst, FromInstruction):
            _check_stage_name(inst, seen, warnings, filename)
            stages.append((inst, []))
        elif not stages and isinstance(inst, ArgInstruction):
            meta.append(inst)
        elif not stages:
            raise DockerfileError(filename, node.start_line, "no build stage in current context")
        else:
            stages[-1][1].append(inst)
    return Dockerfile(
        filename=filename,
        directives=result.directives,
        meta_args=tuple(meta),
        stages=tuple(_stage(i, src, insts) for i, (src, insts) in enumerate(stages)),
        warnings=tuple(warnings),
    )


def _check_stage_name(
    inst: FromInstruction, seen: dict[str, int], warnings: list[str], filename: str
) -> None:
    name = inst.stage_name
    if name is None:
        return
    if name in seen:
        raise DockerfileError(
            filename,
            inst.start_line,
            f'Duplicate stage name "{name}", stage names should be unique'
            f" (first used on line {seen[name]})",
        )
    seen[name] = inst.start_line
    if name in RESERVED_STAGE_NAMES:
        warnings.append(
            f"line {inst.start_line}: Stage name should not use the same name as reserved "
            f'stage "{name}"'
        )


def _stage(index: int, src: FromInstruction, insts: list[Instruction]) -> Stage:
    end = insts[-1].end_line if insts else src.end_line
    return Stage(
        index=index,
        name=src.stage_name,
        base=src.base,
        platform=src.platform,
        source=src,
        instructions=tuple(insts),
        start_line=src.start_line,
        end_line=end,
    )
