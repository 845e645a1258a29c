"""Atomic file writes: a reader sees the old content or the new, never a torn file."""

from __future__ import annotations

import _thread
import json
import os
from pathlib import Path
from typing import Any


def write_bytes(path: Path, data: bytes, mode: int = 0o644, fsync: bool = True) -> None:
    """Write ``data`` to ``path`` via a temporary file in the same directory and rename
    (one per process and thread: two threads writing one file must not share it)."""
    tmp = path.with_name(f".{path.name}.tmp.{os.getpid()}.{_thread.get_ident():x}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        if fsync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


def write_json(path: Path, obj: Any, fsync: bool = True) -> None:
    write_bytes(path, json.dumps(obj, indent=1, sort_keys=True).encode(), fsync=fsync)


def read_json(path: Path) -> Any:
    with open(path, "rb") as f:
        return json.load(f)
