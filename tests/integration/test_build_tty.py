"""``build --progress tty`` (and ``auto``) with stderr on a real pty: BuildKit's block, redrawn
in place, on the overlay store with runc and a busybox base image (root)."""

from __future__ import annotations

import fcntl
import itertools
import os
import re
import select
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
import test_build
from test_build import Env
from test_registry import REGISTRY, start_registry, stop_registry

COLUMNS = 100
UP = re.compile(r"\x1b\[(\d+)A\r")
DOCKERFILE = """\
FROM busybox:test
RUN for i in 1 2 3 4 5 6; do echo line-$i; busybox sleep 0.2; done
COPY hello.txt /hello.txt
"""


env = test_build.env  # own --root/--runroot with busybox:test, closed afterwards


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


def only_frames(text: str) -> tuple[list[list[str]], str]:
    """The frames, checked to be all that came before the last one's end (each climbs over
    the last, a header then step rows: no line of its own got between two redraws), and
    what follows the last."""
    *chunks, rest = text.split("\x1b[J")
    shots: list[list[str]] = []
    for chunk in chunks:
        m = UP.match(chunk)
        assert (int(m.group(1)) if m else 0) == (len(shots[-1]) if shots else 0), chunk
        body = chunk[m.end() :] if m else chunk
        assert body.endswith("\x1b[K\n"), repr(chunk)
        lines = body.split("\x1b[K\n")[:-1]
        assert lines[0].startswith("[+] Building ") and "\n" not in "".join(lines), lines
        assert all(line.startswith(" => ") for line in lines[1:]), lines
        shots.append(lines)
    return shots, rest


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


def test_build_progress_tty_unreported_error_ends_the_block_before_the_message(env: Env) -> None:
    # a Dockerfile error is raised while the first step runs, no step reports it: the build's
    # end still draws the final frame, and the CLI's ERROR line comes after it
    env.dockerfile("FROM busybox:test\nNOPE x\n")
    code, text = build_on_pty(env, "--progress", "tty")
    assert code == 1, text
    shots, rest = only_frames(text)
    assert shots[-1][1].startswith(" => ERROR [internal] load build definition from Dockerfile")
    assert rest.startswith("ERROR: ") and rest.count("\n") == 1 and "NOPE" in rest.upper(), rest


@pytest.mark.skipif(REGISTRY is None, reason="docker-registry is not installed")
def test_build_progress_tty_pull_of_the_base_image_is_in_the_block(
    env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reg = start_registry(tmp_path)
    fresh: Env | None = None
    try:
        name = f"{reg.host}/lib/busybox:1"
        assert env.ch("tag", "busybox:test", name).returncode == 0
        r = env.ch("push", "--tls-verify=false", name)
        assert r.returncode == 0, r.stderr
        config = tmp_path / "registries.toml"
        config.write_text(f'insecure-registries = ["{reg.host}"]\n')
        monkeypatch.setenv("CARGOHOLD_CONFIG", str(config))
        fresh = Env(tmp_path / "fresh")  # an empty store: FROM pulls every layer
        fresh.dockerfile(f"FROM {name}\nRUN echo hi\n")
        code, text = build_on_pty(fresh, "--progress", "tty")
        assert code == 0, text
        shots, rest = only_frames(text)
        assert rest == ""
        assert "Pulling from" not in text and "Unable to find" not in text
        notes = {line for lines in shots for line in lines if line.startswith(" => => ")}
        assert " => => pulling lib/busybox:1" in notes
        layers = {m for line in notes for m in re.findall(r"sha256:[0-9a-f]{12}\b", line)}
        assert layers
        final = shots[-1]
        assert final[0].endswith("FINISHED")
        at = next(i for i, line in enumerate(final) if f"FROM {name}" in line)
        assert "CACHED" not in final[at], final[at]  # pulled: done, as BuildKit shows it
        pulled = final[at + 1 : at + 3 + len(layers)]
        assert pulled[0] == " => => pulling lib/busybox:1"
        # one line per layer, its byte counts replaced by its end
        assert sorted(pulled[1 : 1 + len(layers)]) == sorted(
            f" => => extracting {layer} done" for layer in layers
        )
        assert pulled[-1].startswith(" => => Digest: sha256:")
        assert final[at + 3 + len(layers)] == f" => => Status: Downloaded newer image for {name}"

        # a pull that fails (no step reports it) ends the block before the CLI's message
        fresh.dockerfile(f"FROM {reg.host}/lib/nope:1\n")
        code, text = build_on_pty(fresh, "--progress", "tty")
        assert code == 1, text
        shots, rest = only_frames(text)
        assert shots[-1][-2].startswith(f" => ERROR [1/1] FROM {reg.host}/lib/nope:1 ")
        assert shots[-1][-1] == " => => pulling lib/nope:1"
        assert rest.startswith("ERROR: Dockerfile:1: ") and rest.count("\n") == 1, rest
    finally:
        if fresh is not None:
            fresh.close()
        stop_registry(reg)
