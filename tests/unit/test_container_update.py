"""``update``: Docker's validation and merge rules, the live update through the (fake) runtime,
the record and bundle it rewrites, and the CLI's output and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import test_container_ops
from test_container_ops import World

from cargohold.cli.main import main
from cargohold.container.model import HostConfig, RestartPolicy
from cargohold.container.spec import with_resources
from cargohold.engine.containers.start import resource_tuning
from cargohold.engine.containers.update import UpdateRequest, merge, validate
from cargohold.engine.system.host_info import CgroupFeatures
from cargohold.errors import Conflict, Internal, InvalidArgument

ALL = CgroupFeatures(memory_limit=True, swap_limit=True, cpu_cfs_period=True,
                     cpu_cfs_quota=True, cpu_shares=True, cpuset=True, pids_limit=True,
                     blkio_weight=True)
MB = 1 << 20
world = test_container_ops.world  # its fixture: an engine on the fake runtime


def check(req: UpdateRequest, features: CgroupFeatures = ALL) -> tuple[UpdateRequest, list[str]]:
    return validate(req, features, 2, "0-1")


def test_validation_uses_dockers_words() -> None:
    cases = [
        (UpdateRequest(memory=1 * MB), "Minimum memory limit allowed is 6MB"),
        (UpdateRequest(memory=100 * MB, memory_swap=50 * MB),
         "Minimum memoryswap limit should be larger than memory limit, see usage"),
        (UpdateRequest(memory_reservation=MB), "Minimum memory reservation allowed is 6MB"),
        (UpdateRequest(memory=10 * MB, memory_reservation=20 * MB),
         "Minimum memory limit can not be less than memory reservation limit, see usage"),
        (UpdateRequest(nano_cpus=10**9, cpu_period=100000),
         "Conflicting options: Nano CPUs and CPU Period cannot both be set"),
        (UpdateRequest(nano_cpus=5 * 10**9),
         "Range of CPUs is from 0.01 to 2.00, as there are only 2 CPUs available"),
        (UpdateRequest(cpu_period=500), "CPU cfs period can not be less than 1ms (i.e. 1000) or "
         "larger than 1s (i.e. 1000000)"),
        (UpdateRequest(cpu_quota=10), "CPU cfs quota can not be less than 1ms (i.e. 1000)"),
        (UpdateRequest(cpuset_cpus="7"), "Requested CPUs are not available - requested 7, "
         "available: 0-1"),
        (UpdateRequest(cpuset_cpus="a"), "Invalid value a for cpuset cpus: invalid format: a"),
        (UpdateRequest(blkio_weight=5), "Range of blkio weight is from 10 to 1000"),
    ]
    for req, message in cases:
        with pytest.raises(InvalidArgument) as err:
            check(req)
        assert err.value.message == message


def test_limits_the_kernel_lacks_are_dropped_with_dockers_warning() -> None:
    req, warnings = check(UpdateRequest(blkio_weight=300, memory=64 * MB, pids_limit=10),
                          CgroupFeatures(memory_limit=True))
    assert (req.blkio_weight, req.memory, req.memory_swap, req.pids_limit) == (0, 64 * MB, -1,
                                                                              None)
    assert warnings == [
        "Your kernel does not support swap limit capabilities or the cgroup is not mounted. "
        "Memory limited without swap.",
        "Your kernel does not support PIDs limit capabilities or the cgroup is not mounted. "
        "PIDs limit discarded.",
        "Your kernel does not support Block I/O weight or the cgroup is not mounted. "
        "Weight discarded."]


def test_merge_follows_docker_update_container() -> None:
    host = HostConfig(memory=100 * MB)
    # Docker stores MemorySwap = 2 x Memory; a new memory limit above it needs a new swap
    merged = merge(host, UpdateRequest(memory=150 * MB))
    assert (merged.memory, merged.memory_swap) == (150 * MB, 200 * MB)
    with pytest.raises(Conflict, match="Memory limit should be smaller than already set "
                       "memoryswap limit, update the memoryswap at the same time"):
        merge(host, UpdateRequest(memory=250 * MB))
    with pytest.raises(Conflict, match="memoryswap limit"):
        merge(HostConfig(), UpdateRequest(memory=250 * MB))  # as Docker: no limit = swap 0
    both = merge(HostConfig(), UpdateRequest(memory=250 * MB, memory_swap=-1))
    assert (both.memory, both.memory_swap) == (250 * MB, -1)
    with pytest.raises(Conflict, match="CPU Quota cannot be updated as NanoCPUs has already"):
        merge(HostConfig(nano_cpus=10**9), UpdateRequest(cpu_quota=50000))
    with pytest.raises(Conflict, match="Restart policy cannot be updated because AutoRemove is "
                       "enabled for the container"):
        merge(HostConfig(auto_remove=True), UpdateRequest(restart_policy=RestartPolicy("always")))
    kept = merge(HostConfig(cpu_shares=512, pids_limit=20),
                 UpdateRequest(cpuset_cpus="0", pids_limit=-1))
    assert (kept.cpu_shares, kept.cpuset_cpus, kept.pids_limit) == (512, "0", 0)


def test_recorded_limits_are_in_every_new_spec() -> None:
    host = HostConfig(memory=64 * MB, cpu_shares=512, cpu_period=50000, cpu_quota=25000,
                      cpuset_cpus="0", memory_reservation=32 * MB, blkio_weight=300)
    spec: dict[str, dict[str, object]] = {"linux": {}}
    with_resources(spec, memory=host.memory, tuning=resource_tuning(host))
    assert spec["linux"]["resources"] == {
        "memory": {"limit": 64 * MB, "swap": 128 * MB, "reservation": 32 * MB},
        "cpu": {"shares": 512, "period": 50000, "quota": 25000, "cpus": "0"},
        "blockIO": {"weight": 300},
    }


def _hostconfig(w: World, cid: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((w.store.dir(cid) / "hostconfig.json").read_text())
    return data


def test_running_container_gets_the_limits_live_and_in_its_bundle(world: World) -> None:
    record = world.container(running=True)
    req = UpdateRequest(memory=64 * MB, memory_swap=128 * MB, cpu_shares=512, pids_limit=50,
                        restart_policy=RestartPolicy("on-failure", 3))
    world.engine.containers.update(record.id, req)
    assert world.runtime.containers[record.id].resources == {
        "memory": {"limit": 64 * MB, "swap": 128 * MB}, "cpu": {"shares": 512},
        "pids": {"limit": 50}}
    stored = _hostconfig(world, record.id)
    assert (stored["Memory"], stored["MemorySwap"], stored["CpuShares"], stored["PidsLimit"]) == (
        64 * MB, 128 * MB, 512, 50)
    assert stored["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert world.store.restart_policy_of(record.id) == RestartPolicy("on-failure", 3)
    bundle = json.loads((world.store.bundle_dir(record.id) / "config.json").read_text())
    assert bundle["linux"]["resources"]["memory"] == {"limit": 64 * MB, "swap": 128 * MB}
    inspect = world.engine.containers.inspect(record.id)["HostConfig"]
    assert (inspect["Memory"], inspect["CpuShares"]) == (64 * MB, 512)
    # a pids limit set back to unlimited: "max" for the live cgroup
    world.engine.containers.update(record.id, UpdateRequest(pids_limit=-1))
    assert world.runtime.containers[record.id].resources["pids"] == {"limit": -1}
    assert _hostconfig(world, record.id)["PidsLimit"] == 0


def test_stopped_container_is_updated_in_its_record_only(world: World) -> None:
    record = world.container()
    world.engine.containers.update(record.id, UpdateRequest(cpu_shares=256))
    assert ("update", record.id) not in world.runtime.calls
    assert _hostconfig(world, record.id)["CpuShares"] == 256


def test_a_failed_live_update_leaves_the_record_as_it_was(world: World) -> None:
    record = world.container(running=True)
    world.runtime.fail_on["update"] = Internal("OCI runtime update failed: device busy")
    with pytest.raises(Internal) as err:
        world.engine.containers.update(record.id, UpdateRequest(cpu_shares=256))
    assert err.value.message == (f"Cannot update container {record.id}: OCI runtime update "
                                 "failed: device busy")
    assert _hostconfig(world, record.id)["CpuShares"] == 0


def test_cli_flags_output_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["--root", str(tmp_path / "r"), "--runroot", str(tmp_path / "run"),
                     "--storage-driver", "vfs", *args])
        out, err = capsys.readouterr()
        return code, out, err

    assert cli("update", "c1") == (1, "", "you must provide one or more flags when using this "
                                   "command\n")
    code, _, err = cli("update", "-m", "64m")
    assert code == 1 and err.startswith('"cargohold update" requires at least 1 argument.')
    assert cli("update", "-m", "abc", "c1") == (
        125, "", 'invalid argument "abc" for "-m, --memory" flag: invalid size: \'abc\'\n')
    assert cli("update", "--restart", "bogus", "c1") == (
        1, "", "Error response from daemon: invalid restart policy 'bogus'\n")
    assert cli("update", "--restart", "on-failure:x", "c1") == (
        1, "", "maximum retry count must be an integer\n")
    assert cli("update", "--cpu-shares", "512", "c1", "c2") == (
        1, "", "Error response from daemon: No such container: c1\n"
               "Error response from daemon: No such container: c2\n")
