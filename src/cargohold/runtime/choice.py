"""Which OCI runtime binary a container uses (Docker's ``runtimes``).

A runtime is chosen by name: the built-in ``runc`` (found on $PATH), a name the configuration
file defines (``[runtimes.NAME] path = "/opt/runc/runc"``) or a path to a runc-compatible
binary. The global ``--runtime``, CARGOHOLD_RUNTIME or the file's ``[engine] runtime`` choose
the default; ``run/create --runtime`` one container's. A container keeps the runtime it was
created with (``HostConfig.Runtime``), so later commands use the same binary whatever their
own default is. Nothing is ever downloaded: the binary must already be on this host.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

import msgspec

from cargohold.errors import CargoholdError, InvalidArgument

BUILTIN = "runc"


def runtime_binary(name: str, runtimes: Mapping[str, str]) -> str:
    """What to execute for ``name`` (not checked: commands fail when it is missing)."""
    name = name or BUILTIN
    return runtimes.get(name, name)


def record_name(name: str) -> str:
    """The name a container records: a path made absolute (the monitor runs elsewhere)."""
    name = name or BUILTIN
    return os.path.abspath(name) if "/" in name else name


def resolve(name: str, runtimes: Mapping[str, str]) -> str:
    """The absolute path of runtime ``name``; an error naming the problem when it is an
    unknown name or its binary is missing or not executable."""
    name = name or BUILTIN
    if name not in runtimes and "/" not in name and name != BUILTIN:
        raise InvalidArgument(f"unknown or invalid runtime name: {name}")
    binary = runtime_binary(name, runtimes)
    path = os.path.abspath(binary) if "/" in binary else shutil.which(binary)
    if path is None:
        raise InvalidArgument(
            f'OCI runtime "{name}": exec: "{binary}": executable file not found in $PATH'
        )
    if not os.path.isfile(path):
        raise InvalidArgument(f'OCI runtime "{name}": {path}: no such file')
    if not os.access(path, os.X_OK):
        raise InvalidArgument(f'OCI runtime "{name}": {path}: permission denied (not '
                              "executable)")  # fmt: skip
    return path


def version_lines(path: str, limit: int = 3, timeout: float = 10) -> list[str]:
    """The first lines of ``<runtime> --version`` (runc: version, commit, spec); one line
    saying why when it cannot be run."""
    import subprocess

    try:
        proc = subprocess.run([path, "--version"], capture_output=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return [f"unknown ({exc})"]
    lines = [ln.strip() for ln in proc.stdout.decode(errors="replace").splitlines()]
    lines = [ln for ln in lines if ln][:limit]
    if proc.returncode != 0 or not lines:
        return [f"unknown (`{path} --version` exited with {proc.returncode})"]
    return lines


class RuntimeInfo(msgspec.Struct, frozen=True):
    """What ``version`` (and ``info``) show about the default runtime."""

    name: str
    path: str = ""
    version: tuple[str, ...] = ()
    error: str = ""

    @property
    def short_name(self) -> str:
        """The name Docker's ``Runtimes``/``DefaultRuntime`` show (a path's base name)."""
        return os.path.basename(self.name) if "/" in self.name else self.name

    @property
    def commit(self) -> str:
        """Docker's ``RuncCommit.ID``: the ``commit:`` line, else the version word of the
        ``NAME version X`` line ("" when the runtime could not be run)."""
        version = ""
        for line in self.version:
            words = line.split()
            if line.startswith("commit:"):
                return line.partition(":")[2].strip()
            if len(words) == 3 and words[1] == "version" and not version:
                version = words[2]
        return version


def describe(name: str, runtimes: Mapping[str, str]) -> RuntimeInfo:
    """The runtime's path and the first lines of its ``--version`` (runs the binary)."""
    name = name or BUILTIN
    try:
        path = resolve(name, runtimes)
    except CargoholdError as exc:
        return RuntimeInfo(name, error=exc.message)
    return RuntimeInfo(name, path, tuple(version_lines(path)))
