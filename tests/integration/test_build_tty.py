"""``build --progress tty`` (and ``auto``) with stderr on a real pty: BuildKit's block, redrawn
in place, on the overlay store with runc and a busybox base image (root)."""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_build import Env, busybox_rootfs_tar

COLUMNS = 100
UP = re.compile(r"\x1b\[(\d+)A\r")
DOCKERFILE = """\
FROM busybox:test
RUN for i in 1 2 3 4 5 6; do echo line-$i; busybox sleep 0.2; done
COPY hello.txt /hello.txt
"""


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    tar = busybox_rootfs_tar(tmp_path / "busybox.tar")
    r = e.ch("import", "-c", 'CMD ["/bin/sh"]', str(tar), "busybox:test")
    assert r.returncode == 0, r.stderr
    try:
        yield e
    finally:
        for mnt in sorted(_mounts_under(tmp_path), reverse=True):
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(tmp_path, ignore_errors=True)


def build_on_pty(env: Env, *args: str) -> tuple[int, str]:
    """Run ``build`` with stderr on a pty of COLUMNS x 50; (exit code, what the pty got with
    its CRLFs back to LFs)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, COLUMNS, 0, 0))
    exe = Path(sys.executable).parent / "cargohold"
    cmd = [str(exe), "--root", str(env.root), "--runroot", str(env.run), "build", *args]
    proc = subprocess.Popen(
        [*cmd, str(env.ctx)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave
    )
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if not ready:
                if proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every holder of the slave is gone
                data = b""
            if not data:
                break
            chunks.append(data)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")


def frames(text: str) -> list[tuple[int, list[str]]]:
    """Each frame as (lines the cursor went up first, its lines)."""
    out = []
    for chunk in text.split("\x1b[J")[:-1]:
        m = UP.search(chunk)
        body = chunk[m.end() :] if m else chunk
        out.append((int(m.group(1)) if m else 0, body.split("\x1b[K\n")[:-1]))
    return out


def test_build_progress_tty_redraws_the_block(env: Env) -> None:
    env.dockerfile(DOCKERFILE)
    (env.ctx / "hello.txt").write_text("hello\n")
    code, text = build_on_pty(env, "--progress", "tty", "-t", "tty:1")
    assert code == 0, text
    assert env.run_in("tty:1", "cat", "/hello.txt") == "hello\n"
    assert "[+] Building " in text
    assert " => [internal] load build definition from Dockerfile" in text
    assert "[1/3] FROM busybox:test" in text
    assert " => [2/3] RUN for i in 1 2 3 4 5 6; do echo line-$i; busybox sleep 0.2; done" in text
    assert " => [3/3] COPY hello.txt /hello.txt" in text
    assert " => => # line-3" in text  # the running step's output, under it
    assert re.findall(r"\x1b\[\d+A", text)
    shots = frames(text)
    assert len(shots) > 5
    for (_, before), (up, _) in itertools.pairwise(shots):
        assert up == len(before)
    for _, lines in shots:
        assert all(len(line) < COLUMNS for line in lines)
    final = shots[-1][1]
    assert re.fullmatch(r"\[\+\] Building \d+\.\ds \(5/5\) FINISHED", final[0])
    assert not any(line.startswith(" => => #") for line in final)
    steps = [line for line in final[1:] if not line.startswith(" => => ")]
    assert len(steps) == 5 and all(len(line) == COLUMNS - 1 for line in steps)
    assert text.endswith("\x1b[K\n\x1b[J")  # the cursor rests after the block

    # auto on a terminal is tty; this time every step comes from the cache
    code, text = build_on_pty(env, "--progress", "auto", "-t", "tty:2")
    assert code == 0, text
    final = frames(text)[-1][1]
    assert re.fullmatch(r"\[\+\] Building \d+\.\ds \(5/5\) FINISHED", final[0])
    assert any(line.startswith(" => CACHED [2/3] RUN for i in") for line in final)


def test_build_progress_tty_error_block_then_the_message(env: Env) -> None:
    env.dockerfile("FROM busybox:test\nRUN echo one; echo two; false\n")
    code, text = build_on_pty(env, "--progress", "tty")
    assert code == 1
    final = frames(text)[-1][1]
    assert re.fullmatch(r"\[\+\] Building \d+\.\ds \(3/4\)", final[0])
    assert final[-1].startswith(" => ERROR [2/2] RUN echo one; echo two; false ")
    after = text.rsplit("\x1b[J", 1)[1]
    assert re.fullmatch(
        r"------\n > \[2/2\] RUN echo one; echo two; false:\n\d\.\d{3} one\n\d\.\d{3} two\n"
        r"------\nERROR: Dockerfile:2: The command '/bin/sh -c echo one; echo two; false' "
        r"returned a non-zero code: 1\n",
        after,
    ), after
