#!/usr/bin/env python3
"""Benchmarks: cargohold's workloads beside docker and podman, interleaved in one run.

    .venv/bin/python bench/run.py [WORKLOAD ...] [--runs N] [--tools cargohold,podman,docker]

Each workload times the same user-visible command through every installed tool, alternating
tools run by run so that machine noise hits them alike, and prints medians and ratios.
Tools that are not installed (or whose daemon is not running) are skipped with the reason.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = Path(os.environ.get("BENCH_DIR", "/var/tmp/cargohold-bench"))
CARGOHOLD = [str(REPO / ".venv/bin/cargohold"), "--root", str(WORK / "ch-root"),
             "--runroot", str(WORK / "ch-run")]
PODMAN = ["podman", "--root", str(WORK / "podman-root"), "--runroot", str(WORK / "podman-run"),
          "--storage-driver", "overlay"]
DOCKER = ["docker"]
# podman 4.3 raises nofile/nproc above this host's hard limits and cannot start a container
# ("error setting rlimit type 7"); crun fails on hybrid cgroups.  Its own containers.conf
# (through CONTAINERS_CONF, never the host's) fixes both.
PODMAN_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n'


def sh(
    cmd: list[str], stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    inp = open(stdin, "rb") if stdin else subprocess.DEVNULL  # noqa: SIM115
    try:
        return subprocess.run(cmd, stdin=inp, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, check=check)
    finally:
        if stdin:
            inp.close()  # type: ignore[union-attr]


def tool_available(tool: str) -> str | None:
    """None when usable, else the reason it is skipped."""
    if tool == "cargohold":
        return None if Path(CARGOHOLD[0]).exists() else "run scripts/install.sh first"
    if shutil.which(tool) is None:
        return f"{tool} is not installed"
    if tool == "docker":
        r = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
        if r.returncode != 0:
            return start_private_dockerd()
    if tool == "podman":
        conf = WORK / "containers.conf"
        conf.write_text(PODMAN_CONF)
        os.environ["CONTAINERS_CONF"] = str(conf)  # only podman reads it
    return None


def start_private_dockerd() -> str | None:
    """Start a dockerd of our own (overlay2, its default networking) for the comparison.

    It is stopped when the benchmark ends.  Returns the reason when that is not possible.
    """
    import atexit
    import signal

    if shutil.which("dockerd") is None:
        return "docker daemon is not running and dockerd is not installed"
    base = WORK / "docker"
    base.mkdir(parents=True, exist_ok=True)
    sock = base / "docker.sock"
    log = open(base / "dockerd.log", "ab")  # noqa: SIM115 - lives as long as the daemon
    proc = subprocess.Popen(
        ["dockerd", "--data-root", str(base / "data"), "--exec-root", str(base / "exec"),
         "--pidfile", str(base / "docker.pid"), "--host", f"unix://{sock}"],
        stdout=log, stderr=log, start_new_session=True,
    )

    def stop() -> None:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(60)
        # dockerd bind-mounts its data root onto itself and may leave that behind
        subprocess.run(["umount", "-l", str(base / "data")], capture_output=True)

    atexit.register(stop)
    os.environ["DOCKER_HOST"] = f"unix://{sock}"
    for _ in range(150):
        if subprocess.run(["docker", "info"], capture_output=True).returncode == 0:
            print(f"# started a private dockerd ({sock}); it stops with the benchmark")
            return None
        if proc.poll() is not None:
            break
        time.sleep(0.2)
    stop()
    return "docker daemon is not running and a private dockerd did not start"


def cli(tool: str) -> list[str]:
    return {"cargohold": CARGOHOLD, "podman": PODMAN, "docker": DOCKER}[tool]


@dataclass
class Workload:
    name: str
    budget: str
    prepare: Callable[[], None]  # once, before any tool runs
    setup: Callable[[str], None]  # per run, untimed
    timed: Callable[[str], None]  # per run, timed
    cleanup: Callable[[str], None]  # per run, untimed
    results: dict[str, list[float]] = field(default_factory=dict)


# ---- data sets -----------------------------------------------------------------------------

def rootfs_tarball(size_mb: int = 200) -> Path:
    """A ~size_mb rootfs-like tarball made of real files from /usr (built once)."""
    out = WORK / f"rootfs-{size_mb}m.tar"
    if out.exists():
        return out
    src = WORK / f"rootfs-{size_mb}m"
    shutil.rmtree(src, ignore_errors=True)
    (src / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", src / "bin/busybox")
    for applet in ("sh", "true", "ls", "cat", "echo", "sleep"):
        (src / "bin" / applet).symlink_to("busybox")
    budget = size_mb * 1_000_000
    total = 0
    for root, _dirs, files in os.walk("/usr/lib"):
        for name in sorted(files):
            p = Path(root) / name
            if p.is_symlink() or not p.is_file():
                continue
            size = p.stat().st_size
            dest = src / p.relative_to("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, dest)
            total += size
            if total >= budget:
                break
        if total >= budget:
            break
    subprocess.run(["tar", "-C", str(src), "-cf", str(out), "."], check=True)
    shutil.rmtree(src)
    return out


# ---- workloads -----------------------------------------------------------------------------

def w_import() -> Workload:
    tarball: list[Path] = []

    def prepare() -> None:
        tarball.append(rootfs_tarball())

    def timed(tool: str) -> None:
        sh([*cli(tool), "import", str(tarball[0]), "bench/import:latest"])

    def cleanup(tool: str) -> None:
        sh([*cli(tool), "rmi", "-f", "bench/import:latest"], check=False)

    return Workload("import 200 MB rootfs tarball", ">= 150 MB/s (<= 1.33 s)",
                    prepare, lambda t: None, timed, cleanup)


def unique_tarball(name: str) -> Path:
    """A copy of the 200 MB rootfs with one file that no other image has, so that no tool can
    skip the layer because another bench image already stored it."""
    import io
    import tarfile
    import uuid

    out = WORK / f"rootfs-{name}.tar"
    shutil.copyfile(rootfs_tarball(), out)
    token = uuid.uuid4().hex.encode()
    with tarfile.open(out, "a") as tf:
        info = tarfile.TarInfo("etc/bench-unique")
        info.size = len(token)
        tf.addfile(info, io.BytesIO(token))
    return out


def w_save_load() -> Workload:
    tarball: list[Path] = []
    archive = WORK / "saved.tar"

    def prepare() -> None:
        tarball.append(unique_tarball("saveload"))

    def setup(tool: str) -> None:
        sh([*cli(tool), "import", str(tarball[0]), "bench/saveload:latest"])

    def timed(tool: str) -> None:
        sh([*cli(tool), "save", "-o", str(archive), "bench/saveload:latest"])
        sh([*cli(tool), "rmi", "-f", "bench/saveload:latest"])
        sh([*cli(tool), "load", "-i", str(archive)])

    def cleanup(tool: str) -> None:
        sh([*cli(tool), "rmi", "-f", "bench/saveload:latest"], check=False)
        archive.unlink(missing_ok=True)

    return Workload("save + rmi + load of a ~200 MB image", "<= 1.2 s", prepare, setup, timed,
                    cleanup)


def w_images50() -> Workload:
    small = WORK / "small.tar"

    def prepare() -> None:
        if not small.exists():
            d = WORK / "small"
            (d / "bin").mkdir(parents=True, exist_ok=True)
            shutil.copy2("/bin/busybox", d / "bin/busybox")
            subprocess.run(["tar", "-C", str(d), "-cf", str(small), "."], check=True)

    def setup(tool: str) -> None:
        r = subprocess.run([*cli(tool), "images", "-q", "bench/many"], capture_output=True)
        if len(r.stdout.split()) >= 1 and len(set(r.stdout.split())) >= 50:
            return
        for i in range(50):
            sh([*cli(tool), "import", "-c", f"LABEL n={i}", str(small), f"bench/many:{i}"])

    def timed(tool: str) -> None:
        sh([*cli(tool), "images"])

    return Workload("images on a store with 50 images", "<= 0.1 s", prepare, setup, timed,
                    lambda t: None)


def w_commit() -> Workload:
    """commit of a running container whose rw layer holds a 64 MB change (paused, default)."""
    small = WORK / "small-commit.tar"
    names = {"cargohold": "bench-commit", "docker": "bench-commit", "podman": "bench-commit"}
    failed: dict[str, bytes] = {}

    def prepare() -> None:
        if not small.exists():
            d = WORK / "small-commit"
            (d / "bin").mkdir(parents=True, exist_ok=True)
            shutil.copy2("/bin/busybox", d / "bin/busybox")
            subprocess.run(["tar", "-C", str(d), "-cf", str(small), "."], check=True)

    def setup(tool: str) -> None:
        sh([*cli(tool), "rm", "-f", names[tool]], check=False)
        sh([*cli(tool), "import", str(small), "bench/commit-base:1"])
        script = ("/bin/busybox dd if=/dev/urandom of=/big bs=1M count=64 2>/dev/null; "
                  "/bin/busybox touch /done; exec /bin/busybox sleep 1000")
        failed.pop(tool, None)
        r = sh([*cli(tool), "run", "-d", "--network", "none", "--name", names[tool],
                "bench/commit-base:1", "/bin/busybox", "sh", "-c", script], check=False)
        if r.returncode != 0:
            failed[tool] = r.stderr
            return
        for _ in range(200):
            if sh([*cli(tool), "exec", names[tool], "/bin/busybox", "test", "-e", "/done"],
                  check=False).returncode == 0:
                return
            time.sleep(0.05)
        failed[tool] = b"the 64 MB change was never written"

    def timed(tool: str) -> None:
        if tool in failed:  # reported (and the tool skipped) by the harness
            raise subprocess.CalledProcessError(1, "setup", stderr=b"setup: " + failed[tool])
        sh([*cli(tool), "commit", names[tool], "bench/committed:1"])

    def cleanup(tool: str) -> None:
        sh([*cli(tool), "rm", "-f", names[tool]], check=False)
        sh([*cli(tool), "rmi", "-f", "bench/committed:1", "bench/commit-base:1"], check=False)

    return Workload("commit of a 64 MB change", "<= 0.3 s (docker 0.59 s, podman 1.15 s)",
                    prepare, setup, timed, cleanup)


def w_bootstrap() -> Workload:
    """image bootstrap debian:bookworm (minbase) beside one plain debootstrap of the same suite.

    Network-bound: run it alone, e.g. ``bench/run.py bootstrap --runs 1 --tools cargohold``.
    docker and podman have no such verb; the reference row is ``debootstrap``.
    """
    target = WORK / "debootstrap-bookworm"

    def prepare() -> None:
        from cargohold.engine.images.bootstrap import detect_mirror

        shutil.rmtree(target, ignore_errors=True)
        t0 = time.perf_counter()
        sh(["debootstrap", "--variant=minbase", "bookworm", str(target), detect_mirror("debian")])
        wl.results.setdefault("debootstrap", []).append(time.perf_counter() - t0)
        shutil.rmtree(target, ignore_errors=True)

    def timed(tool: str) -> None:
        if tool != "cargohold":
            raise subprocess.CalledProcessError(1, tool, stderr=b"no bootstrap verb (skipped)")
        sh([*cli(tool), "image", "bootstrap", "-q", "debian:bookworm"])

    def cleanup(tool: str) -> None:
        sh([*cli(tool), "rmi", "-f", "debian:bookworm"], check=False)

    wl = Workload("image bootstrap debian:bookworm minbase", "<= plain debootstrap",
                  prepare, lambda t: None, timed, cleanup)
    return wl


def _busybox_image(tool: str, name: str = "bench/busybox:latest") -> None:
    """A busybox base image in the tool's store (imported from the host's /bin/busybox)."""
    tar = WORK / "busybox-rootfs.tar"
    if not tar.exists():
        d = WORK / "busybox-rootfs"
        (d / "bin").mkdir(parents=True, exist_ok=True)
        shutil.copy2("/bin/busybox", d / "bin/busybox")
        for applet in ("sh", "echo", "mkdir", "chmod", "touch", "cat", "true", "ls"):
            link = d / "bin" / applet
            if not link.is_symlink():
                link.symlink_to("busybox")
        subprocess.run(["tar", "-C", str(d), "-cf", str(tar), "."], check=True)
    r = subprocess.run([*cli(tool), "image", "inspect", name], capture_output=True)
    if r.returncode != 0:
        sh([*cli(tool), "import", "-c", 'CMD ["/bin/sh"]', str(tar), name])


def _build_context12() -> Path:
    """A 12-step Dockerfile (RUN, COPY, ADD and config steps) and its small context."""
    ctx = WORK / "build12"
    ctx.mkdir(parents=True, exist_ok=True)
    (ctx / "index.html").write_text("this is test dockerfile web\n")
    (ctx / "run.sh").write_text("#!/bin/sh\nexec httpd -f -p 80\n")
    (ctx / "Dockerfile").write_text(
        "FROM bench/busybox:latest\n"
        "MAINTAINER bench <bench@example.com>\n"
        "ENV APP=/srv/app\n"
        "RUN mkdir -p $APP /var/www/html\n"
        "EXPOSE 80\n"
        "ADD index.html /var/www/html/\n"
        "COPY run.sh /run.sh\n"
        "RUN chmod +x /run.sh\n"
        "WORKDIR /srv/app\n"
        "LABEL org.example.bench=12\n"
        "RUN echo built > /srv/app/stamp\n"
        'CMD ["/run.sh"]\n'
    )
    return ctx


def w_build() -> Workload:
    ctx: list[Path] = []

    def prepare() -> None:
        ctx.append(_build_context12())

    def setup(tool: str) -> None:
        _busybox_image(tool)

    def timed(tool: str) -> None:
        sh([*cli(tool), "build", "--no-cache", "-q", "-t", "bench/build12:latest", str(ctx[0])])

    def cleanup(tool: str) -> None:
        sh([*cli(tool), "rmi", "-f", "bench/build12:latest"], check=False)

    return Workload("12-step busybox build without cache", "<= 1.0 s", prepare, setup, timed,
                    cleanup)


def w_build_cached() -> Workload:
    ctx: list[Path] = []

    def prepare() -> None:
        ctx.append(_build_context12())

    def setup(tool: str) -> None:
        _busybox_image(tool)
        sh([*cli(tool), "build", "-q", "-t", "bench/build12c:latest", str(ctx[0])])

    def timed(tool: str) -> None:
        sh([*cli(tool), "build", "-q", "-t", "bench/build12c:latest", str(ctx[0])])

    return Workload("the same 12-step build fully cached", "<= 0.09 s", prepare, setup, timed,
                    lambda t: None)


def _big_context() -> Path:
    """~170 MB in ~9,000 files copied from /usr (built once) and a one-COPY Dockerfile."""
    ctx = WORK / "build-big"
    data = ctx / "data"
    if not data.exists():
        tmp = WORK / "build-big.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        total = files = 0
        for dirpath, _dirs, names in os.walk("/usr"):
            for name in sorted(names):
                src = os.path.join(dirpath, name)
                if not os.path.isfile(src) or os.path.islink(src):
                    continue
                size = os.path.getsize(src)
                if size > 8 << 20:
                    continue
                dst = tmp / os.path.relpath(src, "/usr")
                dst.parent.mkdir(parents=True, exist_ok=True)
                try:
                    shutil.copy2(src, dst)
                except OSError:
                    continue
                total += size
                files += 1
                if files >= 9000 or total >= 170 << 20:
                    break
            if files >= 9000 or total >= 170 << 20:
                break
        ctx.mkdir(parents=True, exist_ok=True)
        tmp.rename(data)
    (ctx / "Dockerfile").write_text("FROM bench/busybox:latest\nCOPY data /data\n")
    return ctx


def w_build_copy() -> Workload:
    ctx: list[Path] = []

    def prepare() -> None:
        ctx.append(_big_context())

    def setup(tool: str) -> None:
        _busybox_image(tool)

    def timed(tool: str) -> None:
        sh([*cli(tool), "build", "--no-cache", "-q", "-t", "bench/buildcopy:latest", str(ctx[0])])

    def cleanup(tool: str) -> None:
        sh([*cli(tool), "rmi", "-f", "bench/buildcopy:latest"], check=False)

    return Workload("COPY of a ~170 MB / ~9,000-file context without cache", "<= 2.0 s",
                    prepare, setup, timed, cleanup)


def w_run_none() -> Workload:
    """``run --rm --network none IMAGE true`` (foreground: create, start, wait, remove)."""

    def timed(tool: str) -> None:
        sh([*cli(tool), "run", "--rm", "--network", "none", "bench/busybox:latest", "true"])

    return Workload("run --rm --network none IMAGE true", "<= 0.12 s (docker 0.39, podman 0.24)",
                    lambda: None, _busybox_image, timed, lambda t: None)


def w_run_bridge() -> Workload:
    """``run --rm IMAGE true`` on the default bridge (veth, address, NAT rules, teardown)."""

    def timed(tool: str) -> None:
        sh([*cli(tool), "run", "--rm", "bench/busybox:latest", "true"])

    return Workload("run --rm IMAGE true (default bridge)", "<= 0.18 s (docker 0.36, podman 0.53)",
                    lambda: None, _busybox_image, timed, lambda t: None)


def w_run_10d() -> Workload:
    """10 x ``run -d -i IMAGE cat`` then one ``rm -f`` of all ten."""

    def timed(tool: str) -> None:
        ids = []
        for _ in range(10):
            # `cat` on the kept-open stdin (-i) runs until removed (the image has no sleep)
            r = subprocess.run([*cli(tool), "run", "-d", "-i", "bench/busybox:latest", "cat"],
                               capture_output=True, check=True)
            ids.append(r.stdout.decode().strip())
        sh([*cli(tool), "rm", "-f", *ids])

    return Workload("10 x run -d + rm -f of all ten", "<= 1.5 s (docker 3.4, podman 22)",
                    lambda: None, _busybox_image, timed, lambda t: None)

# ---- registry pull / push (a docker-registry on 127.0.0.1, restarted empty for each push) ----

class _LocalRegistry:
    """Debian's docker-registry on a free 127.0.0.1 port with storage under WORK."""

    def __init__(self) -> None:
        import atexit
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.dir = WORK / "registry"
        self.proc: subprocess.Popen[bytes] | None = None
        atexit.register(self.stop)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, fresh: bool = False) -> None:
        import socket

        self.stop()
        if fresh:
            shutil.rmtree(self.dir / "data", ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "config.yml"
        conf.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                        f"    rootdirectory: {self.dir / 'data'}\n  delete:\n    enabled: true\n"
                        f"http:\n  addr: {self.host}\n")
        self.proc = subprocess.Popen(["docker-registry", "serve", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("docker-registry did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait()
            self.proc = None


def _registry_tool_args(tool: str) -> list[str]:
    # dockerd treats 127.0.0.0/8 as an insecure registry by default and has no such flag
    return [] if tool == "docker" else ["--tls-verify=false"]


def w_registry_pull() -> Workload:
    """pull of a ~200 MB single-layer image (gzip) from a registry on 127.0.0.1."""
    reg = _LocalRegistry()
    name: list[str] = []

    def prepare() -> None:
        if shutil.which("docker-registry") is None:
            raise SystemExit("docker-registry is not installed (scripts/install.sh)")
        reg.start(fresh=True)
        name.append(f"{reg.host}/bench/pull:latest")
        unique = WORK / "rootfs-pull.tar"  # a layer no other image of the stores shares
        if not unique.exists():
            import tarfile

            shutil.copy(rootfs_tarball(), unique)
            marker = WORK / "pull-marker"
            marker.write_text("pull workload\n")
            with tarfile.open(unique, "a") as tf:
                tf.add(marker, "pull-marker")
        sh([*CARGOHOLD, "import", str(unique), name[0]])
        sh([*CARGOHOLD, "push", "--tls-verify=false", name[0]])

    def drop(tool: str) -> None:  # by id: a tag alone may leave the image (its digest)
        r = subprocess.run([*cli(tool), "image", "inspect", "--format", "{{.Id}}", name[0]],
                           capture_output=True, text=True)
        if r.returncode == 0:
            sh([*cli(tool), "rmi", "-f", r.stdout.strip()], check=False)

    def timed(tool: str) -> None:
        sh([*cli(tool), "pull", *_registry_tool_args(tool), name[0]])

    return Workload("pull of a ~200 MB image from a registry on 127.0.0.1",
                    "<= 0.5 x podman pull", prepare, drop, timed, drop)


def w_registry_push() -> Workload:
    """push (gzip) of a ~200 MB single-layer image to an empty registry on 127.0.0.1."""
    reg = _LocalRegistry()
    name: list[str] = []

    def prepare() -> None:
        if shutil.which("docker-registry") is None:
            raise SystemExit("docker-registry is not installed (scripts/install.sh)")
        name.append(f"{reg.host}/bench/push:latest")

    def setup(tool: str) -> None:
        reg.start(fresh=True)  # nothing to skip or mount: every push compresses and uploads
        r = subprocess.run([*cli(tool), "image", "inspect", name[0]], capture_output=True)
        if r.returncode != 0:
            sh([*cli(tool), "import", str(rootfs_tarball()), name[0]])

    def timed(tool: str) -> None:
        sh([*cli(tool), "push", *_registry_tool_args(tool), name[0]])

    return Workload("push of a ~200 MB image to an empty registry on 127.0.0.1",
                    "<= 0.5 x podman push", prepare, setup, timed, lambda t: None)


WORKLOADS = {
    # issue 2: engine core
    "import": w_import,
    "save-load": w_save_load,
    "images": w_images50,
    # issue 3: containers
    "commit": w_commit,
    "run-none": w_run_none,
    "run-10d": w_run_10d,
    # issue 4: networking
    "run-bridge": w_run_bridge,
    # issue 5: builder
    "build": w_build,
    "build-cached": w_build_cached,
    "build-copy": w_build_copy,
    # issue 6: registries and base images
    "pull": w_registry_pull,
    "push": w_registry_push,
    "bootstrap": w_bootstrap,
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("workloads", nargs="*", default=list(WORKLOADS))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--tools", default="cargohold,docker,podman")
    opts = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    tools = []
    for tool in opts.tools.split(","):
        reason = tool_available(tool)
        if reason:
            print(f"# skipping {tool}: {reason}")
        else:
            tools.append(tool)
    for name in opts.workloads:
        wl = WORKLOADS[name]()
        wl.prepare()
        for _ in range(opts.runs):
            for tool in tools:
                wl.setup(tool)
                t0 = time.perf_counter()
                try:
                    wl.timed(tool)
                except subprocess.CalledProcessError as e:
                    print(f"# {tool} failed on {name}: {e.stderr.decode(errors='replace')[-300:]}")
                    break
                wl.results.setdefault(tool, []).append(time.perf_counter() - t0)
                wl.cleanup(tool)
        report(wl)
    return 0


def report(wl: Workload) -> None:
    print(f"\n## {wl.name}  (budget {wl.budget})")
    base = statistics.median(wl.results["cargohold"]) if wl.results.get("cargohold") else None
    for tool, times in wl.results.items():
        med = statistics.median(times)
        ratio = f"  x{med / base:.2f} of cargohold" if base and tool != "cargohold" else ""
        print(f"  {tool:<10} median {med:.3f} s  (n={len(times)}, min {min(times):.3f}){ratio}")
    sys.stdout.flush()


if __name__ == "__main__":
    sys.exit(main())
