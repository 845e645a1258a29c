"""The CLI's terminal around the engine's attach and exec sessions, under a real pty with runc:
the container's TTY has the terminal's size from the start (HostConfig.ConsoleSize / the
exec's ConsoleSize) and follows it on SIGWINCH, and ``run`` forwards the signals it receives
to a container without a TTY (``--sig-proxy``) through the engine's ``kill``."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_env import Env, container_env, needs_runtime

pytestmark = needs_runtime


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with container_env(tmp_path_factory.mktemp("term")) as e:
        yield e


class Pty:
    """The CLI run on a pty of a given size; output read as it comes."""

    def __init__(self, argv: list[str], rows: int, cols: int) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # pragma: no cover - the child
            os.execv(argv[0], argv)
        self.resize(rows, cols)
        self.output = b""

    def resize(self, rows: int, cols: int) -> None:
        """As a terminal emulator does: the kernel sends SIGWINCH to the CLI."""
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def read_until(self, token: bytes, limit: float = 20) -> None:
        deadline = time.monotonic() + limit
        while token not in self.output:
            assert time.monotonic() < deadline, self.output
            ready, _, _ = select.select([self.fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    assert token in self.output, self.output
                    return
                self.output += chunk

    def exit_code(self) -> int:
        _, status = os.waitpid(self.pid, 0)
        os.close(self.fd)
        return os.waitstatus_to_exitcode(status)


def test_run_t_has_the_terminals_size_from_the_start(env: Env) -> None:
    """``run -t`` without ``-i`` never resized the container's TTY: it was 24x80."""
    term = Pty(env.argv("run", "-t", "--rm", "bb", "stty", "size"), 33, 111)
    term.read_until(b"\n")
    assert term.exit_code() == 0
    assert b"33 111" in term.output, term.output


def test_run_it_follows_the_terminal_size(env: Env) -> None:
    term = Pty(env.argv("run", "-it", "--rm", "bb", "sh"), 30, 100)
    term.read_until(b"# ")
    os.write(term.fd, b"stty size\r")
    term.read_until(b"30 100")
    term.resize(41, 123)  # SIGWINCH -> the session's resize
    time.sleep(0.3)
    os.write(term.fd, b"stty size; exit 4\r")
    term.read_until(b"41 123")
    assert term.exit_code() == 4


def test_exec_t_has_the_terminals_size_and_follows_it(env: Env) -> None:
    cid = env.out("run", "-d", "-i", "bb", "sh")
    try:
        term = Pty(env.argv("exec", "-t", cid, "stty", "size"), 35, 90)
        term.read_until(b"\n")
        assert term.exit_code() == 0
        assert b"35 90" in term.output, term.output
        term = Pty(env.argv("exec", "-it", cid, "sh"), 20, 70)
        term.read_until(b"# ")
        term.resize(44, 132)
        time.sleep(0.3)
        os.write(term.fd, b"stty size; exit 6\r")
        term.read_until(b"44 132")
        assert term.exit_code() == 6
    finally:
        env.ch("rm", "-f", cid, check=False)


def _run_until_ready(env: Env, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    name = f"sig{os.getpid()}{len(flags)}"
    script = 'trap "echo got-int; exit 3" INT; echo ready; while :; do sleep 0.1; done'
    proc = subprocess.Popen(env.argv("run", "--name", name, *flags, "bb", "sh", "-c", script),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    assert proc.stdout is not None
    assert proc.stdout.readline() == b"ready\n"
    return proc, name


def test_run_forwards_signals_to_a_container_without_a_tty(env: Env) -> None:
    proc, name = _run_until_ready(env)
    try:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
        assert (proc.returncode, out) == (3, b"got-int\n")
    finally:
        env.ch("rm", "-f", name, check=False)
    proc, name = _run_until_ready(env, "--sig-proxy=false")
    try:
        proc.send_signal(signal.SIGINT)  # ends the CLI only; the container runs on
        proc.communicate(timeout=30)
        assert proc.returncode != 0
        assert env.inspect(name)["State"]["Running"] is True  # type: ignore[index]
    finally:
        env.ch("rm", "-f", name, check=False)


def test_cp_streams_are_the_clis_own(env: Env, tmp_path: Path) -> None:
    """``cp`` with "-" reads/writes the tar stream the CLI hands the engine."""
    cid = env.out("create", "bb", "true")
    try:
        tar = subprocess.run(env.argv("cp", f"{cid}:/data/seed.txt", "-"),
                             capture_output=True, check=True).stdout  # fmt: skip
        assert b"from image" in tar
        r = subprocess.run(env.argv("cp", "-", f"{cid}:/tmp"), input=tar, capture_output=True,
                           check=False)  # fmt: skip
        assert r.returncode == 0, r.stderr
        again = subprocess.run(env.argv("cp", f"{cid}:/tmp/seed.txt", str(tmp_path)),
                               capture_output=True, check=False)  # fmt: skip
        assert again.returncode == 0, again.stderr
        assert (tmp_path / "seed.txt").read_text() == "from image\n"
    finally:
        env.ch("rm", "-f", cid, check=False)
