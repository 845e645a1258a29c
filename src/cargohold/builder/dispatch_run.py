"""RUN: the command in a working container through the same runtime and networks as ``run``.

The container gets Docker's default mounts, capabilities, seccomp profile, masked paths and
devices (``run --privileged``'s for ``RUN --security=insecure``, which the executor allows only
with ``build --allow security.insecure``); the default bridge with NAT (``--network host|none``
as asked and allowed); ``RUN --mount`` cache, tmpfs, secret and bind mounts
(``run_mounts.py``).  Mount points runc had to create are removed before the diff so they
never end up in the layer.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cargohold.builder.instructions import RunInstruction

if TYPE_CHECKING:
    from cargohold.builder.run_mounts import RunEnv
    from cargohold.builder.workdir import WorkingContainer  # tarfile: not for a cached RUN
    from cargohold.runtime.base import OCIRuntime


def run_argv(inst: RunInstruction, shell: list[str]) -> list[str]:
    """The process argv: shell form through SHELL (heredocs fed to the shell as a script)."""
    if not inst.shell_form:
        return list(inst.command)
    command = inst.command[0] if inst.command else ""
    if inst.files:
        stripped = command.strip()
        only_doc = len(inst.files) == 1 and stripped.lstrip("0123456789").startswith("<<")
        if only_doc and " " not in stripped:
            command = inst.files[0].data
        else:
            body = "".join(
                "\n" + (f.data if f.data.endswith("\n") or not f.data else f.data + "\n") + f.name
                for f in inst.files
            )
            command = command + body
    return [*shell, command]


def _bridge_mounts(bundle: Path, hostname: str, ip: str | None, host_net: bool) -> list[Any]:
    from cargohold.container.spec import Mount as SpecMount
    from cargohold.network import hosts

    if host_net:
        resolv = Path("/etc/resolv.conf").read_text() if Path("/etc/resolv.conf").exists() else ""
        hosts_text = Path("/etc/hosts").read_text() if Path("/etc/hosts").exists() else ""
    else:
        resolv = hosts.build_resolv_conf(hosts.host_resolv_conf())
        hosts_text = hosts.build_hosts(hostname, ip)
    files = {"resolv.conf": resolv, "hosts": hosts_text, "hostname": hosts.build_hostname(hostname)}
    mounts = []
    for name, text in files.items():
        (bundle / name).write_text(text)
        mounts.append(SpecMount("bind", f"/etc/{name}", str(bundle / name), recursive=False))
    return mounts


@contextlib.contextmanager
def _network(env: RunEnv, mode: str, cid: str) -> Iterator[tuple[str, str | None]]:
    """(namespace mode for the spec, container ip) for default/bridge, host or none."""
    if mode == "host":
        yield "host", None
        return
    from cargohold.network import netns

    name = netns.netns_name(cid)
    path = netns.create(name)
    attached = None
    try:
        ip = None
        if mode in ("default", "bridge") and env.network_store is not None:
            from cargohold.network.bridge import BridgeBackend

            env.network_store.ensure_defaults()
            network = env.network_store.get("bridge")
            backend = BridgeBackend(env.network_store)
            ip = backend.attach(cid, str(path), network).ip
            attached = (backend, network)
        yield str(path), ip
    finally:
        try:
            if attached is not None:
                attached[0].detach(cid, str(path), attached[1], delete_link=False)
        finally:
            netns.delete(name)


def execute(
    wc: WorkingContainer,
    env: RunEnv,
    inst: RunInstruction,
    argv: list[str],
    proc_env: dict[str, str],
    cwd: str,
    user: str,
    network: str,
    output: Callable[[bytes], None],
) -> int:
    """Run ``argv`` in the working container; returns its exit code.  ``network`` and
    ``RUN --security=insecure`` (privileged) were checked against the build's entitlements.
    Every mount, view and namespace made for the step is gone when this returns or raises."""
    from cargohold.builder.run_mounts import step_mounts
    from cargohold.runtime.base import Stdio
    from cargohold.util.securejoin import mkdir_beneath

    assert wc.rootfs is not None
    root_fd = wc.root_fd()
    try:
        os.close(mkdir_beneath(root_fd, cwd))
    finally:
        os.close(root_fd)
    stubs = wc.missing_stubs()
    cid = wc.rw_id
    bundle = env.runroot / "builds" / cid
    bundle.parent.mkdir(parents=True, exist_ok=True)
    bundle.mkdir(mode=0o700, exist_ok=True)
    try:
        with contextlib.ExitStack() as stack:
            mounts = step_mounts(inst, env, bundle, cwd, stack)
            netmode, ip = stack.enter_context(_network(env, network, cid))
            mounts = _bridge_mounts(bundle, cid[-12:], ip, netmode == "host") + mounts
            spec = _spec(wc, argv, proc_env, cwd, user, netmode, mounts,
                         privileged=inst.security == "insecure")
            from cargohold.container.spec import write_spec

            write_spec(bundle, spec)
            code = _run(env.runtime, cid, bundle, output, Stdio)
        wc.remove_stubs(stubs)
        return code
    finally:
        import shutil

        shutil.rmtree(bundle, ignore_errors=True)


def _spec(wc: WorkingContainer, argv: list[str], proc_env: dict[str, str], cwd: str,
          user: str, netmode: str, mounts: list[Any], privileged: bool) -> dict[str, Any]:
    """The step's config.json: ``run``'s defaults, or ``run --privileged``'s."""
    from cargohold.container import spec as S
    from cargohold.container.apparmor import with_apparmor

    assert wc.rootfs is not None
    cid = wc.rw_id
    spec = S.base_spec()
    S.with_process(spec, argv, env=[f"{k}={v}" for k, v in proc_env.items()], cwd=cwd)
    S.with_rootfs(spec, wc.rootfs)
    S.with_hostname(spec, cid[-12:])
    S.with_default_mounts(spec, privileged=privileged)
    S.with_mounts(spec, mounts)
    S.with_namespaces(spec, network=netmode)
    S.with_capabilities(spec, privileged=privileged)
    S.with_masked_paths(spec, privileged=privileged)
    S.with_devices(spec, privileged=privileged)
    S.with_seccomp(spec, privileged=privileged)
    with_apparmor(spec, privileged=privileged)  # the default profile where enabled, as `run`
    S.with_rlimits(spec)
    S.with_user(spec, wc.rootfs, user)
    spec["process"]["noNewPrivileges"] = False
    return spec


def _run(runtime: OCIRuntime, cid: str, bundle: Path, output: Callable[[bytes], None],
         stdio_cls: Any) -> int:
    read_fd, write_fd = os.pipe()
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)

    def pump() -> None:
        while True:
            data = os.read(read_fd, 65536)
            if not data:
                break
            output(data)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        try:
            return runtime.run(cid, bundle, stdio=stdio_cls(devnull, write_fd, write_fd))
        finally:
            os.close(write_fd)
            os.close(devnull)
            reader.join()
    finally:
        os.close(read_fd)
        with contextlib.suppress(Exception):
            runtime.delete(cid, force=True)
