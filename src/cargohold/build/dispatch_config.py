"""Config-only instructions: they change the image config and add an ``empty_layer`` history
entry in the classic builder's style (``/bin/sh -c #(nop)  CMD ["/run.sh"]``)."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from typing import Any

from cargohold.build.cache import ImageState
from cargohold.build.instruction_support import ParseError
from cargohold.build.instructions import (
    CmdInstruction,
    EntrypointInstruction,
    EnvInstruction,
    ExposeInstruction,
    HealthcheckInstruction,
    Instruction,
    LabelInstruction,
    MaintainerInstruction,
    OnbuildInstruction,
    ShellInstruction,
    StopsignalInstruction,
    UserInstruction,
    VolumeInstruction,
    WorkdirInstruction,
)

DEFAULT_SHELL = ["/bin/sh", "-c"]
NOP = "/bin/sh -c #(nop)  "
_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


def go_list(values: list[str]) -> str:
    """Go's ``%q`` of a []string: ``["/bin/sh" "-c" "echo hi"]``."""
    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def shell_of(state: ImageState) -> list[str]:
    shell = state.section.get("Shell")
    return list(shell) if shell else list(DEFAULT_SHELL)


def command_of(inst: CmdInstruction | EntrypointInstruction, state: ImageState) -> list[str]:
    if inst.shell_form:
        return [*shell_of(state), *inst.command]
    return list(inst.command)


def _set_env(section: dict[str, Any], key: str, value: str) -> None:
    env = list(section.get("Env") or [])
    item = f"{key}={value}"
    for i, existing in enumerate(env):
        if str(existing).split("=", 1)[0] == key:
            env[i] = item
            break
    else:
        env.append(item)
    section["Env"] = env


def _env(inst: EnvInstruction, state: ImageState) -> str:
    for pair in inst.pairs:
        _set_env(state.section, pair.key, pair.value)
    return "ENV " + " ".join(f"{p.key}={p.value}" for p in inst.pairs)


def _label(inst: LabelInstruction, state: ImageState) -> str:
    labels = dict(state.section.get("Labels") or {})
    for pair in inst.pairs:
        labels[pair.key] = pair.value
    state.section["Labels"] = labels
    return "LABEL " + " ".join(f"{p.key}={p.value}" for p in inst.pairs)


def _maintainer(inst: MaintainerInstruction, state: ImageState) -> str:
    state.config["author"] = inst.maintainer
    return f"MAINTAINER {inst.maintainer}"


def expand_ports(ports: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for port in ports:
        match = _PORT.match(port)
        if match is None:
            raise ParseError(f"Invalid containerPort: {port}")
        start = int(match.group(1))
        end = int(match.group(2) or start)
        proto = (match.group(3) or "tcp").lower()
        if not 0 < start <= end <= 65535:
            raise ParseError(f"Invalid containerPort: {port}")
        out += [f"{p}/{proto}" for p in range(start, end + 1)]
    return out


def _expose(inst: ExposeInstruction, state: ImageState) -> str:
    ports = dict(state.section.get("ExposedPorts") or {})
    names = expand_ports(inst.ports)
    for name in names:
        ports[name] = {}
    state.section["ExposedPorts"] = ports
    return "EXPOSE " + " ".join(sorted(set(names)))


def _volume(inst: VolumeInstruction, state: ImageState) -> str:
    volumes = dict(state.section.get("Volumes") or {})
    for v in inst.volumes:
        volumes[v] = {}
    state.section["Volumes"] = volumes
    return "VOLUME " + go_list(list(inst.volumes))


def _user(inst: UserInstruction, state: ImageState) -> str:
    state.section["User"] = inst.user
    return f"USER {inst.user}"


def join_workdir(current: str, path: str) -> str:
    if not path.startswith("/"):
        path = posixpath.join(current or "/", path)
    clean = posixpath.normpath(path)
    return "/" + clean.lstrip("/") if clean.startswith("//") else clean


def _workdir(inst: WorkdirInstruction, state: ImageState) -> str:
    if "/proc/self/fd" in posixpath.normpath("/" + inst.path):
        raise ParseError(f"invalid WORKDIR {inst.path}: path through /proc/self/fd")
    state.section["WorkingDir"] = join_workdir(state.section.get("WorkingDir") or "/", inst.path)
    return f"WORKDIR {state.section['WorkingDir']}"


def _shell(inst: ShellInstruction, state: ImageState) -> str:
    state.section["Shell"] = list(inst.shell)
    return "SHELL " + go_list(list(inst.shell))


def check_signal(text: str) -> str:
    from cargohold.container.signals import parse_signal
    from cargohold.errors import InvalidArgument

    try:
        parse_signal(text)
    except InvalidArgument as exc:
        raise ParseError(exc.message) from None
    return text


def _stopsignal(inst: StopsignalInstruction, state: ImageState) -> str:
    state.section["StopSignal"] = check_signal(inst.signal)
    return f"STOPSIGNAL {inst.signal}"


def _healthcheck(inst: HealthcheckInstruction, state: ImageState) -> str:
    hc: dict[str, Any] = {"Test": list(inst.test)}
    for key, value in (
        ("Interval", inst.interval),
        ("Timeout", inst.timeout),
        ("StartPeriod", inst.start_period),
        ("StartInterval", inst.start_interval),
        ("Retries", inst.retries),
    ):
        if value:
            hc[key] = value
    state.section["Healthcheck"] = hc
    return f"HEALTHCHECK &{{{go_list(list(inst.test))} ...}}"


def _onbuild(inst: OnbuildInstruction, state: ImageState) -> str:
    triggers = list(state.section.get("OnBuild") or [])
    triggers.append(inst.expression.strip())
    state.section["OnBuild"] = triggers
    return f"ONBUILD {inst.expression.strip()}"


def _cmd(inst: CmdInstruction, state: ImageState) -> str:
    cmd = command_of(inst, state)
    state.section["Cmd"] = cmd
    state.cmd_set = True
    return f"CMD {go_list(cmd)}"


def _entrypoint(inst: EntrypointInstruction, state: ImageState) -> str:
    entrypoint = command_of(inst, state)
    state.section["Entrypoint"] = entrypoint or None
    if not state.cmd_set:
        state.section.pop("Cmd", None)  # a new ENTRYPOINT resets an inherited CMD
    return f"ENTRYPOINT {go_list(entrypoint)}"


HANDLERS: dict[type[Instruction], Callable[[Any, ImageState], str]] = {
    CmdInstruction: _cmd,
    EntrypointInstruction: _entrypoint,
    EnvInstruction: _env,
    ExposeInstruction: _expose,
    HealthcheckInstruction: _healthcheck,
    LabelInstruction: _label,
    MaintainerInstruction: _maintainer,
    OnbuildInstruction: _onbuild,
    ShellInstruction: _shell,
    StopsignalInstruction: _stopsignal,
    UserInstruction: _user,
    VolumeInstruction: _volume,
    WorkdirInstruction: _workdir,
}


def apply_config(inst: Instruction, state: ImageState) -> str:
    """Apply a config-only instruction to ``state``; returns the history ``created_by``."""
    return NOP + HANDLERS[type(inst)](inst, state)
