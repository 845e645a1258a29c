"""Locks exclude the threads of one process as they exclude processes (a long-lived API
service runs many requests at once in one process, with one Engine and its stores)."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cargohold.container.model import ContainerConfig, ContainerRecord, HostConfig
from cargohold.container.records import ContainerStore, conflict_message
from cargohold.errors import Conflict
from cargohold.network import ipam
from cargohold.network.portalloc import PortAllocator, probe_bind
from cargohold.network.ports import PortSpec
from cargohold.store.blobs import BlobStore
from cargohold.store.images import ImageStore
from cargohold.util import lockfile
from cargohold.util.ids import random_id
from cargohold.util.lockfile import FileLock
from cargohold.volume.store import VolumeStore

THREADS = 8
ITERATIONS = 40


def run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    """Start ``count`` threads at once on ``work(index)``; the errors they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a thread is stuck"
    return errors


def within(seconds: float, body: Callable[[], None]) -> None:
    """Run ``body`` in a thread of its own: a deadlock fails the test instead of hanging it."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            body()
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), "deadlocked"
    if errors:
        raise errors[0]


def bump(counter: Path) -> None:
    """Read-modify-write with a pause in the middle: lost updates show when two are inside."""
    value = int(counter.read_text())
    time.sleep(0.0005)
    counter.write_text(str(value + 1))


def test_threads_sharing_one_lock_object_exclude_each_other(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    counter.write_text("0")
    lock = FileLock(tmp_path / "count.lock")
    inside = 0
    most = 0

    def work(_index: int) -> None:
        nonlocal inside, most
        for _ in range(ITERATIONS):
            with lock:
                inside += 1
                most = max(most, inside)
                bump(counter)
                inside -= 1

    assert run_threads(THREADS, work) == []
    assert int(counter.read_text()) == THREADS * ITERATIONS
    assert most == 1


def test_threads_with_their_own_objects_on_one_path_exclude_each_other(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    counter.write_text("0")

    def work(_index: int) -> None:
        for _ in range(ITERATIONS):
            with FileLock(tmp_path / "count.lock"):
                bump(counter)

    assert run_threads(THREADS, work) == []
    assert int(counter.read_text()) == THREADS * ITERATIONS


def test_the_holding_thread_may_reenter_through_any_object(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = FileLock(path)

    def body() -> None:
        with lock, lock, FileLock(path):
            assert FileLock(path).acquire(blocking=False)  # the same thread: re-entrant
            FileLock(path).release()
            assert lockfile.held(path)
            seen: list[bool] = []
            other = threading.Thread(
                target=lambda: seen.append(FileLock(path).acquire(blocking=False))
            )
            other.start()
            other.join()
            assert seen == [False]  # another thread is kept out until the outermost release
        assert not lockfile.held(path)
        assert FileLock(path).acquire(blocking=False)
        FileLock(path).release()

    within(10, body)


def test_a_shared_lock_in_one_thread_blocks_an_exclusive_one_in_another(tmp_path: Path) -> None:
    path = tmp_path / "rw.lock"
    reader_in = threading.Event()
    reader_go = threading.Event()
    writer_got: list[float] = []

    def reader() -> None:
        with FileLock(path, shared=True):
            reader_in.set()
            reader_go.wait(10)

    t = threading.Thread(target=reader)
    t.start()
    assert reader_in.wait(10)
    writer = FileLock(path)
    assert not writer.acquire(blocking=False)
    # other readers still get in beside the first one
    second = FileLock(path, shared=True)
    assert second.acquire(blocking=False)
    second.release()

    def write() -> None:
        with writer:
            writer_got.append(time.monotonic())

    w = threading.Thread(target=write)
    w.start()
    time.sleep(0.1)
    assert writer_got == []  # still waiting for the reader
    released = time.monotonic()
    reader_go.set()
    t.join(10)
    w.join(10)
    assert writer_got and writer_got[0] >= released


def test_a_shared_holder_cannot_upgrade_to_exclusive(tmp_path: Path) -> None:
    path = tmp_path / "up.lock"

    def body() -> None:
        with FileLock(path, shared=True), pytest.raises(RuntimeError, match="upgraded"):
            FileLock(path).acquire()  # an error, not a deadlock

    within(10, body)
    assert FileLock(path).acquire(blocking=False)


def _try_lock(path: str, shared: bool, out: multiprocessing.Queue[bool]) -> None:
    out.put(FileLock(Path(path), shared=shared).acquire(blocking=False))


@pytest.mark.parametrize("shared", [False, True])
def test_a_thread_holding_a_lock_keeps_other_processes_out(tmp_path: Path, shared: bool) -> None:
    ctx = multiprocessing.get_context("fork")
    path = tmp_path / "p.lock"
    out: multiprocessing.Queue[bool] = ctx.Queue()
    holding = threading.Event()
    done = threading.Event()

    def hold() -> None:
        with FileLock(path, shared=shared):
            holding.set()
            done.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    assert holding.wait(10)
    # forked while another thread holds the lock: the child is another process
    p = ctx.Process(target=_try_lock, args=(str(path), False, out))
    p.start()
    p.join(10)
    assert out.get(timeout=5) is False
    if shared:  # another process's reader shares it
        p = ctx.Process(target=_try_lock, args=(str(path), True, out))
        p.start()
        p.join(10)
        assert out.get(timeout=5) is True
    done.set()
    t.join(10)
    p = ctx.Process(target=_try_lock, args=(str(path), False, out))
    p.start()
    p.join(10)
    assert out.get(timeout=5) is True


def test_a_forked_child_does_not_inherit_the_parents_hold(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    path = tmp_path / "f.lock"
    out: multiprocessing.Queue[bool] = ctx.Queue()
    lock = FileLock(path)
    with lock:  # the same object, held by this (the forking) thread
        p = ctx.Process(target=lambda: out.put(lock.acquire(blocking=False)))
        p.start()
        p.join(10)
        assert out.get(timeout=5) is False
    assert not lockfile.held(path)


# ------------------------------------------------------------------ the stores' own locks


def test_threads_tagging_through_one_image_store_lose_no_tag(tmp_path: Path) -> None:
    images = ImageStore(tmp_path, BlobStore(tmp_path))  # one store, as an Engine shares it

    def work(worker: int) -> None:
        for n in range(10):
            cfg = json.dumps({"os": "linux", "worker": worker, "n": n,
                              "rootfs": {"type": "layers", "diff_ids": []}}).encode()
            rec = images.add(cfg, None)
            images.tag(rec.id, f"localhost/w{worker}:{n}")
            images.tag(rec.id, "localhost/shared:latest")

    assert run_threads(4, work) == []
    records = images.list()
    assert len(records) == 40
    tags = [t for r in records for t in r.repo_tags]
    assert sorted(t for t in tags if t != "localhost/shared:latest") == sorted(
        f"localhost/w{w}:{n}" for w in range(4) for n in range(10)
    )
    assert tags.count("localhost/shared:latest") == 1


def test_threads_allocating_on_one_network_get_different_addresses(tmp_path: Path) -> None:
    subnet = ipam.parse_subnet("10.99.0.0/24")
    shared = ipam.LeaseStore(tmp_path, "n" * 64, subnet, "10.99.0.1")
    got: list[str] = []

    def work(worker: int) -> None:
        for n in range(5):
            store = shared if n % 2 else ipam.LeaseStore(tmp_path, "n" * 64, subnet, "10.99.0.1")
            got.append(store.allocate(f"c{worker}-{n}"))

    assert run_threads(THREADS, work) == []
    assert len(got) == THREADS * 5 and len(set(got)) == len(got)
    assert len(shared.leases()) == len(got)


def test_threads_reserving_one_host_port_exactly_one_wins(tmp_path: Path) -> None:
    ports = PortAllocator(tmp_path)
    port = probe_bind("127.0.0.1", 0, "tcp")
    spec = PortSpec(container_port=80, proto="tcp", host_ip="127.0.0.1",
                    host_port_start=port, host_port_end=port)

    def work(worker: int) -> None:
        ports.reserve(f"owner{worker}", [spec], ipv6=False)

    errors = run_threads(THREADS, work)
    assert len(errors) == THREADS - 1
    assert all(isinstance(e, Conflict) and "port is already allocated" in str(e) for e in errors)
    assert len(ports.owners()) == 1


def record(name: str) -> ContainerRecord:
    return ContainerRecord(id=random_id(), name=name, image_id="sha256:" + "0" * 64,
                           config=ContainerConfig(image="img"), host_config=HostConfig())


def test_threads_creating_one_container_name_exactly_one_wins(tmp_path: Path) -> None:
    store = ContainerStore(tmp_path / "root", tmp_path / "run")
    won: list[str] = []

    def work(_index: int) -> None:
        won.append(store.add(record("web")).id)

    errors = run_threads(THREADS, work)
    assert len(won) == 1
    assert len(errors) == THREADS - 1
    message = conflict_message("web", won[0])
    assert all(isinstance(e, Conflict) and str(e) == message for e in errors)
    assert store.names() == {"web": won[0]}
    assert len(store.ids()) == 1


def test_threads_adding_volume_references_lose_none(tmp_path: Path) -> None:
    volumes = VolumeStore(tmp_path)
    volumes.create("data")

    def work(worker: int) -> None:
        for n in range(10):
            volumes.add_ref("data", f"{worker}-{n}")

    assert run_threads(THREADS, work) == []
    assert len(volumes.get("data").refs) == THREADS * 10


def test_lock_entries_do_not_pile_up(tmp_path: Path) -> None:
    before = len(lockfile._ENTRIES)
    for n in range(50):
        with FileLock(tmp_path / f"{n}.lock"), FileLock(tmp_path / f"{n}.lock", shared=True):
            pass
    assert len(lockfile._ENTRIES) == before
    assert os.listdir(tmp_path)  # the lock files themselves stay (as flock needs)


def test_threads_logging_in_at_once_keep_every_credential(tmp_path: Path) -> None:
    from cargohold.transport.registry.auth import AuthFile, Credentials

    def work(worker: int) -> None:
        auth = AuthFile(tmp_path / "docker" / "config.json")  # one per command, as login's
        for n in range(5):
            auth.store(f"reg{worker}-{n}.local:5000", Credentials(f"u{worker}", "pw"))

    assert run_threads(THREADS, work) == []
    auth = AuthFile(tmp_path / "docker" / "config.json")
    assert all(auth.get(f"reg{w}-{n}.local:5000") for w in range(THREADS) for n in range(5))


def test_builds_saving_the_stat_cache_at_once_keep_each_others_digests(tmp_path: Path) -> None:
    from cargohold.builder.context import StatCache

    path = tmp_path / "buildcache" / "statcache.json"
    files = []
    for n in range(THREADS):
        f = tmp_path / f"f{n}"
        f.write_bytes(b"x" * n)
        files.append(f)

    def work(worker: int) -> None:
        stats = StatCache(path)  # each build has its own, loaded before the others saved
        stats.digest(str(files[worker]), files[worker].stat())
        stats.save()

    assert run_threads(THREADS, work) == []
    assert sorted(json.loads(path.read_bytes())) == sorted(str(f) for f in files)


def test_a_service_builds_each_engine_store_once(tmp_path: Path) -> None:
    from cargohold.config import Settings
    from cargohold.engine import Engine
    from cargohold.util.lazy import cached_property

    class Slow:
        built = 0

        @cached_property
        def store(self) -> object:
            Slow.built += 1
            time.sleep(0.05)  # threads arriving meanwhile must wait for this one
            return object()

    slow = Slow()
    seen: list[object] = []
    assert run_threads(THREADS, lambda _i: seen.append(slow.store)) == []
    assert Slow.built == 1 and len({id(s) for s in seen}) == 1

    engine = Engine(Settings(root=tmp_path / "root", runroot=tmp_path / "run"))
    stores: list[object] = []
    assert run_threads(THREADS, lambda _i: stores.append(engine.container_store)) == []
    assert len({id(s) for s in stores}) == 1


def test_the_monitor_itself_sees_its_monitor_alive(tmp_path: Path) -> None:
    from cargohold.container.reconcile import monitor_alive

    store = ContainerStore(tmp_path / "root", tmp_path / "run")
    rec = store.add(record("mon"))
    assert not monitor_alive(store, rec.id)
    with FileLock(store.monitor_lock_path(rec.id)):  # as the monitor's main thread holds it
        assert monitor_alive(store, rec.id)  # asked from the holding thread
        seen: list[bool] = []
        t = threading.Thread(target=lambda: seen.append(monitor_alive(store, rec.id)))
        t.start()
        t.join()
        assert seen == [True]
    assert not monitor_alive(store, rec.id)


def test_engine_paths_do_not_follow_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cargohold.config import Settings
    from cargohold.engine import Engine

    monkeypatch.chdir(tmp_path)
    engine = Engine(Settings(root=Path("root"), runroot=Path("run")))
    # an overlay mount in another thread chdirs for a moment: store paths stay put
    assert engine.settings.root == tmp_path / "root"
    assert engine.settings.runroot == tmp_path / "run"
    assert engine.container_store.base == tmp_path / "root" / "containers"


def test_threads_writing_one_file_atomically_never_tear_it(tmp_path: Path) -> None:
    from cargohold.util.atomic import write_bytes

    target = tmp_path / "state.json"
    payloads = [bytes([65 + i]) * 200_000 for i in range(4)]

    def work(worker: int) -> None:
        for _ in range(30):
            write_bytes(target, payloads[worker], fsync=False)
            data = target.read_bytes()
            assert data in payloads, "torn file"

    assert run_threads(4, work) == []
    assert target.read_bytes() in payloads
    assert os.listdir(tmp_path) == ["state.json"]


def test_record_changes_of_different_fields_at_once_all_stay(tmp_path: Path) -> None:
    """``network connect`` (the record's networks) beside ``rename`` (its name), as threads
    of one service would run them: each is a read-modify-write of the same record."""
    from cargohold.engine.networks import record_endpoint
    from cargohold.network.store import NetworkStore

    store = ContainerStore(tmp_path / "root", tmp_path / "run")
    cid = store.add(record("first")).id
    nets = NetworkStore(tmp_path / "root")
    networks = [nets.create(f"n{n}") for n in range(10)]

    def work(worker: int) -> None:
        for n in range(10):
            if worker == 0:
                store.rename(cid, f"name{n}")
            elif n % 2:  # workers 1 and 2 connect five networks each
                record_endpoint(store, cid, networks[(worker - 1) * 5 + n // 2])

    assert run_threads(3, work) == []
    final = store.load(cid)
    assert final.name == "name9"
    assert sorted(final.networks) == sorted(n.name for n in networks)


def test_readers_and_writers_in_threads_never_overlap(tmp_path: Path) -> None:
    import random

    path = tmp_path / "rw.lock"
    state = {"readers": 0, "writers": 0}
    guard = threading.Lock()
    bad: list[str] = []

    def work(worker: int) -> None:
        rng = random.Random(worker)
        lock_objects = [FileLock(path), FileLock(path, shared=True)]
        for _ in range(150):
            shared = rng.random() < 0.6
            lock = lock_objects[shared] if rng.random() < 0.5 else FileLock(path, shared)
            if rng.random() < 0.2:
                if not lock.acquire(blocking=False):
                    continue
            else:
                lock.acquire()
            with guard:
                state["readers" if shared else "writers"] += 1
                if state["writers"] > 1 or (state["writers"] and state["readers"]):
                    bad.append(f"{state}")
            time.sleep(0.0002)
            with guard:
                state["readers" if shared else "writers"] -= 1
            lock.release()

    assert run_threads(6, work) == []
    assert bad == []


def test_a_waiting_writer_goes_before_new_readers(tmp_path: Path) -> None:
    path = tmp_path / "w.lock"
    first = FileLock(path, shared=True)
    order: list[str] = []

    def run(name: str, shared: bool) -> threading.Thread:
        def body() -> None:
            with FileLock(path, shared=shared):
                order.append(name)

        t = threading.Thread(target=body)
        t.start()
        return t

    def body() -> None:
        assert first.acquire()
        writer = run("writer", shared=False)
        time.sleep(0.1)  # the writer waits for the first reader
        probe: list[bool] = []
        t = threading.Thread(
            target=lambda: probe.append(FileLock(path, shared=True).acquire(blocking=False))
        )
        t.start()
        t.join()
        assert probe == [False]  # a new reader elsewhere: after the writer
        reader = run("reader", shared=True)
        time.sleep(0.1)
        assert order == []
        first.release()
        writer.join(10)
        reader.join(10)
        assert order == ["writer", "reader"]

    within(20, body)


def _stage_then_fork_a_monitor_and_die(tmp: str, pids: Any) -> None:
    from cargohold.store.locking import Staging

    Staging(Path(tmp), "layer")  # a writer mid-way (never closed: this process dies)
    if os.fork() == 0:  # a monitor forked meanwhile, living on
        pids.put(os.getpid())
        time.sleep(30)
        os._exit(0)
    os._exit(0)  # the writer dies (kill -9, a crash)


def test_a_child_forked_mid_write_does_not_keep_the_staging_alive(tmp_path: Path) -> None:
    import signal

    from cargohold.store.locking import clean_stale

    ctx = multiprocessing.get_context("fork")
    pids: multiprocessing.Queue[int] = ctx.Queue()
    p = ctx.Process(target=_stage_then_fork_a_monitor_and_die, args=(str(tmp_path), pids))
    p.start()
    child = pids.get(timeout=10)
    try:
        deadline = time.monotonic() + 10
        while p.exitcode is None and time.monotonic() < deadline:  # (join waits for the
            time.sleep(0.01)  # child too: it inherited the sentinel)
        assert p.exitcode == 0
        assert len(os.listdir(tmp_path)) == 1
        assert clean_stale(tmp_path) == 1  # its writer is gone, whoever else is alive
        assert os.listdir(tmp_path) == []
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_child_forked_while_a_hosts_file_is_locked_does_not_keep_it_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import fcntl
    import signal

    from cargohold.network import hosts

    path = tmp_path / "hosts"
    path.write_text("127.0.0.1 localhost\n")
    children: list[int] = []
    real = hosts.replace_block

    def fork_meanwhile(*args: Any) -> str:  # another thread forks a monitor right now
        pid = os.fork()
        if pid == 0:
            time.sleep(30)
            os._exit(0)
        children.append(pid)
        return real(*args)

    monkeypatch.setattr(hosts, "replace_block", fork_meanwhile)
    try:
        assert hosts.rewrite_block(path, "links", ["10.0.0.2 db"])
        fd = os.open(path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the next writer is not stuck
        finally:
            os.close(fd)
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    assert "10.0.0.2 db" in path.read_text()
