"""Config-only instructions: they change the image config and add an ``empty_layer`` history
entry in the classic builder's style (``/bin/sh -c #(nop)  CMD ["/run.sh"]``): the current
SHELL, ``#(nop)``, two spaces (one for WORKDIR, COPY and ADD) and Go's ``%q`` or ``%v`` of the
value, as Docker 20.10 writes them (compared in tests/integration/test_docker_differential.py)."""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable
from typing import Any

from cargohold.builder.cache import ImageState
from cargohold.builder.instruction_support import ParseError
from cargohold.builder.instructions import (
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
_PORT = re.compile(r"^(\d+)(?:-(\d+))?(?:/(tcp|udp|sctp))?$", re.IGNORECASE)


def go_list(values: list[str]) -> str:
    """Go's ``%q`` of a []string: ``["/bin/sh" "-c" "echo hi"]``."""
    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def go_values(values: list[str]) -> str:
    """Go's ``%v`` of a []string: ``[/bin/sh -c]``."""
    return "[" + " ".join(values) + "]"


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()``: ``0s``, ``500ms``, ``1m30s``, ``1h0m0s``."""
    if ns == 0:
        return "0s"
    sign, u = ("-", -ns) if ns < 0 else ("", ns)
    if u < 1_000_000_000:
        for unit, prec in (("ns", 0), ("µs", 3), ("ms", 6)):
            if u < 10 ** (prec + 3):
                return sign + _fraction(u, prec) + unit
    text = _fraction(u, 9) + "s"
    minutes = u // 60_000_000_000
    if minutes:
        seconds = _fraction(u % 60_000_000_000, 9)
        text = f"{minutes % 60}m{seconds}s"
        if minutes >= 60:
            text = f"{minutes // 60}h{text}"
    return sign + text


def _fraction(value: int, prec: int) -> str:
    """``value / 10**prec`` with Go's trimmed fraction (``1.5``, ``30``)."""
    whole, frac = divmod(value, 10**prec) if prec else (value, 0)
    digits = f"{frac:0{prec}d}".rstrip("0") if prec else ""
    return f"{whole}.{digits}" if digits else str(whole)


def go_quote_rune(value: int) -> str:
    """Go's ``%q`` of an int (a quoted character literal): 3 is ``'\\x03'``."""
    escapes = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
               39: "\\'", 92: "\\\\"}
    if value in escapes:
        return f"'{escapes[value]}'"
    if not 0 <= value <= 0x10FFFF or 0xD800 <= value <= 0xDFFF:
        value = 0xFFFD  # Go's utf8.RuneError, printed as itself
    char = chr(value)
    if char.isprintable():
        return f"'{char}'"
    if value < 0x80:
        return f"'\\x{value:02x}'"
    return f"'\\u{value:04x}'" if value < 0x10000 else f"'\\U{value:08x}'"


def nop(state: ImageState, text: str, single: bool = False) -> str:
    """The classic builder's history of a step that runs nothing: the stage's SHELL,
    ``#(nop)`` and two spaces (``withCmdComment``; one for WORKDIR/COPY/ADD)."""
    return " ".join(shell_of(state)) + (" #(nop) " if single else " #(nop)  ") + text


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
    for name in expand_ports(inst.ports):
        ports[name] = {}
    state.section["ExposedPorts"] = ports
    return "EXPOSE " + " ".join(inst.ports)  # the words as sorted before expansion


def _volume(inst: VolumeInstruction, state: ImageState) -> str:
    volumes = dict(state.section.get("Volumes") or {})
    for v in inst.volumes:
        volumes[v] = {}
    state.section["Volumes"] = volumes
    return "VOLUME " + go_values(list(inst.volumes))


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
    return "SHELL " + go_values(list(inst.shell))


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
    # Go's %q of a *HealthConfig; StartInterval (Docker 25) only when it is set
    durations = [inst.interval, inst.timeout, inst.start_period]
    if inst.start_interval:
        durations.append(inst.start_interval)
    fields = [go_list(list(inst.test)), *(f'"{go_duration(d)}"' for d in durations),
              go_quote_rune(inst.retries)]
    return f"HEALTHCHECK &{{{' '.join(fields)}}}"


def _onbuild(inst: OnbuildInstruction, state: ImageState) -> str:
    triggers = list(state.section.get("OnBuild") or [])
    triggers.append(inst.expression.strip())
    state.section["OnBuild"] = triggers
    return f"ONBUILD {inst.expression.strip()}"


def _cmd(inst: CmdInstruction, state: ImageState) -> str:
    cmd = command_of(inst, state)
    state.section["Cmd"] = cmd
    if inst.command:  # ``CMD []`` leaves a later ENTRYPOINT free to reset it (Docker's cmdSet)
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
    """Apply a config-only instruction to ``state``; returns the history ``created_by`` (with
    the shell as it is after the step, so ``SHELL`` shows its own)."""
    text = HANDLERS[type(inst)](inst, state)
    return nop(state, text, single=isinstance(inst, WorkdirInstruction))
