from __future__ import annotations

from pathlib import Path

import pytest

from cargohold.errors import InvalidArgument
from cargohold.volume import mounts as m


def err(fn: object, arg: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        fn(arg)  # type: ignore[operator]
    return info.value.message


# -- -v ------------------------------------------------------------------------------------------


def test_bind_from_seed() -> None:
    spec = m.parse_volume("/var/www:/data1")
    assert (spec.type, spec.source, spec.target) == ("bind", "/var/www", "/data1")
    assert not spec.readonly and spec.propagation == "rprivate" and spec.create_source


def test_named_and_anonymous() -> None:
    named = m.parse_volume("myvol:/data:ro")
    assert (named.type, named.source, named.readonly, named.mode) == ("volume", "myvol", True, "ro")
    anon = m.parse_volume("/data1")
    assert anon.type == "volume" and anon.source == "" and anon.anonymous


def test_modes() -> None:
    spec = m.parse_volume("/a:/b:ro,Z,rshared")
    assert spec.readonly and spec.options == ("Z",) and spec.propagation == "rshared"
    assert m.parse_volume("v:/b:nocopy").nocopy
    assert m.parse_volume("/a//b/../c:/x/./y/").target == "/x/y"


@pytest.mark.parametrize(
    "raw",
    ["", ":/x", "/foo:rw", "/data:ro", "a:/b:ro:extra", "/a:/b:c:d:e"],
)
def test_invalid_specs(raw: str) -> None:
    assert err(m.parse_volume, raw) == f"invalid volume specification: '{raw}'"


@pytest.mark.parametrize("mode", ["xyz", "ro,rw", "z,Z", "shared,slave", "nocopy,nocopy"])
def test_invalid_modes(mode: str) -> None:
    assert err(m.parse_volume, f"/a:/b:{mode}") == f"invalid mode: {mode}"


def test_relative_target() -> None:
    assert err(m.parse_volume, "myvol:data") == (
        "invalid volume specification: 'myvol:data': invalid mount config for type \"volume\": "
        "invalid mount path: 'data' mount path must be absolute"
    )


def test_root_target_refused() -> None:
    assert "destination can't be '/'" in err(m.parse_volume, "/a:/")


@pytest.mark.parametrize("target", ["/proc", "/proc/sys", "/sys", "/sys/fs/cgroup", "/x/../proc"])
def test_proc_and_sys_refused(target: str) -> None:
    message = err(m.parse_volume, f"/host:{target}")
    assert "cannot be mounted over" in message


def test_lookalike_of_proc_is_fine() -> None:
    assert m.parse_volume("/host:/procfs").target == "/procfs"


def test_bind_with_nocopy_and_volume_with_propagation() -> None:
    assert "field VolumeOptions must not be specified" in err(m.parse_volume, "/a:/b:nocopy")
    assert "field BindOptions must not be specified" in err(m.parse_volume, "v:/b:shared")


# -- --mount -------------------------------------------------------------------------------------


def test_mount_bind() -> None:
    spec = m.parse_mount("type=bind,source=/srv,target=/data,readonly,bind-propagation=rslave")
    assert (spec.type, spec.source, spec.target, spec.readonly) == ("bind", "/srv", "/data", True)
    assert spec.propagation == "rslave" and not spec.create_source and spec.mode == ""


def test_mount_defaults_to_volume_and_aliases() -> None:
    spec = m.parse_mount("src=vol,dst=/data,ro=false,volume-nocopy,volume-opt=type=tmpfs")
    assert (spec.type, spec.source, spec.readonly, spec.nocopy) == ("volume", "vol", False, True)
    assert spec.options == ("type=tmpfs",)
    assert m.parse_mount("type=volume,destination=/x").anonymous


def test_mount_tmpfs() -> None:
    spec = m.parse_mount("type=tmpfs,dst=/run,tmpfs-size=64m,tmpfs-mode=1770")
    assert spec.tmpfs_size == 64 << 20 and spec.tmpfs_mode == 0o1770


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("type=bind,src=/a", "target is required"),
        ("type=bind,dst=/a,bogus", "invalid field 'bogus' must be a key=value pair"),
        ("type=bind,dst=/a,foo=bar", "unexpected key 'foo' in 'foo=bar'"),
        ("type=bind,dst=/a,readonly=maybe", "invalid value for readonly: maybe"),
        ("type=bind,src=/a,dst=/b,volume-nocopy", "'volume-*' options with mount type 'bind'"),
        ("type=volume,dst=/b,tmpfs-size=1m", "'tmpfs-*' options with mount type 'volume'"),
        ("type=tmpfs,dst=/b,tmpfs-size=lots", "invalid value for tmpfs-size: lots"),
        ("type=bind,dst=/b", 'type "bind": field Source must not be empty'),
        (
            "type=bind,src=/a,dst=x",
            "type \"bind\": invalid mount path: 'x' mount path must be absolute",
        ),
        ("type=bind,src=rel,dst=/x", "invalid mount path: 'rel' mount path must be absolute"),
        ("type=bind,src=/a,dst=/x,bind-propagation=weird", "invalid propagation mode: weird"),
        ("type=volume,dst=/x,readonly", "must not set ReadOnly mode when using anonymous volumes"),
        ("type=tmpfs,src=/a,dst=/x", "field Source must not be specified"),
        ("type=nfs,dst=/x", 'invalid mount config for type "nfs": mount type unknown'),
        ("type=bind,src=/a,dst=/sys/x", "cannot be mounted over"),
    ],
)  # fmt: skip
def test_mount_errors(raw: str, message: str) -> None:
    assert message in err(m.parse_mount, raw)


# -- --tmpfs, --volumes-from ---------------------------------------------------------------------


def test_tmpfs() -> None:
    spec = m.parse_tmpfs("/run:rw,noexec,nosuid,size=65536k,mode=755")
    assert spec.type == "tmpfs" and spec.target == "/run" and spec.tmpfs_size == 65536 << 10
    assert spec.tmpfs_mode == 0o755 and "noexec" in spec.options
    assert m.parse_tmpfs("/tmp").options == ()
    assert "invalid tmpfs option" in err(m.parse_tmpfs, "/run:bogus")
    assert "mount path must be absolute" in err(m.parse_tmpfs, "run")


def test_volumes_from() -> None:
    assert m.parse_volumes_from("test1") == m.VolumesFrom("test1", "")
    assert m.parse_volumes_from("test1:ro").readonly is True
    assert m.parse_volumes_from("test1").readonly is None
    assert err(m.parse_volumes_from, "test1:xyz") == "invalid mode: xyz"
    assert err(m.parse_volumes_from, "test1:shared") == "invalid mode: shared"
    assert err(m.parse_volumes_from, "test1:nocopy") == "invalid mode: nocopy"
    assert "cannot be an empty string" in err(m.parse_volumes_from, "")


def test_inherit_forces_mode() -> None:
    spec = m.parse_volume("vol:/d")
    assert m.inherit(spec, m.VolumesFrom("c", "ro")).readonly
    assert not m.inherit(spec, m.VolumesFrom("c", "")).readonly


# -- combining, inspect, bind sources ------------------------------------------------------------


def test_duplicates_refused() -> None:
    with pytest.raises(InvalidArgument, match="Duplicate mount point: /data"):
        m.combine([m.parse_volume("/a:/data"), m.parse_mount("type=volume,dst=/data/")])


def test_combine_precedence_and_order() -> None:
    inherited = [m.parse_volume("/data1"), m.parse_volume("/data2")]
    user = [m.parse_volume("/host:/data2"), m.parse_volume("/h2:/data2/sub")]
    result = m.combine(user, inherited, image_volumes=["/data1", "/var/lib/db"])
    targets = [s.target for s in result]
    assert targets == ["/data1", "/data2", "/data2/sub", "/var/lib/db"]
    by = {s.target: s for s in result}
    assert by["/data2"].type == "bind" and by["/data1"].anonymous and by["/var/lib/db"].anonymous


def test_relative_image_volumes_as_docker() -> None:
    """An image's VOLUME entry is taken as Docker takes it: cleaned, relative ones kept
    relative and mounted below the root; a user mount there wins; / and /proc still refused."""
    result = m.combine([m.parse_volume("/h:/[/x]")], [], image_volumes=["[/logs]", "a/../b/",
                                                                       "[/x]", "/data"])
    assert [(s.target, s.type) for s in result] == [
        ("b", "volume"), ("/data", "volume"), ("[/logs]", "volume"), ("/[/x]", "bind")]
    assert m.in_root("[/logs]") == "/[/logs]" and m.in_root("../x") == "/x"
    for bad, message in ((".", "destination can't be '/'"), ("proc/x", "inside /proc")):
        with pytest.raises(InvalidArgument, match=message):
            m.image_volume(bad)


def test_inspect_entries() -> None:
    bind = m.inspect_entry(m.parse_volume("/var/www:/data1"))
    assert bind == {
        "Type": "bind",
        "Source": "/var/www",
        "Destination": "/data1",
        "Mode": "",
        "RW": True,
        "Propagation": "rprivate",
    }
    vol = m.inspect_entry(m.parse_volume("/data1"), name="ab" * 32, mountpoint="/v/_data")
    assert list(vol) == [
        "Type",
        "Name",
        "Source",
        "Destination",
        "Driver",
        "Mode",
        "RW",
        "Propagation",
    ]
    assert vol["Name"] == "ab" * 32 and vol["Driver"] == "local" and vol["Propagation"] == ""
    assert m.from_inspect_entry(vol).source == "ab" * 32


def test_check_bind_source(tmp_path: Path) -> None:
    missing = tmp_path / "www"
    m.check_bind_source(m.parse_volume(f"{missing}:/data1"))
    assert missing.is_dir()
    with pytest.raises(InvalidArgument, match="bind source path does not exist: /nonexistent"):
        m.check_bind_source(m.parse_mount("type=bind,src=/nonexistent,dst=/x"))
