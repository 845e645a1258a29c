"""Layer archives on real overlayfs (root): whiteouts both ways, devices, capabilities.

Two layers are applied in "overlay" mode and mounted; changes made in the merged view are
written with write_layer_from_upper; that layer applied onto a vfs-style copy, or mounted on
top of the two lower layers, must reproduce exactly what the merged view showed.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.errors import NotImplementedFeature
from cargohold.store.archive import (
    apply_layer,
    write_layer_from_diff,
    write_layer_from_dir,
    write_layer_from_upper,
)

# struct vfs_cap_data, revision 2, effective, permitted = CAP_NET_BIND_SERVICE
CAPABILITY = struct.pack("<5I", 0x02000001, 1 << 10, 0, 0, 0)
MOUNT_OPTS = "redirect_dir=off,metacopy=off,index=off"


def mounted_under(base: Path) -> list[str]:
    points = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4]
            if point.startswith(str(base)):
                points.append(point)
    return points


@pytest.fixture
def work() -> Iterator[Path]:
    """A scratch dir that is unmounted and removed even when the test fails."""
    base = Path(tempfile.mkdtemp(prefix="cargohold-archive-"))
    try:
        yield base
    finally:
        for point in sorted(mounted_under(base), reverse=True):
            subprocess.run(["umount", "-l", point], check=False)
        shutil.rmtree(base, ignore_errors=True)


def overlay_supported(work: Path) -> bool:
    for name in ("l", "u", "w", "m"):
        (work / "probe" / name).mkdir(parents=True)
    p = work / "probe"
    opts = f"lowerdir={p}/l,upperdir={p}/u,workdir={p}/w"
    ok = (
        subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", opts, str(p / "m")], capture_output=True
        ).returncode
        == 0
    )
    if ok:
        subprocess.run(["umount", str(p / "m")], check=True)
    shutil.rmtree(p)
    return ok


def mount(lowers: list[Path], target: Path, upper: Path | None = None) -> None:
    opts = "lowerdir=" + ":".join(str(p) for p in lowers)
    if upper is not None:
        work = upper.parent / (upper.name + ".work")
        work.mkdir()
        opts += f",upperdir={upper},workdir={work},{MOUNT_OPTS}"
    target.mkdir()
    subprocess.run(["mount", "-t", "overlay", "overlay", "-o", opts, str(target)], check=True)


def umount(target: Path) -> None:
    subprocess.run(["umount", str(target)], check=True)


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            st = os.lstat(path)
            rel = str(path.relative_to(root))
            content: object = None
            if stat.S_ISREG(st.st_mode):
                content = hashlib.sha256(path.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                content = st.st_rdev
            link = None
            if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
                link = inodes.setdefault((st.st_dev, st.st_ino), rel)
            xattrs = {}
            if not stat.S_ISLNK(st.st_mode):
                xattrs = {
                    k: os.getxattr(path, k)
                    for k in sorted(os.listxattr(path))
                    if not k.startswith("trusted.overlay.")
                }
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, int(st.st_mtime), content, link, xattrs)
    return out


def layer_from(src: Path) -> bytes:
    buf = io.BytesIO()
    write_layer_from_dir(src, buf)
    return buf.getvalue()


def base_tree(root: Path) -> None:
    (root / "etc/conf.d").mkdir(parents=True)
    (root / "etc/conf.d/a").write_text("a")
    (root / "etc/conf.d/b").write_text("b")
    (root / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    (root / "bin").mkdir()
    (root / "bin/ping").write_bytes(b"\x7fELF fake")
    os.setxattr(root / "bin/ping", "security.capability", CAPABILITY)
    os.chmod(root / "bin/ping", 0o4755)
    (root / "dev").mkdir()
    os.mknod(root / "dev/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(root / "dev/loop9", 0o660 | stat.S_IFBLK, os.makedev(7, 9))
    (root / "var/lib/app").mkdir(parents=True)
    (root / "var/lib/app/data").write_text("old data")
    (root / "var/lib/app/more").write_text("more")
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    os.chown(root / "etc/passwd", 0, 42)
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (1_500_000_000, 1_500_000_000), follow_symlinks=False)


def second_tree(root: Path) -> None:
    """Layer 2 as a tar: deletes etc/conf.d/b, makes var/lib/app opaque with new content."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind in [
            ("etc", "d"),
            ("etc/conf.d", "d"),
            ("etc/conf.d/.wh.b", "f"),
            ("var", "d"),
            ("var/lib", "d"),
            ("var/lib/app", "d"),
            ("var/lib/app/.wh..wh..opq", "f"),
            ("var/lib/app/fresh", "f"),
        ]:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            info.type = tarfile.DIRTYPE if kind == "d" else tarfile.REGTYPE
            info.mode = 0o755 if kind == "d" else 0o644
            tar.addfile(info, io.BytesIO(b""))
    (root / "layer2.tar").write_bytes(buf.getvalue())


def test_overlay_round_trip(work: Path) -> None:
    if not overlay_supported(work):
        pytest.skip("overlayfs mount not available")
    src = work / "src"
    src.mkdir()
    base_tree(src)
    second_tree(work)
    l1, l2 = work / "l1", work / "l2"
    l1.mkdir()
    l2.mkdir()
    apply_layer(io.BytesIO(layer_from(src)), l1, whiteouts="overlay")
    apply_layer(io.BytesIO((work / "layer2.tar").read_bytes()), l2, whiteouts="overlay")
    # overlay-mode whiteouts are what the kernel expects
    wh = os.lstat(l2 / "etc/conf.d/b")
    assert stat.S_ISCHR(wh.st_mode) and wh.st_rdev == 0
    assert os.getxattr(l2 / "var/lib/app", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(l1 / "bin/ping", "security.capability") == CAPABILITY

    upper, merged = work / "upper", work / "merged"
    upper.mkdir()
    mount([l2, l1], merged, upper)
    try:
        assert sorted(os.listdir(merged / "etc/conf.d")) == ["a"]
        assert os.listdir(merged / "var/lib/app") == ["fresh"]
        change_everything(merged)
        expected = snapshot(merged)
    finally:
        umount(merged)
    assert "etc/passwd" not in expected and "var/lib/app/fresh" not in expected
    assert expected["bin/ping"][6] == {"security.capability": CAPABILITY}
    assert expected["usr/local/bin/tool-alias"][5] == "usr/local/bin/tool"
    assert expected["dev/zero"][4] == os.makedev(1, 5)

    out = io.BytesIO()
    write_layer_from_upper(upper, out)
    layer3 = out.getvalue()
    again = io.BytesIO()
    write_layer_from_upper(upper, again)
    assert again.getvalue() == layer3
    with tarfile.open(fileobj=io.BytesIO(layer3)) as tar:
        names = tar.getnames()
    assert "etc/.wh.passwd" in names
    assert "etc/conf.d/a" in names and "etc/conf.d/.wh.a" not in names  # deleted, then re-made
    assert "bin/.wh..wh..opq" not in names
    assert "var/lib/app/.wh..wh..opq" in names  # rm -rf + mkdir of a lower dir
    assert not any(n.startswith("usr/") and ".wh." in n for n in names)

    # vfs: apply all three layers by deleting
    vfs = work / "vfs"
    vfs.mkdir()
    apply_layer(io.BytesIO(layer_from(src)), vfs, whiteouts="delete")
    apply_layer(io.BytesIO((work / "layer2.tar").read_bytes()), vfs, whiteouts="delete")
    apply_layer(io.BytesIO(layer3), vfs, whiteouts="delete")
    assert snapshot(vfs) == expected

    # overlay: layer 3 as a new read-only lower
    l3, view = work / "l3", work / "view"
    l3.mkdir()
    apply_layer(io.BytesIO(layer3), l3, whiteouts="overlay")
    mount([l3, l2, l1], view)
    try:
        assert snapshot(view) == expected
    finally:
        umount(view)


def change_everything(merged: Path) -> None:
    (merged / "etc/passwd").unlink()
    (merged / "etc/conf.d/a").unlink()
    shutil.rmtree(merged / "var/lib/app")
    (merged / "var/lib/app").mkdir()
    (merged / "var/lib/app/new").write_text("replaced dir")
    (merged / "bin/ping").write_bytes(b"\x7fELF patched")  # writing drops setuid and caps
    os.setxattr(merged / "bin/ping", "security.capability", CAPABILITY)
    os.chmod(merged / "tmp", 0o1770)
    (merged / "usr/local/bin").mkdir(parents=True)
    (merged / "usr/local/bin/tool").write_text("tool")
    os.chown(merged / "usr/local/bin/tool", 1000, 1000)
    os.link(merged / "usr/local/bin/tool", merged / "usr/local/bin/tool-alias")
    os.symlink("tool", merged / "usr/local/bin/link")
    os.mkfifo(merged / "usr/fifo")
    os.mknod(merged / "dev/zero", 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    (merged / "etc/conf.d/a").write_text("back again")  # whiteout replaced by a file


def test_opaque_xattr_in_a_tar_is_not_applied(work: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("d")
        info.type = tarfile.DIRTYPE
        info.pax_headers = {
            "SCHILY.xattr.trusted.overlay.opaque": "y",
            "SCHILY.xattr.trusted.overlay.redirect": "/etc",
        }
        tar.addfile(info)
    apply_layer(io.BytesIO(buf.getvalue()), work, whiteouts="overlay")
    assert os.listxattr(work / "d") == []


def test_redirect_dir_upper_is_refused(work: Path) -> None:
    (work / "moved").mkdir()
    os.setxattr(work / "moved", "trusted.overlay.redirect", b"/orig")
    with pytest.raises(NotImplementedFeature, match="redirect"):
        write_layer_from_upper(work, io.BytesIO())


def test_upper_translation_of_devices_and_opaque(work: Path) -> None:
    (work / "gone").mkdir()  # unused
    os.rmdir(work / "gone")
    os.mknod(work / "deleted", stat.S_IFCHR | 0o600, 0)
    (work / "op").mkdir()
    os.setxattr(work / "op", "trusted.overlay.opaque", b"y")
    (work / "op/kept").write_text("k")
    os.mknod(work / "real-dev", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    out = io.BytesIO()
    write_layer_from_upper(work, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tar:
        infos = {m.name: m for m in tar.getmembers()}
    assert list(infos) == [".wh.deleted", "op", "op/.wh..wh..opq", "op/kept", "real-dev"]
    assert infos[".wh.deleted"].isreg() and infos[".wh.deleted"].size == 0
    assert not any(k.startswith("SCHILY.xattr.trusted.overlay") for k in infos["op"].pax_headers)
    assert infos["real-dev"].ischr() and (
        infos["real-dev"].devmajor,
        infos["real-dev"].devminor,
    ) == (1, 3)
    # the same upper written as a plain dir keeps the device as a device
    plain = io.BytesIO()
    write_layer_from_dir(work, plain)
    with tarfile.open(fileobj=io.BytesIO(plain.getvalue())) as tar:
        assert tar.getmember("deleted").ischr()


def test_diff_keeps_devices_and_capabilities(work: Path) -> None:
    lower, upper = work / "lower", work / "upper"
    lower.mkdir()
    base_tree(lower)
    subprocess.run(["cp", "-a", str(lower), str(upper)], check=True)
    os.setxattr(
        upper / "bin/ping", "security.capability", struct.pack("<5I", 0x02000001, 1 << 13, 0, 0, 0)
    )
    os.unlink(upper / "dev/loop9")
    os.mknod(upper / "dev/loop9", 0o660 | stat.S_IFBLK, os.makedev(7, 10))
    out = io.BytesIO()
    write_layer_from_diff(lower, upper, out)
    target = work / "target"
    subprocess.run(["cp", "-a", str(lower), str(target)], check=True)
    apply_layer(io.BytesIO(out.getvalue()), target, whiteouts="delete")
    assert snapshot(target) == snapshot(upper)
