"""Modes of the store root, the run root and the top-level state directories (issue #10 item 6).

The store root is 0710, the run root 0700 and the directories holding container files 0700,
for a new store made by any command and for an old store (0755 everywhere) at the next
command; when everything is right, a command only ``stat``s the two roots.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cargohold.cli.main import main
from cargohold.util import statedirs
from cargohold.util.statedirs import PRIVATE_DIRS, secure_state_dirs


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def cli(root: Path, runroot: Path, *args: str) -> int:
    return main(["--root", str(root), "--runroot", str(runroot), "--storage-driver", "vfs",
                 *args])  # fmt: skip


def test_a_new_store_made_by_a_command_is_private(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, runroot = tmp_path / "a" / "root", tmp_path / "run"
    assert cli(root, runroot, "volume", "create", "data") == 0
    assert cli(root, runroot, "volume", "ls") == 0
    capsys.readouterr()
    assert mode(root) == 0o710
    assert mode(runroot) == 0o700
    for name in PRIVATE_DIRS:
        assert mode(root / name) == 0o700, name
    assert (root / "volumes" / "data" / "_data").is_dir()


def test_an_old_store_with_0755_modes_is_repaired_by_the_next_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root, runroot = tmp_path / "root", tmp_path / "run"
    for path in (root, runroot, *(root / n for n in ("layers", "volumes", "containers-rw"))):
        path.mkdir(parents=True)
        os.chmod(path, 0o755)
    (root / "volumes" / "v").mkdir()
    os.chmod(root / "volumes" / "v", 0o755)
    assert cli(root, runroot, "volume", "ls") == 0
    capsys.readouterr()
    assert mode(root) == 0o710
    assert mode(runroot) == 0o700
    for name in PRIVATE_DIRS:
        assert mode(root / name) == 0o700, name
    assert mode(root / "volumes" / "v") == 0o755  # below the private dirs nothing is walked


def test_right_modes_cost_one_stat_per_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, runroot = tmp_path / "root", tmp_path / "run"
    secure_state_dirs(root, runroot)
    calls: list[str] = []

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"unexpected call {args}")

    real_stat = os.stat

    def counting_stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        calls.append(str(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    for name in ("open", "mkdir", "chmod", "fchmod", "fchown"):
        monkeypatch.setattr(statedirs.os, name, refuse)
    monkeypatch.setattr(statedirs.os, "stat", counting_stat)
    secure_state_dirs(root, runroot)
    assert calls == [str(root), str(runroot)]


def test_a_stricter_root_is_left_as_it_is(tmp_path: Path) -> None:
    root, runroot = tmp_path / "root", tmp_path / "run"
    secure_state_dirs(root, runroot)
    os.chmod(root, 0o700)
    secure_state_dirs(root, runroot)
    assert mode(root) == 0o700
    os.chmod(root, 0o2710)  # setgid: new entries would take the directory's group
    secure_state_dirs(root, runroot)
    assert mode(root) == 0o710


def test_a_symlink_in_place_of_a_state_dir_is_not_followed(tmp_path: Path) -> None:
    root, runroot = tmp_path / "root", tmp_path / "run"
    outside = tmp_path / "outside"
    outside.mkdir()
    os.chmod(outside, 0o755)
    root.mkdir()
    os.chmod(root, 0o755)
    (root / "volumes").symlink_to(outside)
    secure_state_dirs(root, runroot)
    assert mode(root) == 0o710
    assert mode(outside) == 0o755


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a directory's owner needs root")
def test_as_root_a_root_owned_by_another_user_is_taken_back(tmp_path: Path) -> None:
    root, runroot = tmp_path / "root", tmp_path / "run"
    secure_state_dirs(root, runroot)
    os.chown(root, 65534, 65534)
    os.chown(runroot, 65534, 0)
    secure_state_dirs(root, runroot)
    for path, want in ((root, 0o710), (runroot, 0o700)):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, want)
