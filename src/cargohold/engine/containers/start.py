"""``start``: mount the rw layer, fill new volumes, set up networking, write the bundle's
config.json from the record (``with_*`` builders), record the cleanup actions and hand the
container to its monitor.  Any failure undoes what was set up.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold.container.model import ContainerRecord, HostConfig
from cargohold.errors import InvalidArgument

if TYPE_CHECKING:
    from cargohold.container.monitor_spawn import Prefork, SpawnResult
    from cargohold.container.spec import ResourceTuning
    from cargohold.engine import Engine
    from cargohold.engine.containers.network import NetSetup

CGROUP_PARENT = "/cargohold"


class SecurityOptions(msgspec.Struct, frozen=True):
    """What ``--security-opt`` values ask for (Docker's daemon parseSecurityOpt)."""

    no_new_privileges: bool = False
    seccomp: str = "default"
    apparmor: str = ""  # "" = the host's default (cargohold-default, unconfined if privileged)
    labels: tuple[str, ...] = ()  # SELinux label options; validated, no effect without SELinux


_LABEL_KEYS = ("user", "role", "type", "level", "filetype")


def _check_label(value: str) -> None:
    key, sep, _ = value.partition(":")
    if value != "disable" and (not sep or key not in _LABEL_KEYS):
        raise InvalidArgument(
            f"bad label option {json.dumps(value)}, valid options 'disable' or \n"
            "'user, role, level, type, filetype' followed by ':' and a value"
        )


def security_options(opts: tuple[str, ...]) -> SecurityOptions:
    """Parse ``--security-opt`` values (``key=value``, or Docker's older ``key:value``)."""
    nnp = False
    seccomp, apparmor = "default", ""
    labels: list[str] = []
    for raw in opts:
        key, sep, value = raw.partition("=")
        if not sep:
            key, sep, value = raw.partition(":")
        if key == "no-new-privileges":
            nnp = value.lower() in ("", "true", "1") if sep else True
            continue
        if raw == "disable":  # Docker's oldest form of label=disable
            key, sep, value = "label", "=", "disable"
        if not sep or not value:
            raise InvalidArgument(f"Invalid --security-opt: {raw!r}")
        if key == "seccomp":
            seccomp = value
        elif key == "apparmor":
            apparmor = value
        elif key == "label":
            _check_label(value)
            labels.append(value)
        elif key != "systempaths":
            raise InvalidArgument(f"invalid --security-opt 2: {raw!r}")
    return SecurityOptions(nnp, seccomp, apparmor, tuple(labels))


def swap_limit(memory: int, swap: int) -> int | None:
    if not memory:
        return None
    if swap:
        return swap
    if not Path("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists():
        return 0  # no swap accounting on this host: memory limit only
    return None  # Docker's default: twice the memory


def resource_tuning(host: HostConfig) -> ResourceTuning:
    from cargohold.container.spec import ResourceTuning

    return ResourceTuning(host.cpu_shares, host.cpu_period, host.cpu_quota, host.cpuset_cpus,
                          host.memory_reservation, host.blkio_weight)


def build_spec(record: ContainerRecord, rootfs: Path, net: NetSetup) -> dict[str, Any]:
    """The OCI config.json of ``record``."""
    from cargohold.container import spec as S
    from cargohold.container.apparmor import with_apparmor
    from cargohold.engine.containers.volumes import oci_mounts

    cfg, host = record.config, record.host_config
    args = [record.path, *record.args]
    privileged = host.privileged
    spec = S.base_spec()
    S.with_process(spec, args, env=[*cfg.env, *net.env], cwd=cfg.working_dir or "/", tty=cfg.tty)
    S.with_hostname(spec, cfg.hostname or record.id[:12])
    S.with_rootfs(spec, rootfs, readonly=host.readonly_rootfs)
    S.with_default_mounts(spec, privileged=privileged)
    user_mounts = oci_mounts(record.mount_points)
    taken = {m.destination for m in user_mounts}
    etc = [m for m in net.mounts if m.destination not in taken]
    S.with_mounts(spec, [*etc, *user_mounts])
    S.with_namespaces(spec, network=net.namespace)
    S.with_capabilities(spec, host.cap_add, host.cap_drop, privileged)
    S.with_masked_paths(spec, privileged=privileged)
    security = security_options(host.security_opt)
    S.with_seccomp(spec, security.seccomp, privileged=privileged)
    with_apparmor(spec, security.apparmor, privileged=privileged)
    if security.no_new_privileges:
        S.with_no_new_privileges(spec)
    S.with_devices(spec, privileged=privileged)
    S.with_rlimits(spec)
    S.with_resources(
        spec,
        memory=host.memory or None,
        memory_swap=swap_limit(host.memory, host.memory_swap),
        nano_cpus=host.nano_cpus or None,
        pids_limit=host.pids_limit,
        tuning=resource_tuning(host),
    )
    S.with_cgroups_path(spec, f"{CGROUP_PARENT}/{record.id}")
    S.with_user(spec, rootfs, cfg.user, host.group_add)
    if host.init:
        S.with_init(spec)
    if cfg.tty:
        height, width = host.console_size
        spec["process"]["consoleSize"] = {"height": height or 24, "width": width or 80}
    return spec


def start_container(
    engine: Engine,
    record: ContainerRecord,
    wait_for_attach: bool = False,
    prefork: Prefork | None = None,
) -> SpawnResult:
    """Set everything up and spawn the monitor (or hand the container to ``prefork``); on
    failure nothing stays behind."""
    from cargohold.container import cleanup
    from cargohold.container import monitor_spawn as monitor
    from cargohold.container.reconcile import record_cleanup, run_cleanup
    from cargohold.container.spec import write_spec
    from cargohold.engine.containers import network as cnet
    from cargohold.engine.containers.volumes import populate
    from cargohold.runtime.choice import resolve
    from cargohold.util.undo import Undo

    store = engine.container_store
    settings = engine.settings
    cid = record.id
    spec_m = monitor.MonitorSpec(
        settings.root,
        settings.runroot,
        cid,
        runtime_binary=resolve(record.host_config.runtime, settings.runtimes),
        runtime_root=settings.runroot / "runc",
        wait_for_attach=wait_for_attach,
    )
    if prefork:
        prefork.announce(spec_m)  # it loads the record while we set the container up
    undo = Undo()
    spawned = False
    try:
        # a --rm container's rw layer is discarded: no sync of it (on unmount) is needed
        rootfs = engine.layers.mount_rw(cid, volatile=record.host_config.auto_remove)
        undo.add(lambda: engine.layers.unmount_rw(cid))
        populate(engine, record, rootfs)
        net = cnet.setup(engine, record, undo)
        spec = build_spec(record, rootfs, net)
        bundle = store.bundle_dir(cid)
        bundle.mkdir(parents=True, exist_ok=True)
        write_spec(bundle, spec)
        actions: list[cleanup.CleanupAction] = []
        if cnet.uses_netns(cnet.mode_of(record.host_config)):
            actions += cleanup.network_teardown(cid)
        actions.append(cleanup.Unmount(path=str(rootfs)))
        if record.host_config.auto_remove:
            actions += cleanup.storage_removal(record.mount_points, engine.driver.name)
            actions.append(cleanup.RemoveContainer())
        record_cleanup(store, cid, actions)
        spawned = True
        if prefork:
            result = prefork.spawn(spec_m)
        else:
            result = monitor.spawn(spec_m, record=record, runtime=engine.runtime_for(record))
    except BaseException:
        undo.run()
        if spawned and store.dir(cid).is_dir():
            with contextlib.suppress(Exception):
                run_cleanup(store, cid)
        raise
    if record.name:
        with contextlib.suppress(Exception):
            cnet.refresh_links(engine, record)
    return result
