"""``update``: change a container's restart policy and resource limits, as Docker 20.10 does.

Three steps, each with moby's rules and wording:

1. :func:`validate` checks the request alone (``verifyPlatformContainerResources`` with
   ``update=true``): limits the kernel lacks are dropped with Docker's warning, impossible
   values are refused.
2. :func:`merge` folds the non-zero values into the stored HostConfig (``UpdateContainer``),
   refusing the conflicts Docker refuses ("Cannot update container <id>: ...").
3. Under the container's state lock, which the monitor also takes to decide about a
   restart: a running (or paused) container gets the limits through ``runc update``, the
   bundle's config.json gets them for the monitor's next restart, then the record is
   written.  A runtime failure leaves the record unchanged.  ``start`` builds the spec from
   the record, so a stopped container picks everything up when it starts.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Protocol

import msgspec

from cargohold.container.model import HostConfig, RestartPolicy, Status
from cargohold.container.spec import MIN_MEMORY
from cargohold.errors import CargoholdError, ClientError, Conflict, InvalidArgument

if TYPE_CHECKING:
    from pathlib import Path

    from cargohold.engine import Engine
    from cargohold.engine.system.host_info import CgroupFeatures

_UNSUPPORTED = "Your kernel does not support {} or the cgroup is not mounted. {}"


class UpdateRequest(msgspec.Struct, frozen=True):
    """What ``update`` was asked to change (0 / "" / None: leave as it is): the body of
    ``POST /containers/{id}/update`` (Docker's UpdateConfig) with its field names."""

    restart_policy: RestartPolicy | None = msgspec.field(default=None, name="RestartPolicy")
    memory: int = msgspec.field(default=0, name="Memory")
    memory_swap: int = msgspec.field(default=0, name="MemorySwap")  # -1: unlimited
    memory_reservation: int = msgspec.field(default=0, name="MemoryReservation")
    nano_cpus: int = msgspec.field(default=0, name="NanoCpus")
    cpu_shares: int = msgspec.field(default=0, name="CpuShares")
    cpu_period: int = msgspec.field(default=0, name="CpuPeriod")
    cpu_quota: int = msgspec.field(default=0, name="CpuQuota")
    cpuset_cpus: str = msgspec.field(default="", name="CpusetCpus")
    pids_limit: int | None = msgspec.field(default=None, name="PidsLimit")  # <= 0: unlimited
    blkio_weight: int = msgspec.field(default=0, name="BlkioWeight")


def parse_restart_policy(text: str) -> RestartPolicy:
    """``--restart`` as Docker's CLI splits it and its daemon checks it."""
    name, _, count = text.partition(":")
    if text.count(":") > 1:
        raise ClientError("invalid restart policy format")
    if count and not count.lstrip("-").isdigit():
        raise ClientError("maximum retry count must be an integer")
    if name not in ("no", "always", "unless-stopped", "on-failure"):
        raise InvalidArgument(f"invalid restart policy '{name}'")
    return RestartPolicy.parse(text).validate()


def parse_cpu_list(text: str) -> set[int]:
    """Docker's ``ParseUintList`` ("0-3,5"); ValueError on a bad list."""
    out: set[int] = set()
    for part in text.split(","):
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise ValueError(text)
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(text)
        out.update(range(first, last + 1))
    return out


def validate(req: UpdateRequest, features: CgroupFeatures, ncpu: int,
             cpus_available: str) -> tuple[UpdateRequest, list[str]]:
    """The request as it will be applied, and Docker's warnings for what was dropped."""
    warnings: list[str] = []
    changes: dict[str, Any] = {}
    if req.restart_policy is not None:
        req.restart_policy.validate()
    check_memory(req)
    if req.memory > 0 and not features.memory_limit:
        warnings.append(_UNSUPPORTED.format("memory limit capabilities", "Limitation discarded."))
        changes.update(memory=0, memory_swap=-1)
    elif req.memory > 0 and req.memory_swap != -1 and not features.swap_limit:
        warnings.append(_UNSUPPORTED.format("swap limit capabilities",
                                            "Memory limited without swap."))
        changes["memory_swap"] = -1
    if req.pids_limit is not None and not features.pids_limit:
        if req.pids_limit > 0:
            warnings.append(_UNSUPPORTED.format("PIDs limit capabilities",
                                                "PIDs limit discarded."))
        changes["pids_limit"] = None
    warnings += _validate_cpu(req, features, ncpu, cpus_available, changes)
    if req.blkio_weight > 0 and not features.blkio_weight:
        warnings.append(_UNSUPPORTED.format("Block I/O weight", "Weight discarded."))
        changes["blkio_weight"] = 0
    elif req.blkio_weight and not 10 <= req.blkio_weight <= 1000:
        raise InvalidArgument("Range of blkio weight is from 10 to 1000")
    return msgspec.structs.replace(req, **changes), warnings


class Limits(Protocol):
    """The limit fields HostConfig (create) and UpdateRequest (update) share."""

    @property
    def memory(self) -> int: ...
    @property
    def memory_swap(self) -> int: ...
    @property
    def memory_reservation(self) -> int: ...
    @property
    def nano_cpus(self) -> int: ...
    @property
    def cpu_period(self) -> int: ...
    @property
    def cpu_quota(self) -> int: ...


def check_memory(req: Limits) -> None:
    """The memory values moby refuses whatever the kernel supports."""
    if req.memory and req.memory < MIN_MEMORY:
        raise InvalidArgument("Minimum memory limit allowed is 6MB")
    if req.memory > 0 and 0 < req.memory_swap < req.memory:
        raise InvalidArgument("Minimum memoryswap limit should be larger than memory limit, "
                              "see usage")
    if req.memory_reservation and req.memory_reservation < MIN_MEMORY:
        raise InvalidArgument("Minimum memory reservation allowed is 6MB")
    if req.memory > 0 and req.memory < req.memory_reservation:
        raise InvalidArgument("Minimum memory limit can not be less than memory reservation "
                              "limit, see usage")


def check_nano_cpus(req: Limits, ncpu: int) -> None:
    """NanoCpus: not with a CFS period/quota, and within the host's CPUs."""
    if req.nano_cpus > 0 and req.cpu_period > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Period cannot both be set")
    if req.nano_cpus > 0 and req.cpu_quota > 0:
        raise InvalidArgument("Conflicting options: Nano CPUs and CPU Quota cannot both be set")
    if req.nano_cpus < 0 or req.nano_cpus > ncpu * 1_000_000_000:
        raise InvalidArgument(f"Range of CPUs is from 0.01 to {ncpu}.00, as there are only "
                              f"{ncpu} CPUs available")


def _validate_cpu(req: UpdateRequest, features: CgroupFeatures, ncpu: int,
                  cpus_available: str, changes: dict[str, Any]) -> list[str]:
    warnings: list[str] = []
    cfs = features.cpu_cfs_quota and features.cpu_cfs_period
    check_nano_cpus(req, ncpu)
    if req.nano_cpus > 0 and not cfs:
        raise InvalidArgument("NanoCPUs can not be set, as your kernel does not support CPU CFS "
                              "scheduler or the cgroup is not mounted")
    if req.cpu_shares > 0 and not features.cpu_shares:
        warnings.append(_UNSUPPORTED.format("CPU shares", "Shares discarded."))
        changes["cpu_shares"] = 0
    if (req.cpu_period or req.cpu_quota) and not cfs:
        warnings.append("Your kernel does not support CPU CFS scheduler. CPU period/quota "
                        "discarded.")
        changes.update(cpu_period=0, cpu_quota=0)
    elif req.cpu_period and not 1000 <= req.cpu_period <= 1_000_000:
        raise InvalidArgument("CPU cfs period can not be less than 1ms (i.e. 1000) or larger "
                              "than 1s (i.e. 1000000)")
    elif 0 < req.cpu_quota < 1000:
        raise InvalidArgument("CPU cfs quota can not be less than 1ms (i.e. 1000)")
    if req.cpuset_cpus and not features.cpuset:
        warnings.append(_UNSUPPORTED.format("cpuset", "Cpuset discarded."))
        changes["cpuset_cpus"] = ""
    elif req.cpuset_cpus:
        try:
            wanted = parse_cpu_list(req.cpuset_cpus)
        except ValueError:
            raise InvalidArgument(f"Invalid value {req.cpuset_cpus} for cpuset cpus: invalid "
                                  f"format: {req.cpuset_cpus}") from None
        try:
            ok = wanted <= parse_cpu_list(cpus_available)
        except ValueError:
            ok = True  # the host's list is unreadable: leave the check to the kernel
        if not ok:
            raise InvalidArgument(f"Requested CPUs are not available - requested "
                                  f"{req.cpuset_cpus}, available: {cpus_available}")
    return warnings


def effective_swap(host: HostConfig) -> int:
    """MemorySwap as Docker stores it: twice the memory when only memory was given."""
    if host.memory_swap:
        return host.memory_swap
    return 2 * host.memory if host.memory else 0


def merge(host: HostConfig, req: UpdateRequest) -> HostConfig:
    """Docker's ``UpdateContainer``: non-zero values replace the stored ones (Conflict with
    Docker's message when they cannot)."""
    if req.nano_cpus > 0 and host.cpu_period > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Period has "
                       "already been set")
    if req.nano_cpus > 0 and host.cpu_quota > 0:
        raise Conflict("Conflicting options: Nano CPUs cannot be updated as CPU Quota has "
                       "already been set")
    if req.cpu_period > 0 and host.nano_cpus > 0:
        raise Conflict("Conflicting options: CPU Period cannot be updated as NanoCPUs has "
                       "already been set")
    if req.cpu_quota > 0 and host.nano_cpus > 0:
        raise Conflict("Conflicting options: CPU Quota cannot be updated as NanoCPUs has "
                       "already been set")
    fields = ("blkio_weight", "cpu_shares", "nano_cpus", "cpu_period", "cpu_quota",
              "cpuset_cpus", "memory_swap", "memory_reservation")
    changes: dict[str, Any] = {f: getattr(req, f) for f in fields if getattr(req, f)}
    if req.memory:
        swap = effective_swap(host)
        if req.memory > swap and not req.memory_swap:
            raise Conflict("Memory limit should be smaller than already set memoryswap "
                           "limit, update the memoryswap at the same time")
        changes["memory"] = req.memory
        changes.setdefault("memory_swap", swap)  # the old default stays, as Docker stores it
    if req.pids_limit is not None:
        changes["pids_limit"] = max(req.pids_limit, 0)
    if req.restart_policy is not None:
        if host.auto_remove and not req.restart_policy.is_none:
            raise Conflict("Restart policy cannot be updated because AutoRemove is enabled for "
                           "the container")
        changes["restart_policy"] = req.restart_policy
    return msgspec.structs.replace(host, **changes)


def oci_resources(host: HostConfig, pids_unlimited: bool = False) -> dict[str, Any]:
    """OCI ``linux.resources`` (memory, cpu, pids, blockIO) of ``host``, built by the same
    ``with_resources`` the container's spec is; ``pids_unlimited`` asks for ``-1`` (a pids
    limit that was set goes back to "max")."""
    from cargohold.container.spec import with_resources
    from cargohold.engine.containers.start import resource_tuning, swap_limit

    spec: dict[str, Any] = {"linux": {}}
    with_resources(spec, memory=host.memory or None,
                   memory_swap=swap_limit(host.memory, host.memory_swap),
                   nano_cpus=host.nano_cpus or None, pids_limit=host.pids_limit,
                   tuning=resource_tuning(host))
    resources: dict[str, Any] = spec["linux"]["resources"]
    if pids_unlimited:
        resources["pids"] = {"limit": -1}
    return resources


def _rewrite_bundle(config: Path, resources: dict[str, Any]) -> None:
    """Put the new limits in the bundle's config.json (what the monitor restarts from)."""
    from cargohold.container.spec import write_spec

    try:
        spec = json.loads(config.read_bytes())
    except FileNotFoundError:
        return
    current = spec.setdefault("linux", {}).setdefault("resources", {})
    for key in ("memory", "cpu", "pids", "blockIO"):
        current.pop(key, None)
    current.update({k: v for k, v in resources.items() if k != "pids" or v["limit"] > 0})
    write_spec(config.parent, spec)


def update_container(engine: Engine, ref: str, req: UpdateRequest) -> list[str]:
    """Apply ``req`` to the container ``ref``; returns Docker's warnings."""
    from cargohold.engine.system import host_info as host_info

    store = engine.container_store
    cid = store.resolve(ref)
    host = host_info.probe()
    req, warnings = validate(req, host.features, host.ncpu, _cpus_available())
    engine.containers.reconcile(cid)
    # the monitor decides about restarts under the state lock; the record lock keeps a
    # concurrent change of other fields (network connect) from being lost
    with store.state_lock(cid), store.record_lock(cid):
        record = store.load(cid)
        try:
            merged = merge(record.host_config, req)
            state = store.read_state(cid)
            resources = oci_resources(merged, req.pids_limit is not None and req.pids_limit <= 0)
            if state.status in (Status.RUNNING, Status.PAUSED):
                engine.runtime.update(cid, resources)
        except CargoholdError as e:
            raise type(e)(f"Cannot update container {cid}: {e.message}") from None
        _rewrite_bundle(store.bundle_dir(cid) / "config.json", resources)
        store.update_record(msgspec.structs.replace(record, host_config=merged))
    return warnings


def _cpus_available() -> str:
    from cargohold.engine.system.host_info import cgroup_version

    base = "/sys/fs/cgroup/cpuset.cpus.effective" if cgroup_version() == "2" else (
        "/sys/fs/cgroup/cpuset/cpuset.cpus")
    try:
        with open(base) as f:
            return f.read().strip()
    except OSError:
        return ""
