"""A private cargohold (temp --root/--runroot, its own default bridge and subnet) with a
busybox image, for the container CLI integration tests; torn down even when tests fail,
asserting nothing is left behind (mounts, namespaces, veths, iptables rules)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")
CLI = Path(sys.executable).with_name("cargohold")

needs_runtime = pytest.mark.skipif(
    not BUSYBOX.exists()
    or shutil.which("runc") is None
    or shutil.which("iptables-restore") is None
    or not CLI.exists(),
    reason="needs runc, busybox-static, iptables and the cargohold entry point",
)


def busybox_tar(path: Path, files: dict[str, bytes] | None = None) -> Path:
    """busybox with every applet, a few directories and files (``files`` replaces or adds
    some of them)."""
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True).stdout
    with tarfile.open(path, "w") as tf:
        tf.add(str(BUSYBOX), "bin/busybox")
        for applet in applets.split():
            if applet == "busybox":
                continue
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tf.addfile(info)
        for d, mode in (
            ("etc", 0o755),
            ("tmp", 0o1777),
            ("root", 0o700),
            ("data", 0o755),
            ("www", 0o755),
        ):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = mode
            tf.addfile(info)
        content = {
            "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            "etc/group": b"root:x:0:\nstaff:x:50:app\napp:x:1000:\n",
            "data/seed.txt": b"from image\n",
            "www/index.html": b"hello from web\n",
            "bin/notexec": b"#!/bin/sh\necho never\n",
            **(files or {}),
        }
        for name, data in content.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


class Env:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.root = base / "root"
        self.run_root = base / "run"
        tag = secrets.token_hex(2)
        self.bridge = f"chct{tag}"
        # a private /24 per module, never docker0's or the default 10.77.0.0/16
        self.subnet = f"10.{237 + int(tag, 16) % 10}.{int(tag, 16) % 250}.0/24"

    def argv(self, *args: str) -> list[str]:
        return [str(CLI), "--root", str(self.root), "--runroot", str(self.run_root), *args]

    def ch(
        self, *args: str, check: bool = True, timeout: float = 60, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self.argv(*args),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            stdin=None if stdin is not None else subprocess.DEVNULL,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"cargohold {' '.join(args)} -> {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def out(self, *args: str) -> str:
        return self.ch(*args).stdout.strip()

    def inspect(self, ref: str) -> dict[str, object]:
        data = json.loads(self.out("container", "inspect", ref))
        assert isinstance(data, list) and len(data) == 1
        return data[0]  # type: ignore[no-any-return]

    def wait_for(self, fn: object, limit: float = 20) -> None:
        deadline = time.monotonic() + limit
        while True:
            if fn():  # type: ignore[operator]
                return
            if time.monotonic() > deadline:
                raise AssertionError("condition never became true")
            time.sleep(0.05)

    def setup(self) -> None:
        from cargohold.network.store import NetworkStore

        NetworkStore(
            self.root, default_subnet=self.subnet, default_bridge=self.bridge
        ).ensure_defaults()
        tar = busybox_tar(self.base / "bb.tar")
        self.ch("import", "-c", 'CMD ["/bin/sh"]', str(tar), "bb:latest")
        vol_tar = tar
        self.ch(
            "import",
            "-c",
            'CMD ["/bin/sh"]',
            "-c",
            "VOLUME /data",
            "-c",
            "EXPOSE 80",
            str(vol_tar),
            "bbvol:latest",
        )

    def teardown(self) -> list[str]:
        """Remove everything; returns what was left behind."""
        from cargohold.network import firewall
        from cargohold.network.bridge import BridgeBackend
        from cargohold.network.store import NetworkStore

        problems: list[str] = []
        ids = self.ch("ps", "-a", "-q", "--no-trunc", check=False).stdout.split()
        if ids:
            self.ch("rm", "-f", "-v", *ids, check=False)
        # monitors still alive (a failed test): kill them
        cdir = self.root / "containers"
        for state in cdir.glob("*/state.json") if cdir.exists() else []:
            with contextlib.suppress(Exception):
                pid = json.loads(state.read_text()).get("MonitorPid", 0)
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    problems.append(f"monitor {pid} still running")
        runc_root = self.run_root / "runc"
        if runc_root.exists():
            for cid in os.listdir(runc_root):
                subprocess.run(
                    ["runc", "--root", str(runc_root), "delete", "-f", cid],
                    capture_output=True,
                    check=False,
                )
                problems.append(f"runc container {cid} left")
        mounts = Path("/proc/self/mounts").read_text()
        for line in mounts.splitlines():
            point = line.split()[1]
            if point.startswith(str(self.base)):
                problems.append(f"mount {point} left")
        for point in sorted(
            (
                ln.split()[1]
                for ln in mounts.splitlines()
                if ln.split()[1].startswith(str(self.base))
            ),
            reverse=True,
        ):
            subprocess.run(["umount", "-l", point], capture_output=True, check=False)
        for ns in Path("/run/netns").glob("cargohold-*") if Path("/run/netns").exists() else []:
            if ns.name[len("cargohold-") :] in "".join(ids):
                problems.append(f"netns {ns.name} left")
                subprocess.run(["ip", "netns", "del", ns.name], capture_output=True, check=False)
        proxies = self.root / "networks" / "proxies"
        for pidfile in proxies.glob("*.pid") if proxies.exists() else []:
            from cargohold.network import userproxy

            if userproxy.running(self.root, pidfile.stem):
                problems.append(f"userland proxy {pidfile.stem} left")
            userproxy.stop(self.root, pidfile.stem)
        store = NetworkStore(self.root, default_subnet=self.subnet, default_bridge=self.bridge)
        nets = [n for n in store.all() if n.driver == "bridge"]
        for net in nets:
            held = store.leases(net).leases()
            if held:
                problems.append(f"leases left on {net.name}: {held}")
        backend = BridgeBackend(store)
        for net in nets:
            with contextlib.suppress(Exception):
                backend.remove_network(net)
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        left = [
            ln for ln in rules.splitlines() if "chc-" in ln and any(n.id[:12] in ln for n in nets)
        ]
        if left:
            problems.append(f"rules left: {left}")
        snap = firewall.snapshot()
        if all(
            not ln.startswith("-A CARGOHOLD-") or "cargohold-jump" in ln
            for t in snap.rules.values()
            for ln in t
        ):
            firewall.cleanup_all()
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        for ln in links.splitlines():
            if f" {self.bridge}" in ln:
                problems.append(f"bridge left: {ln}")
                subprocess.run(["ip", "link", "del", self.bridge], capture_output=True)
        shutil.rmtree(self.base, ignore_errors=True)
        return problems


@contextlib.contextmanager
def container_env(tmp: Path) -> Iterator[Env]:
    env = Env(tmp)
    try:
        env.setup()
        yield env
    finally:
        problems = env.teardown()
    assert not problems, problems
