"""``-u/--user`` and ``--group-add`` resolved from the container's /etc/passwd and /etc/group.

The files are read with fd-relative opens that resolve every symlink *inside* the rootfs (an
absolute target or ``..`` never climbs above it), so an image whose /etc/passwd links to the
host's /etc/passwd reads its own rootfs's file instead. Only regular files are read.

Resolution follows Docker (moby/sys/user GetExecUser): ``""`` is root; ``name`` and ``uid`` are
looked up (a numeric uid need not exist); ``user:group`` sets the primary group (a numeric gid
need not exist); without an explicit group the user's supplementary groups come from the
member lists of /etc/group.  As dockerd's getUser, the process's additional gids always start
with its primary gid (``id`` shows ``groups=1234(app)``), then those groups and --group-add.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

from cargohold.errors import InvalidArgument

MAX_ID = 2**31 - 1
MAX_SYMLINKS = 40
MAX_FILE = 16 * 1024 * 1024


class ExecUser(msgspec.Struct, frozen=True):
    uid: int
    gid: int
    additional_gids: tuple[int, ...] = ()
    home: str = "/"
    name: str = ""


class PasswdEntry(msgspec.Struct, frozen=True):
    name: str
    uid: int
    gid: int
    home: str


class GroupEntry(msgspec.Struct, frozen=True):
    name: str
    gid: int
    members: tuple[str, ...]


# -- reading files inside a rootfs -----------------------------------------------------------


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p and p != "."]


def open_in_root(root_fd: int, path: str) -> int:
    """An O_PATH fd for ``path`` resolved inside the directory ``root_fd`` (never above it).

    Symlinks are followed by hand: absolute targets restart at the root, ``..`` stops there.
    """
    todo = _split(path)
    stack: list[int] = []  # fds of the directories above ``current``
    current = os.dup(root_fd)
    links = 0
    try:
        while todo:
            part = todo.pop(0)
            if part == "..":
                if stack:
                    os.close(current)
                    current = stack.pop()
                continue
            fd = os.open(part, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=current)
            if stat.S_ISLNK(os.fstat(fd).st_mode):
                os.close(fd)
                links += 1
                if links > MAX_SYMLINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(part, dir_fd=current)
                todo = _split(target) + todo
                if target.startswith("/"):
                    for f in stack:
                        os.close(f)
                    stack.clear()
                    os.close(current)
                    current = os.dup(root_fd)
                continue
            stack.append(current)
            current = fd
        result, current = current, -1
        return result
    finally:
        for f in stack:
            os.close(f)
        if current >= 0:
            os.close(current)


def read_root_file(rootfs: Path, path: str, limit: int = MAX_FILE) -> bytes | None:
    """The content of regular file ``path`` inside ``rootfs``, or None when it is absent."""
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            fd = open_in_root(root_fd, path)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return None
            raise
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            rfd = os.open(f"/proc/self/fd/{fd}", os.O_RDONLY | os.O_CLOEXEC)
        finally:
            os.close(fd)
        with os.fdopen(rfd, "rb") as f:
            return f.read(limit)
    finally:
        os.close(root_fd)


# -- parsing -------------------------------------------------------------------------------


def _lines(data: bytes | None) -> Iterable[list[str]]:
    for raw in (data or b"").decode(errors="replace").splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            yield line.split(":")


def parse_passwd(data: bytes | None) -> list[PasswdEntry]:
    out = []
    for f in _lines(data):
        f += [""] * (7 - len(f))
        try:
            out.append(PasswdEntry(f[0], int(f[2]), int(f[3]), f[5]))
        except ValueError:
            continue
    return out


def parse_group(data: bytes | None) -> list[GroupEntry]:
    out = []
    for f in _lines(data):
        f += [""] * (4 - len(f))
        try:
            members = tuple(m.strip() for m in f[3].split(",") if m.strip())
            out.append(GroupEntry(f[0], int(f[2]), members))
        except ValueError:
            continue
    return out


def _numeric_id(text: str) -> int | None:
    if not text.isdigit():
        return None
    value = int(text)
    if value > MAX_ID:
        raise InvalidArgument(f"uids and gids must be in range 0-{MAX_ID}")
    return value


def _find_group(groups: Sequence[GroupEntry], arg: str) -> GroupEntry | None:
    """``--group-add``'s match: a group's name or its number."""
    return next((g for g in groups if g.name == arg or str(g.gid) == arg), None)


def _find_user(passwd: Sequence[PasswdEntry], user_arg: str) -> PasswdEntry | None:
    """GetExecUser's match: no name means uid 0, a number a uid, anything else a name."""
    if not user_arg:
        return next((p for p in passwd if p.uid == 0), None)
    if user_arg.isdigit():
        return next((p for p in passwd if p.uid == int(user_arg)), None)
    return next((p for p in passwd if p.name == user_arg), None)


def _primary_group(groups: Sequence[GroupEntry], group_arg: str) -> int:
    """The gid of an explicit ``user:group`` (a number need not exist in /etc/group)."""
    if group_arg.isdigit():
        match = next((g for g in groups if g.gid == int(group_arg)), None)
    else:
        match = next((g for g in groups if g.name == group_arg), None)
    if match is not None:
        return match.gid
    number = _numeric_id(group_arg)
    if number is None:
        raise InvalidArgument(
            f"unable to find group {group_arg}: no matching entries in group file"
        )
    return number


def resolve_user(
    user_spec: str,
    passwd: Sequence[PasswdEntry],
    groups: Sequence[GroupEntry],
    group_add: Sequence[str] = (),
) -> ExecUser:
    """Docker's ``getUser``: GetExecUser, then additionalGids = the primary gid, the groups
    /etc/group lists the user in (only without an explicit group) and ``--group-add``."""
    user_arg, _, group_arg = user_spec.partition(":")
    entry = _find_user(passwd, user_arg)
    if entry is not None:
        uid, gid, home, name = entry.uid, entry.gid, entry.home or "/", entry.name
    else:
        number = _numeric_id(user_arg or "0")
        if number is None:
            raise InvalidArgument(
                f"unable to find user {user_arg}: no matching entries in passwd file"
            )
        uid, gid, home, name = number, 0, "/", ""
    sgids: list[int] = []
    if group_arg:
        gid = _primary_group(groups, group_arg)
    elif name:
        sgids = [g.gid for g in groups if name in g.members]
    for extra in group_add:
        match = _find_group(groups, extra)
        if match is not None:
            sgids.append(match.gid)
            continue
        number = _numeric_id(extra)
        if number is None:
            raise InvalidArgument(
                f"Unable to find group {extra}: no matching entries in group file"
            )
        sgids.append(number)
    unique = tuple(dict.fromkeys([gid, *sgids]))
    return ExecUser(uid=uid, gid=gid, additional_gids=unique, home=home, name=name)


def resolve_user_in_rootfs(rootfs: Path, user_spec: str, group_add: Sequence[str] = ()) -> ExecUser:
    """Resolve ``user_spec`` against the rootfs's own /etc/passwd and /etc/group."""
    passwd = parse_passwd(read_root_file(rootfs, "/etc/passwd"))
    groups = parse_group(read_root_file(rootfs, "/etc/group"))
    return resolve_user(user_spec, passwd, groups, group_add)


def with_user(
    spec: dict[str, Any], rootfs: Path, user_spec: str = "", group_add: Sequence[str] = ()
) -> dict[str, Any]:
    """Set ``process.user`` (uid, gid, additionalGids) and HOME (unless the env sets it)."""
    user = resolve_user_in_rootfs(rootfs, user_spec, group_add)
    entry: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
    if user.additional_gids:
        entry["additionalGids"] = list(user.additional_gids)
    process = spec["process"]
    process["user"] = entry
    env = process.setdefault("env", [])
    if not any(e.split("=", 1)[0] == "HOME" for e in env):
        env.append(f"HOME={user.home}")
    return spec
