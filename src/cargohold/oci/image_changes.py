"""``commit -c`` / ``import -c``: Dockerfile-style change lines applied to an image config.

Docker joins the changes with newlines, parses them as a Dockerfile (continuations,
comments) and accepts only CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, USER,
VOLUME and WORKDIR; anything else is "<instr> is not a valid change command".  ENV, LABEL,
EXPOSE, USER, VOLUME and WORKDIR values have quotes removed and ``$VAR`` / ``${VAR}`` /
``${VAR:-x}`` / ``${VAR:+x}`` expanded from the config's Env, as the builder does.
"""

from __future__ import annotations

import json
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cargohold.errors import InvalidArgument

VALID_CHANGE_COMMANDS = ("cmd", "entrypoint", "env", "expose", "healthcheck", "label",
                         "onbuild", "user", "volume", "workdir")


def apply_changes(config: Mapping[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """A new config (Docker field names: Env, Cmd, ...) with ``changes`` applied."""
    out = dict(config)
    if not changes:
        return out
    parsed = []
    for text in _logical_lines("\n".join(changes)):
        word, _, rest = text.partition(" ") if " " in text else text.partition("\t")
        name = word.lower()
        if name not in VALID_CHANGE_COMMANDS:
            raise InvalidArgument(f"{name} is not a valid change command")
        parsed.append((name, rest.strip()))
    state = {"cmd_set": False}
    for name, rest in parsed:
        _DISPATCH[name](out, rest, state)
    return out


def _logical_lines(text: str) -> list[str]:
    """Dockerfile lines: ``\\`` continuations joined, comments and blank lines dropped."""
    lines: list[str] = []
    pending = ""
    for raw in text.split("\n"):
        stripped = raw.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue
        if raw.rstrip().endswith("\\"):
            pending += raw.rstrip()[:-1]
            continue
        pending += raw
        lines.append(pending.strip())
        pending = ""
    if pending.strip():
        lines.append(pending.strip())
    return lines


# ------------------------------------------------------------------------ word processing


def _words(text: str) -> list[str]:
    """Split on unquoted whitespace, keeping quotes and escapes (buildkit's parseWords)."""
    words, cur, quote, i = [], "", "", 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and quote != "'" and i + 1 < len(text):
            cur += text[i : i + 2]
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch in " \t":
            if cur:
                words.append(cur)
            cur = ""
            i += 1
            continue
        cur += ch
        i += 1
    if cur:
        words.append(cur)
    return words


_VAR_RE = re.compile(
    r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))"
)


def _env_map(config: Mapping[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        key, _, value = item.partition("=")
        env[key] = value
    return env


def _expand_vars(text: str, env: Mapping[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(4)
        op, word = m.group(2), m.group(3) or ""
        value = env.get(name)
        if op in (":-", "-"):
            unset = value is None or (op == ":-" and value == "")
            return _expand_vars(word, env) if unset else str(value)
        if op in (":+", "+"):
            is_set = value is not None and (op == "+" or value != "")
            return _expand_vars(word, env) if is_set else ""
        return value or ""

    return _VAR_RE.sub(one, text)


def _process(word: str, env: Mapping[str, str]) -> str:
    """Quote removal and variable expansion of one word, shell style."""
    out: list[str] = []
    i = 0
    while i < len(word):
        ch = word[i]
        if ch == "'":
            end = word.find("'", i + 1)
            end = len(word) if end < 0 else end
            out.append(word[i + 1 : end])
            i = end + 1
        elif ch == '"':
            j, buf = i + 1, ""
            while j < len(word) and word[j] != '"':
                if word[j] == "\\" and j + 1 < len(word) and word[j + 1] in '"\\$`':
                    buf += "\\" + word[j + 1] if word[j + 1] == "$" else word[j + 1]
                    j += 2
                    continue
                buf += word[j]
                j += 1
            out.append(_expand_keeping_escaped(buf, env))
            i = j + 1
        elif ch == "\\" and i + 1 < len(word):
            out.append(word[i + 1])
            i += 2
        else:
            j = i
            while j < len(word) and word[j] not in "'\"\\":
                j += 1
            out.append(_expand_vars(word[i:j], env))
            i = j
    return "".join(out)


def _expand_keeping_escaped(text: str, env: Mapping[str, str]) -> str:
    parts = text.split("\\$")
    return "$".join(_expand_vars(p, env) for p in parts)


def _json_list(rest: str) -> list[str] | None:
    """The exec form of ``rest`` when it is a JSON array of strings, else None."""
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest)
    except ValueError:
        return None
    if isinstance(value, list) and all(isinstance(x, str) for x in value):
        return value
    return None


# ------------------------------------------------------------------------ instructions


def _shell_form(config: Mapping[str, Any], rest: str) -> list[str]:
    shell = config.get("Shell") or ["/bin/sh", "-c"]
    return [*shell, rest]


def _cmd(config: dict[str, Any], rest: str, state: dict[str, bool]) -> None:
    exec_form = _json_list(rest)
    if exec_form is None and not rest:
        raise InvalidArgument("CMD requires at least one argument")
    config["Cmd"] = exec_form if exec_form is not None else _shell_form(config, rest)
    state["cmd_set"] = True


def _entrypoint(config: dict[str, Any], rest: str, state: dict[str, bool]) -> None:
    exec_form = _json_list(rest)
    if exec_form is not None:
        config["Entrypoint"] = exec_form
    elif rest:
        config["Entrypoint"] = _shell_form(config, rest)
    else:
        config["Entrypoint"] = None
    if not state["cmd_set"]:  # a new ENTRYPOINT drops the image's CMD, as in builds
        config["Cmd"] = None


def _pairs(rest: str, instr: str, env: Mapping[str, str]) -> list[tuple[str, str]]:
    words = _words(rest)
    if not words:
        raise InvalidArgument(f"{instr} requires at least one argument")
    if "=" not in words[0]:  # legacy form: NAME VALUE...
        parts = re.split(r"[ \t]+", rest, maxsplit=1)
        if len(parts) < 2 or not parts[1]:
            raise InvalidArgument(f"{instr} must have two arguments")
        return [(parts[0], _process(parts[1], env))]
    pairs = []
    for word in words:
        if "=" not in word:
            raise InvalidArgument(
                f"Syntax error - can't find = in \"{word}\". Must be of the form: name=value"
            )
        key, _, value = word.partition("=")
        key = _process(key, env)
        if not key:
            raise InvalidArgument(f"{instr} names can not be blank")
        pairs.append((key, _process(value, env)))
    return pairs


def _env(config: dict[str, Any], rest: str, _: dict[str, bool]) -> None:
    env_list = list(config.get("Env") or [])
    for key, value in _pairs(rest, "ENV", _env_map(config)):
        entry = f"{key}={value}"
        for i, item in enumerate(env_list):
            if item.partition("=")[0] == key:
                env_list[i] = entry
                break
        else:
            env_list.append(entry)
        config["Env"] = env_list


def _label(config: dict[str, Any], rest: str, _: dict[str, bool]) -> None:
    labels = dict(config.get("Labels") or {})
    labels.update(_pairs(rest, "LABEL", _env_map(config)))
    config["Labels"] = {k: labels[k] for k in sorted(labels)}


_PORT_RE = re.compile(r"^(\d+)(?:-(\d+))?$")


def _expose(config: dict[str, Any], rest: str, _: dict[str, bool]) -> None:
    env = _env_map(config)
    ports = dict(config.get("ExposedPorts") or {})
    words = [_process(w, env) for w in _words(rest)]
    if not words:
        raise InvalidArgument("EXPOSE requires at least one argument")
    for spec in words:
        port, _sep, proto = spec.partition("/")
        proto = proto.lower() or "tcp"
        if proto not in ("tcp", "udp", "sctp"):
            raise InvalidArgument(f"invalid proto: {proto}")
        m = _PORT_RE.match(port)
        if m is None:
            raise InvalidArgument(f"invalid containerPort: {port}")
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) else start
        if end < start or not 0 < start <= 65535 or end > 65535:
            raise InvalidArgument(f"invalid range specified for container port: {port}")
        for n in range(start, end + 1):
            ports[f"{n}/{proto}"] = {}
    config["ExposedPorts"] = {k: ports[k] for k in sorted(ports)}


def _user(config: dict[str, Any], rest: str, _: dict[str, bool]) -> None:
    if not rest:
        raise InvalidArgument("USER requires exactly one argument")
    config["User"] = _process(rest, _env_map(config))


def _workdir(config: dict[str, Any], rest: str, _: dict[str, bool]) -> None:
    if not rest:
        raise InvalidArgument("WORKDIR requires exactly one argument")
    path = _process(rest, _env_map(config))
    if not path.startswith("/"):
        path = posixpath.join("/", config.get("WorkingDir") or "/", path)
    path = posixpath.normpath(path)
    config["WorkingDir"] = "/" + path.lstrip("/")


def _volume(config: dict[str, Any], rest: str, _: dict[str, bool]) -> None:
    env = _env_map(config)
    exec_form = _json_list(rest)
    paths = exec_form if exec_form is not None else [_process(w, env) for w in _words(rest)]
    if not paths:
        raise InvalidArgument("VOLUME requires at least one argument")
    volumes = dict(config.get("Volumes") or {})
    for path in paths:
        if not path.strip():
            raise InvalidArgument("VOLUME specified can not be an empty string")
        volumes[path] = {}
    config["Volumes"] = {k: volumes[k] for k in sorted(volumes)}


def _onbuild(config: dict[str, Any], rest: str, _: dict[str, bool]) -> None:
    trigger = rest.split(None, 1)[0].upper() if rest else ""
    if not trigger:
        raise InvalidArgument("ONBUILD requires at least one argument")
    if trigger == "ONBUILD":
        raise InvalidArgument("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
    if trigger in ("FROM", "MAINTAINER"):
        raise InvalidArgument(f"{trigger} isn't allowed as an ONBUILD trigger")
    config["OnBuild"] = [*(config.get("OnBuild") or []), rest]


_HEALTH_FLAGS = {"interval": "Interval", "timeout": "Timeout", "start-period": "StartPeriod",
                 "start-interval": "StartInterval"}


def _healthcheck(config: dict[str, Any], rest: str, _: dict[str, bool]) -> None:
    from cargohold.oci.durations import parse_go_duration

    values: dict[str, int] = {}
    while rest.startswith("--"):
        flag, _sep, rest = rest.partition(" ")
        rest = rest.lstrip()
        name, eq, value = flag[2:].partition("=")
        if name in _HEALTH_FLAGS and eq:
            ns = parse_go_duration(value)
            if 0 < ns < 1_000_000:
                raise InvalidArgument(f"{_HEALTH_FLAGS[name]} \"--{name}\" cannot be less "
                                      "than 1ms")
            values[_HEALTH_FLAGS[name]] = ns
        elif name == "retries" and eq:
            if not re.fullmatch(r"-?\d+", value):
                raise InvalidArgument(f'strconv.ParseInt: parsing "{value}": invalid syntax')
            if int(value) < 0:
                raise InvalidArgument("--retries cannot be negative")
            values["Retries"] = int(value)
        else:
            raise InvalidArgument(f"Unknown flag: {name}")
    kind, _sep, cmd = rest.partition(" ")
    if kind.upper() == "NONE":
        if cmd.strip() or values:
            raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
        config["Healthcheck"] = {"Test": ["NONE"]}
        return
    if kind.upper() != "CMD":
        raise InvalidArgument(f'Unknown type "{kind.upper()}" in HEALTHCHECK (try CMD)')
    cmd = cmd.strip()
    exec_form = _json_list(cmd)
    test = ["CMD", *exec_form] if exec_form is not None else ["CMD-SHELL", cmd]
    health: dict[str, Any] = {"Test": test}
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval", "Retries"):
        if values.get(key):
            health[key] = values[key]
    config["Healthcheck"] = health


_DISPATCH: dict[str, Callable[[dict[str, Any], str, dict[str, bool]], None]] = {
    "cmd": _cmd,
    "entrypoint": _entrypoint,
    "env": _env,
    "expose": _expose,
    "healthcheck": _healthcheck,
    "label": _label,
    "onbuild": _onbuild,
    "user": _user,
    "volume": _volume,
    "workdir": _workdir,
}
