"""Base images without a registry: ``cargohold image bootstrap``.

``debian:SUITE`` / ``ubuntu:SUITE`` run mmdebstrap (``--variant=minbase``, tar on stdout,
streamed straight into the layer store) or, when it is missing, debootstrap into a temp dir that
is then packed with our deterministic layer writer.  ``busybox`` packs the host's static
busybox (Debian's busybox-static) with its applet links; it needs no network.

Reproducible: every timestamp (file mtimes, the config's ``created``) is SOURCE_DATE_EPOCH,
taken from the suite's Release file (or ``--source-date-epoch``), so the same suite snapshot,
mirror and options give the same layer diff_id and the same image id.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO

import msgspec

from cargohold.errors import InvalidArgument, NotFound, Unavailable
from cargohold.oci import image as oci_image

if TYPE_CHECKING:
    from cargohold.engine import Engine

Progress = Callable[[str], None]

DEBIAN_SUITES = {"buster": "10", "bullseye": "11", "bookworm": "12", "trixie": "13",
                 "forky": "14", "sid": "unstable"}
DEBIAN_ALIASES = {"stable", "oldstable", "oldoldstable", "testing", "unstable"}
UBUNTU_SUITES = {"focal": "20.04", "jammy": "22.04", "noble": "24.04", "oracular": "24.10",
                 "plucky": "25.04", "questing": "25.10"}
DEFAULT_MIRRORS = {"debian": "http://deb.debian.org/debian",
                   "ubuntu": "http://archive.ubuntu.com/ubuntu"}
KEYRINGS = {"debian": "/usr/share/keyrings/debian-archive-keyring.gpg",
            "ubuntu": "/usr/share/keyrings/ubuntu-archive-keyring.gpg"}
SOURCES_FILES = ("/etc/apt/sources.list", "/etc/apt/sources.list.d")
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Host files that would make the image depend on the machine that built it.
_HOST_FILES = ("etc/hostname", "etc/resolv.conf")


class Target(msgspec.Struct, frozen=True):
    """What to bootstrap: ``distro`` debian | ubuntu | busybox, ``suite`` a codename."""

    distro: str
    suite: str
    reference: str  # the default name of the result, e.g. debian:bookworm


class BootstrapOptions(msgspec.Struct, frozen=True):
    name: str
    tag: str | None = None
    mirror: str | None = None
    variant: str = "minbase"
    tool: str = "auto"  # auto | mmdebstrap | debootstrap
    source_date_epoch: int | None = None
    include: tuple[str, ...] = ()
    busybox: str = "/bin/busybox"


class BootstrapResult(msgspec.Struct, frozen=True):
    image_id: str
    reference: str
    tool: str
    source_date_epoch: int
    seconds: float


# ------------------------------------------------------------------------ targets, mirrors


def parse_target(name: str) -> Target:
    """``debian:bookworm``, ``debian:12``, ``bookworm``, ``ubuntu:noble``, ``busybox``."""
    repo, _, tag = name.partition(":")
    repo = repo.removeprefix("docker.io/").removeprefix("library/")
    if repo == "busybox":
        return Target("busybox", "", f"busybox:{tag or 'latest'}")
    if not tag and repo in DEBIAN_SUITES:
        repo, tag = "debian", repo
    elif not tag and repo in UBUNTU_SUITES:
        repo, tag = "ubuntu", repo
    if repo == "debian":
        by_version = {v: k for k, v in DEBIAN_SUITES.items()}
        suite = by_version.get(tag, tag or "stable")
        if suite not in DEBIAN_SUITES and suite not in DEBIAN_ALIASES:
            raise InvalidArgument(f"unknown Debian suite {tag!r}: use one of "
                                  f"{', '.join(DEBIAN_SUITES)}")
        return Target("debian", suite, f"debian:{tag or 'latest'}")
    if repo == "ubuntu":
        by_version = {v: k for k, v in UBUNTU_SUITES.items()}
        suite = by_version.get(tag, tag)
        if suite not in UBUNTU_SUITES:
            raise InvalidArgument(f"unknown Ubuntu suite {tag!r}: use one of "
                                  f"{', '.join(UBUNTU_SUITES)}")
        return Target("ubuntu", suite, f"ubuntu:{tag}")
    raise InvalidArgument(f"cannot bootstrap {name!r}: use debian:SUITE, ubuntu:SUITE or busybox")


def apt_sources(paths: Iterable[str] = SOURCES_FILES) -> list[tuple[str, list[str]]]:
    """(URI, suites) of every enabled ``deb`` entry in one-line and deb822 apt sources."""
    out: list[tuple[str, list[str]]] = []
    for path in paths:
        p = Path(path)
        files = sorted(p.iterdir()) if p.is_dir() else [p]
        for f in files:
            try:
                text = f.read_text(errors="replace")
            except OSError:
                continue
            if f.name.endswith(".sources"):
                out += _deb822_sources(text)
            elif f.name.endswith(".list"):
                out += _one_line_sources(text)
    return out


def _one_line_sources(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for line in text.splitlines():
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            out.append((words[1], [words[2]]))
    return out


def _deb822_sources(text: str) -> list[tuple[str, list[str]]]:
    out = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = ""
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1] in (" ", "\t") and key:
                fields[key] += " " + line.strip()
            elif ":" in line:
                key, _, value = line.partition(":")
                key = key.strip().lower()
                fields[key] = value.strip()
        if "deb" not in fields.get("types", "").split():
            continue
        if fields.get("enabled", "yes").lower() == "no":
            continue
        suites = fields.get("suites", "").split()
        out += [(uri, suites) for uri in fields.get("uris", "").split()]
    return out


def detect_mirror(distro: str, paths: Iterable[str] = SOURCES_FILES) -> str:
    """The host's apt mirror for ``distro`` (its main archive, not -security), else the default."""
    known = set(DEBIAN_SUITES) | DEBIAN_ALIASES if distro == "debian" else set(UBUNTU_SUITES)
    for uri, suites in apt_sources(paths):
        if not uri.startswith(("http://", "https://")) or "security" in uri:
            continue
        if any(s in known for s in suites):
            return uri.rstrip("/")
    return DEFAULT_MIRRORS[distro]


def release_epoch(mirror: str, suite: str, timeout: float = 20.0) -> int:
    """SOURCE_DATE_EPOCH for a suite: the ``Date:`` of its Release file on the mirror."""
    from email.utils import parsedate_to_datetime
    from urllib.error import URLError
    from urllib.request import urlopen

    url = f"{mirror.rstrip('/')}/dists/{suite}/Release"
    try:
        with urlopen(url, timeout=timeout) as resp:
            head = resp.read(8192).decode("utf-8", "replace")
    except (URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise Unavailable(
            f"cannot reach the mirror: GET {url}: {reason} "
            "(pass --mirror URL, or --source-date-epoch to skip this check)"
        ) from None
    match = re.search(r"^Date:\s*(.+)$", head, re.MULTILINE)
    if not match:
        raise Unavailable(f"{url} has no Date field")
    return int(parsedate_to_datetime(match.group(1).strip()).timestamp())


# ------------------------------------------------------------------------ command lines


def mmdebstrap_command(target: Target, mirror: str, opts: BootstrapOptions,
                       as_root: bool) -> list[str]:
    """mmdebstrap writing the rootfs as a tar on stdout, without host-specific files."""
    cmd = ["mmdebstrap", f"--variant={opts.variant}",
           "--mode=root" if as_root else "--mode=unshare", "--format=tar"]
    keyring = KEYRINGS[target.distro]
    if os.path.exists(keyring):
        cmd.append(f"--keyring={keyring}")
    if opts.include:
        cmd.append("--include=" + ",".join(opts.include))
    cmd += [f'--customize-hook=rm -f "$1/{f}"' for f in _HOST_FILES]
    cmd += [target.suite, "-", mirror]
    return cmd


def debootstrap_command(target: Target, mirror: str, opts: BootstrapOptions,
                        rootdir: str) -> list[str]:
    cmd = ["debootstrap", f"--variant={opts.variant}"]
    keyring = KEYRINGS[target.distro]
    if os.path.exists(keyring):
        cmd.append(f"--keyring={keyring}")
    if opts.include:
        cmd.append("--include=" + ",".join(opts.include))
    return [*cmd, target.suite, rootdir, mirror]


def pick_tool(requested: str, which: Callable[[str], str | None] = shutil.which) -> str:
    tools = ("mmdebstrap", "debootstrap") if requested == "auto" else (requested,)
    if requested not in ("auto", "mmdebstrap", "debootstrap"):
        raise InvalidArgument(f"unknown bootstrap tool {requested!r}: "
                              "use mmdebstrap or debootstrap")
    for tool in tools:
        if which(tool):
            return tool
    raise Unavailable(f"{' or '.join(tools)} is not installed (apt-get install {tools[0]})")


FAST_TMPDIRS = ("/dev/shm",)
_TMPFS_NEEDS = 2 << 30  # free space and free memory a minbase chroot (and its debs) fits in


def fast_tmpdir(environ: dict[str, str], mounts: str, free_bytes: Callable[[str], int],
                mem_available: int) -> str | None:
    """A tmpfs for mmdebstrap's chroot: dpkg's fsyncs on disk double the time (23 s vs 11 s
    here).  None when TMPDIR is set (the user chose), or no roomy, exec-able tmpfs exists."""
    if environ.get("TMPDIR") or mem_available < _TMPFS_NEEDS:
        return None
    table: dict[str, tuple[str, list[str]]] = {}
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 4:
            table[fields[1]] = (fields[2], fields[3].split(","))  # the last mount wins
    for path in FAST_TMPDIRS:
        fstype, options = table.get(path, ("", []))
        if fstype == "tmpfs" and "noexec" not in options and "ro" not in options:
            try:
                if free_bytes(path) >= _TMPFS_NEEDS:
                    return path
            except OSError:
                continue
    return None


def _host_fast_tmpdir() -> str | None:
    try:
        with open("/proc/mounts") as f:
            mounts = f.read()
        with open("/proc/meminfo") as f:
            match = re.search(r"^MemAvailable:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    mem = int(match.group(1)) * 1024 if match else 0

    def free(path: str) -> int:
        st = os.statvfs(path)
        return st.f_bavail * st.f_frsize

    return fast_tmpdir(dict(os.environ), mounts, free, mem)


# ------------------------------------------------------------------------ busybox


def busybox_applets(busybox: str) -> list[str]:
    """Relative paths of every applet link (``bin/sh``, ``usr/bin/wc``) from ``--list-full``."""
    out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True, check=True)
    applets = []
    for line in out.stdout.split():
        parts = line.strip("/").split("/")
        if len(parts) < 2 or any(p in ("", ".", "..") for p in parts):
            continue  # e.g. "linuxrc" at the top: not wanted in a container image
        if line.strip("/") != "bin/busybox":
            applets.append("/".join(parts))
    return sorted(set(applets))


def is_static_elf(path: str) -> bool:
    """True for an ELF executable with no PT_INTERP program header (no dynamic loader)."""
    import struct

    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF":
            return False
        le = "<" if head[5] == 1 else ">"
        if head[4] == 2:  # 64-bit
            phoff, = struct.unpack_from(le + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(le + "HH", head, 54)
        else:
            phoff, = struct.unpack_from(le + "I", head, 28)
            phentsize, phnum = struct.unpack_from(le + "HH", head, 42)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from(le + "I", table, i * phentsize)[0] != 3 for i in range(phnum))


_BUSYBOX_DIRS = {"bin": 0o755, "dev": 0o755, "etc": 0o755, "home": 0o755, "proc": 0o755,
                 "root": 0o700, "sbin": 0o755, "sys": 0o755, "tmp": 0o1777, "usr": 0o755,
                 "usr/bin": 0o755, "usr/sbin": 0o755, "var": 0o755, "var/spool": 0o755,
                 "var/spool/mail": 0o755, "var/www": 0o755}
_BUSYBOX_FILES = {
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\n"
                  "www-data:x:33:33:www-data:/var/www:/bin/false\n"
                  "nobody:x:65534:65534:nobody:/home:/bin/false\n",
    "etc/group": "root:x:0:\ndaemon:x:1:\ntty:x:5:\nwww-data:x:33:\nnobody:x:65534:\n",
}


def busybox_tar_entries(busybox: str, applets: Iterable[str],
                        epoch: int) -> list[tuple[tarfile.TarInfo, bytes | str | None]]:
    """The busybox rootfs as (header, content) pairs in a fixed order (parents first)."""
    entries: dict[str, tuple[tarfile.TarInfo, bytes | str | None]] = {}

    def info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.type, ti.mode, ti.mtime = kind, mode, epoch
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti

    def add_dirs(path: str) -> None:
        parent = path.rpartition("/")[0]
        while parent and parent not in entries:
            entries[parent] = (info(parent, tarfile.DIRTYPE, 0o755), None)
            parent = parent.rpartition("/")[0]

    for name, mode in _BUSYBOX_DIRS.items():
        entries[name] = (info(name, tarfile.DIRTYPE, mode), None)
    for name, text in _BUSYBOX_FILES.items():
        data = text.encode()
        ti = info(name, tarfile.REGTYPE, 0o644)
        ti.size = len(data)
        entries[name] = (ti, data)
    ti = info("bin/busybox", tarfile.REGTYPE, 0o755)
    ti.size = os.stat(busybox).st_size
    entries["bin/busybox"] = (ti, busybox)
    for applet in applets:
        if applet in entries:
            continue
        add_dirs(applet)
        link = info(applet, tarfile.SYMTYPE, 0o777)
        link.linkname = "../" * applet.count("/") + "bin/busybox"
        entries[applet] = (link, None)
    return [entries[k] for k in sorted(entries, key=lambda p: p.split("/"))]


def write_busybox_tar(out: BinaryIO, busybox: str, applets: Iterable[str], epoch: int) -> None:
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for ti, content in busybox_tar_entries(busybox, applets, epoch):
            if isinstance(content, str):
                with open(content, "rb") as f:
                    tf.addfile(ti, f)
            else:
                tf.addfile(ti, io.BytesIO(content) if content is not None else None)


# ------------------------------------------------------------------------ service


class BootstrapService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def bootstrap(self, opts: BootstrapOptions,
                  progress: Progress | None = None) -> BootstrapResult:
        say = progress or (lambda _line: None)
        target = parse_target(opts.name)
        reference = opts.tag or target.reference
        from cargohold.oci.reference import parse_reference

        ref = parse_reference(reference).with_default_tag()
        t0 = time.monotonic()
        if target.distro == "busybox":
            image_id, epoch, tool = self._busybox(opts, str(ref), say)
        else:
            image_id, epoch, tool = self._debian(target, opts, str(ref), say)
        return BootstrapResult(image_id, ref.familiar(), tool, epoch, time.monotonic() - t0)

    # -- busybox ------------------------------------------------------------------------------
    def _busybox(self, opts: BootstrapOptions, reference: str,
                 say: Progress) -> tuple[str, int, str]:
        path = opts.busybox
        if not os.path.isfile(path):
            raise NotFound(f"{path}: no such file (apt-get install busybox-static)")
        if not is_static_elf(path):
            raise InvalidArgument(f"{path} is not a static executable "
                                  "(apt-get install busybox-static)")
        epoch = opts.source_date_epoch
        if epoch is None:
            epoch = int(os.stat(path).st_mtime)
        applets = busybox_applets(path)
        say(f"packing {path} with {len(applets)} applet links")
        buf = io.BytesIO()
        write_busybox_tar(buf, path, applets, epoch)
        buf.seek(0)
        image_id = self._import(buf, reference, epoch, [f"ENV {DEFAULT_PATH}", 'CMD ["sh"]'],
                                f"busybox {path} --list-full", "busybox-static")
        return image_id, epoch, "busybox"

    # -- debian / ubuntu ----------------------------------------------------------------------
    def _debian(self, target: Target, opts: BootstrapOptions, reference: str,
                say: Progress) -> tuple[str, int, str]:
        tool = pick_tool(opts.tool)
        mirror = (opts.mirror or detect_mirror(target.distro)).rstrip("/")
        keyring = KEYRINGS[target.distro]
        if target.distro == "ubuntu" and not os.path.exists(keyring):
            raise Unavailable(f"{keyring} is missing (apt-get install ubuntu-keyring)")
        epoch = opts.source_date_epoch
        if epoch is None:
            epoch = release_epoch(mirror, target.suite)
        say(f"{tool} --variant={opts.variant} {target.suite} from {mirror} "
            f"(SOURCE_DATE_EPOCH={epoch})")
        env = {**os.environ, "SOURCE_DATE_EPOCH": str(epoch), "LC_ALL": "C.UTF-8"}
        created_by = f"{tool} --variant={opts.variant} {target.suite} {mirror}"
        if opts.include:
            created_by += " --include=" + ",".join(opts.include)
        changes = [f"ENV {DEFAULT_PATH}", 'CMD ["bash"]']
        if tool == "mmdebstrap":
            cmd = mmdebstrap_command(target, mirror, opts, as_root=os.geteuid() == 0)
            tmpdir = _host_fast_tmpdir()
            if tmpdir:
                env["TMPDIR"] = tmpdir
            with _streamed(cmd, env, say) as stream:
                image_id = self._import(stream, reference, epoch, changes, created_by, tool)
        else:
            image_id = self._debootstrap(target, mirror, opts, env, epoch, reference, changes,
                                         created_by, say)
        return image_id, epoch, tool

    def _debootstrap(self, target: Target, mirror: str, opts: BootstrapOptions,
                     env: dict[str, str], epoch: int, reference: str, changes: list[str],
                     created_by: str, say: Progress) -> str:
        from cargohold.store.archive_create import write_layer_from_dir

        if os.geteuid() != 0:
            raise Unavailable("debootstrap needs root (or install mmdebstrap for unshare mode)")
        work = tempfile.mkdtemp(prefix="cargohold-bootstrap-", dir="/var/tmp")
        try:
            rootdir = os.path.join(work, "rootfs")
            cmd = debootstrap_command(target, mirror, opts, rootdir)
            _run_logged(cmd, env, say)
            _unmount_below(rootdir)
            clean_rootfs(rootdir, epoch)
            with _piped(lambda out: write_layer_from_dir(rootdir, out)) as stream:
                return self._import(stream, reference, epoch, changes, created_by, "debootstrap")
        finally:
            _unmount_below(work)
            shutil.rmtree(work, ignore_errors=True)

    # -- import (the engine's import path, with a fixed clock) --------------------------------
    def _import(self, stream: BinaryIO, reference: str, epoch: int, changes: list[str],
                created_by: str, comment: str) -> str:
        from cargohold.transport.local import register_layer

        section = oci_image.apply_changes({}, changes)
        layer = register_layer(self.engine.stores, stream, None)
        created = oci_image.rfc3339_nano(epoch * 1_000_000_000)
        config = oci_image.new_config(
            config=section,
            diff_ids=[layer.diff_id],
            history=[oci_image.history_entry(created_by, created=created,
                                             comment=f"cargohold image bootstrap ({comment})")],
            created=created,
        )
        store = self.engine.image_store
        record = store.add(oci_image.encode_json(config), layer.chain_id, size=layer.size)
        store.tag(record.id, reference)
        return record.id


# ------------------------------------------------------------------------ helpers


def clean_rootfs(rootdir: str, epoch: int) -> None:
    """Drop apt lists/caches, logs and host files; clamp every mtime to ``epoch``."""
    root = Path(rootdir)
    patterns = ["var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                "var/log/apt/*", "var/log/dpkg.log", "var/log/alternatives.log",
                "var/log/bootstrap.log", "var/cache/ldconfig/aux-cache", "var/lib/dpkg/*-old",
                "var/cache/debconf/*-old", *_HOST_FILES]
    for pattern in patterns:
        for p in root.glob(pattern):
            if (p.is_file() or p.is_symlink()) and p.name != "lock":
                p.unlink()
    machine_id = root / "etc/machine-id"
    if machine_id.is_file():
        machine_id.write_text("")
    for dirpath, dirnames, filenames in os.walk(rootdir, topdown=False):
        for name in [*filenames, *dirnames, None]:
            path = dirpath if name is None else os.path.join(dirpath, name)
            st = os.lstat(path)
            if st.st_mtime > epoch:
                os.utime(path, (epoch, epoch), follow_symlinks=False)


def _unmount_below(path: str) -> None:
    """Unmount whatever a failed debootstrap left mounted under ``path`` (deepest first)."""
    prefix = os.path.realpath(path) + "/"
    try:
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
    except OSError:
        return
    for point in sorted((p for p in points if p.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)


class _Tail:
    """Forwards a child's stderr lines to ``say`` and keeps the last ones for errors."""

    def __init__(self, pipe: BinaryIO, say: Progress) -> None:
        self.lines: deque[str] = deque(maxlen=15)
        self._thread = threading.Thread(target=self._pump, args=(pipe, say), daemon=True)
        self._thread.start()

    def _pump(self, pipe: BinaryIO, say: Progress) -> None:
        for raw in pipe:
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.lines.append(line)
                say(line)

    def text(self) -> str:
        self._thread.join(timeout=5)
        return "\n".join(self.lines)


def _run_logged(cmd: list[str], env: dict[str, str], say: Progress) -> None:
    proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    tail = _Tail(proc.stdout, say)  # type: ignore[arg-type]
    if proc.wait() != 0:
        raise Unavailable(f"{cmd[0]} failed with exit status {proc.returncode}:\n{tail.text()}")


class _streamed:
    """Context manager: the child's stdout as a stream; raises when the child fails."""

    def __init__(self, cmd: list[str], env: dict[str, str], say: Progress) -> None:
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.tail = _Tail(self.proc.stderr, say)  # type: ignore[arg-type]

    def __enter__(self) -> BinaryIO:
        assert self.proc.stdout is not None
        first = self.proc.stdout.read(tarfile.BLOCKSIZE)
        if not first:  # the tool failed before writing any of the tar
            self._check()
            raise Unavailable(f"{self.cmd[0]} wrote no output")
        return io.BufferedReader(_Prefixed(first, self.proc.stdout))

    def _check(self) -> None:
        if self.proc.wait() != 0:
            raise Unavailable(f"{self.cmd[0]} failed with exit status "
                              f"{self.proc.returncode}:\n{self.tail.text()}")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            return
        self._check()


class _Prefixed(io.RawIOBase):
    """``prefix`` followed by the rest of ``rest``: a read-only binary stream."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(buf), len(self._prefix))
            buf[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._rest.read(len(buf))
        buf[: len(data)] = data
        return len(data)


class _piped:
    """Context manager: what ``write(out)`` writes in a thread, as a readable stream."""

    def __init__(self, write: Callable[[BinaryIO], None]) -> None:
        rfd, wfd = os.pipe()
        self.reader = os.fdopen(rfd, "rb")
        self.error: BaseException | None = None

        def run() -> None:
            try:
                with os.fdopen(wfd, "wb") as out:
                    write(out)
            except BaseException as exc:  # reported by __exit__
                self.error = exc

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()

    def __enter__(self) -> BinaryIO:
        return self.reader

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.reader.close()  # unblocks the writer if the reader gave up
        self.thread.join()
        if exc_type is None and self.error is not None:
            raise self.error

