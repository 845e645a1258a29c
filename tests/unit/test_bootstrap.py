"""image bootstrap without root or network: targets, mirror detection, command lines, busybox."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from cargohold.engine.images import bootstrap as bs
from cargohold.errors import InvalidArgument, Unavailable

# ---- targets ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "distro", "suite", "ref"),
    [
        ("debian:bookworm", "debian", "bookworm", "debian:bookworm"),
        ("debian:12", "debian", "bookworm", "debian:12"),
        ("debian:bullseye", "debian", "bullseye", "debian:bullseye"),
        ("debian:trixie", "debian", "trixie", "debian:trixie"),
        ("debian", "debian", "stable", "debian:latest"),
        ("bookworm", "debian", "bookworm", "debian:bookworm"),
        ("docker.io/library/debian:sid", "debian", "sid", "debian:sid"),
        ("ubuntu:noble", "ubuntu", "noble", "ubuntu:noble"),
        ("ubuntu:22.04", "ubuntu", "jammy", "ubuntu:22.04"),
        ("busybox", "busybox", "", "busybox:latest"),
        ("busybox:musl", "busybox", "", "busybox:musl"),
    ],
)
def test_parse_target(name: str, distro: str, suite: str, ref: str) -> None:
    assert bs.parse_target(name) == bs.Target(distro, suite, ref)


@pytest.mark.parametrize("name", ["centos:7", "debian:wheezy-ish", "ubuntu", "alpine"])
def test_parse_target_rejects(name: str) -> None:
    with pytest.raises(InvalidArgument):
        bs.parse_target(name)


# ---- mirror detection ---------------------------------------------------------------------

DEB822 = """\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.example/debian-security
Suites: bookworm-security
Components: main
"""


def _write(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def test_detect_mirror_deb822(tmp_path: Path) -> None:
    _write(tmp_path, "sources.list.d/debian.sources", DEB822)
    _write(tmp_path, "sources.list.d/other.list.disabled", "deb http://bad.example/ x main\n")
    paths = [str(tmp_path / "sources.list"), str(tmp_path / "sources.list.d")]
    assert bs.detect_mirror("debian", paths) == "http://mirror.example/debian"
    assert bs.detect_mirror("ubuntu", paths) == bs.DEFAULT_MIRRORS["ubuntu"]


def test_detect_mirror_one_line_and_disabled(tmp_path: Path) -> None:
    _write(tmp_path, "sources.list",
           "# deb http://commented.example/debian bookworm main\n"
           "deb-src http://src.example/debian bookworm main\n"
           "deb [arch=amd64 signed-by=/k.gpg] http://one.example/debian/ bookworm main\n"
           "deb http://archive.example/ubuntu noble main universe\n")
    _write(tmp_path, "sources.list.d/x.sources",
           "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nEnabled: no\n")
    paths = [str(tmp_path / "sources.list.d"), str(tmp_path / "sources.list")]
    assert bs.detect_mirror("debian", paths) == "http://one.example/debian"
    assert bs.detect_mirror("ubuntu", paths) == "http://archive.example/ubuntu"


def test_detect_mirror_default_without_sources(tmp_path: Path) -> None:
    assert bs.detect_mirror("debian", [str(tmp_path / "none")]) == "http://deb.debian.org/debian"


def test_release_epoch_unreachable_names_the_url() -> None:
    with pytest.raises(Unavailable, match=r"http://127\.0\.0\.1:9/dists/bookworm/Release"):
        bs.release_epoch("http://127.0.0.1:9", "bookworm", timeout=2)


# ---- command lines ------------------------------------------------------------------------


def test_mmdebstrap_command_streams_tar_and_drops_host_files() -> None:
    target = bs.parse_target("debian:bookworm")
    opts = bs.BootstrapOptions("debian:bookworm", include=("ca-certificates", "curl"))
    cmd = bs.mmdebstrap_command(target, "http://m.example/debian", opts, as_root=True)
    assert cmd[:4] == ["mmdebstrap", "--variant=minbase", "--mode=root", "--format=tar"]
    assert cmd[-3:] == ["bookworm", "-", "http://m.example/debian"]
    assert "--include=ca-certificates,curl" in cmd
    assert '--customize-hook=rm -f "$1/etc/hostname"' in cmd
    assert '--customize-hook=rm -f "$1/etc/resolv.conf"' in cmd
    unpriv = bs.mmdebstrap_command(target, "http://m.example/debian", opts, as_root=False)
    assert "--mode=unshare" in unpriv


def test_debootstrap_command() -> None:
    target = bs.parse_target("debian:trixie")
    cmd = bs.debootstrap_command(target, "http://m/debian", bs.BootstrapOptions("x"), "/t/r")
    assert cmd[:2] == ["debootstrap", "--variant=minbase"]
    assert cmd[-3:] == ["trixie", "/t/r", "http://m/debian"]


def test_pick_tool() -> None:
    assert bs.pick_tool("auto", lambda t: "/usr/bin/" + t) == "mmdebstrap"
    only_deb = {"debootstrap": "/usr/sbin/debootstrap"}.get
    assert bs.pick_tool("auto", only_deb) == "debootstrap"
    with pytest.raises(Unavailable, match="mmdebstrap is not installed"):
        bs.pick_tool("mmdebstrap", only_deb)
    with pytest.raises(InvalidArgument):
        bs.pick_tool("cdebootstrap", only_deb)


# ---- busybox ------------------------------------------------------------------------------


def _fake_busybox(tmp: Path) -> Path:
    p = tmp / "busybox"
    p.write_bytes(b"\x7fELF not really a binary")
    return p


def test_busybox_layout(tmp_path: Path) -> None:
    binary = _fake_busybox(tmp_path)
    applets = ["bin/sh", "bin/ls", "usr/bin/wc", "sbin/ifconfig", "usr/local/bin/x"]
    buf = io.BytesIO()
    bs.write_busybox_tar(buf, str(binary), applets, 1_700_000_000)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        members = tf.getmembers()
        names = [m.name for m in members]
        by_name = {m.name: m for m in members}
        passwd = tf.extractfile("etc/passwd").read().decode()  # type: ignore[union-attr]
    assert names.index("usr") < names.index("usr/bin") < names.index("usr/bin/wc")
    assert names.index("usr/local") < names.index("usr/local/bin")
    assert by_name["bin/sh"].linkname == "../bin/busybox"
    assert by_name["usr/bin/wc"].linkname == "../../bin/busybox"
    assert by_name["usr/local/bin/x"].linkname == "../../../bin/busybox"
    assert by_name["tmp"].mode == 0o1777 and by_name["tmp"].isdir()
    assert by_name["root"].mode == 0o700
    assert by_name["bin/busybox"].size == binary.stat().st_size
    assert by_name["bin/busybox"].mode == 0o755
    assert passwd.startswith("root:x:0:0:root:/root:/bin/sh\n")
    assert "etc/group" in by_name
    assert {m.mtime for m in members} == {1_700_000_000}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}


def test_busybox_tar_is_deterministic(tmp_path: Path) -> None:
    binary = _fake_busybox(tmp_path)
    outs = []
    for applets in (["bin/sh", "usr/bin/wc"], ["usr/bin/wc", "bin/sh"]):
        buf = io.BytesIO()
        bs.write_busybox_tar(buf, str(binary), applets, 1)
        outs.append(buf.getvalue())
    assert outs[0] == outs[1]


@pytest.mark.skipif(not os.path.exists("/bin/busybox"), reason="busybox-static not installed")
def test_host_busybox_applets_and_static() -> None:
    applets = bs.busybox_applets("/bin/busybox")
    assert "bin/sh" in applets and "bin/busybox" not in applets
    assert all(not a.startswith("/") and ".." not in a.split("/") for a in applets)
    assert bs.is_static_elf("/bin/busybox")


def test_is_static_elf_detects_dynamic() -> None:
    python = shutil.which("ls") or "/bin/ls"
    assert not bs.is_static_elf(os.path.realpath(python))


def test_clean_rootfs_clamps_and_removes(tmp_path: Path) -> None:
    root = tmp_path / "rootfs"
    for rel in ("var/lib/apt/lists/deb_Packages", "var/lib/apt/lists/lock", "etc/hostname",
                "var/cache/apt/pkgcache.bin", "var/log/dpkg.log", "usr/bin/tool"):
        _write(root, rel, "x")
    (root / "usr/bin/link").symlink_to("tool")
    os.utime(root / "usr/bin/tool", (100, 100))
    bs.clean_rootfs(str(root), 1000)
    assert not (root / "var/lib/apt/lists/deb_Packages").exists()
    assert (root / "var/lib/apt/lists/lock").exists()
    assert not (root / "etc/hostname").exists()
    assert not (root / "var/cache/apt/pkgcache.bin").exists()
    assert not (root / "var/log/dpkg.log").exists()
    assert os.lstat(root / "usr/bin/tool").st_mtime == 100  # older files keep their time
    assert os.lstat(root / "usr/bin/link").st_mtime == 1000
    assert os.lstat(root / "usr").st_mtime == 1000


# ---- tmpfs for mmdebstrap's chroot --------------------------------------------------------

MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev 0 0
"""
GIB = 1 << 30


def test_fast_tmpdir_prefers_roomy_tmpfs() -> None:
    assert bs.fast_tmpdir({}, MOUNTS, lambda p: 8 * GIB, 8 * GIB) == "/dev/shm"


@pytest.mark.parametrize(
    ("environ", "mounts", "free", "mem"),
    [
        ({"TMPDIR": "/scratch"}, MOUNTS, 8 * GIB, 8 * GIB),  # the user chose
        ({}, MOUNTS, GIB // 2, 8 * GIB),  # too little space
        ({}, MOUNTS, 8 * GIB, GIB // 2),  # too little memory
        ({}, MOUNTS.replace("nodev", "nodev,noexec"), 8 * GIB, 8 * GIB),
        ({}, "/dev/vda /dev/shm ext4 rw 0 0\n", 8 * GIB, 8 * GIB),  # not a tmpfs
        ({}, "", 8 * GIB, 8 * GIB),
    ],
)
def test_fast_tmpdir_declines(environ: dict[str, str], mounts: str, free: int, mem: int) -> None:
    assert bs.fast_tmpdir(environ, mounts, lambda p: free, mem) is None


# ---- the demo stops with a message naming a missing piece ----------------------------------


def test_demo_names_a_missing_verb() -> None:
    from cargohold import demo

    with pytest.raises(demo.Stop, match=r"`cargohold frobnicate` is not available yet"):
        demo.require("frobnicate", "frobnicate_does_not_exist", "not written")
    demo.require("images", "images", "present")  # an existing verb passes
