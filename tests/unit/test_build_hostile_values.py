"""Dockerfile values and URL answers that used to end in a Python error (security issue #10,
item 15): ``COPY --chown`` out of the uid range and an ``ADD <url>`` whose first answer is
304.  Both fail with the Dockerfile line and leave no layer, image or staging entry.  COPY
and ADD of a URL need no container, so this runs without root on the vfs driver."""

from __future__ import annotations

import http.server
import io
import os
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.cli.main import main


class Cli:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(["--root", str(self.root), "--runroot", str(self.root / "run"),
                     "--storage-driver", "vfs", *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def layers(self) -> set[str]:
        d = self.root / "layers"
        return {n for n in os.listdir(d) if len(n) == 64} if d.exists() else set()

    def staging(self) -> list[str]:
        d = self.root / "tmp"
        return [n for n in os.listdir(d) if not n.startswith(".")] if d.exists() else []


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    c = Cli(tmp_path / "root", capsys)
    tar = tmp_path / "base.tar"
    with tarfile.open(tar, "w") as tf:
        data = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    assert c("import", str(tar), "base:1")[0] == 0
    return c


def _context(tmp: Path, dockerfile: str) -> Path:
    ctx = tmp / "ctx"
    ctx.mkdir(exist_ok=True)
    (ctx / "f").write_text("f\n")
    (ctx / "Dockerfile").write_text(dockerfile)
    return ctx


@pytest.mark.parametrize(("chown", "message"), [
    ("99999999999", 'unable to convert user 99999999999 to a number: strconv.ParseUint: '
                    'parsing "99999999999": value out of range'),
    ("4294967295", "unable to convert user 4294967295 to a number"),
    ("0:99999999999", "unable to convert group 99999999999 to a number"),
])
def test_copy_chown_out_of_range_names_the_line_and_value(
    cli: Cli, tmp_path: Path, chown: str, message: str
) -> None:
    before = cli.layers()
    ctx = _context(tmp_path, f"FROM base:1\nCOPY --chown={chown} f /f\n")
    code, _, err = cli("build", "-t", "chown:1", str(ctx))
    assert code == 1
    assert f"Dockerfile:2: {message}" in err, err
    assert "OverflowError" not in err
    assert cli.layers() == before and cli.staging() == []
    assert cli("images", "-q", "chown:1")[1] == ""


class _NotModified(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(304)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def not_modified() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotModified)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/file.txt"
    finally:
        server.shutdown()
        server.server_close()


def test_add_url_answered_304_first_is_a_clear_error(
    cli: Cli, tmp_path: Path, not_modified: str
) -> None:
    before = cli.layers()
    ctx = _context(tmp_path, f"FROM base:1\nADD {not_modified} /f\n")
    code, _, err = cli("build", "-t", "add:1", str(ctx))
    assert code == 1
    assert (f'Dockerfile:2: failed to load cache key: Get "{not_modified}": unexpected '
            "response status 304") in err, err
    assert "KeyError" not in err
    assert cli.layers() == before and cli.staging() == []
    assert cli("images", "-q", "add:1")[1] == ""


def test_import_from_a_url_answered_304_is_refused(cli: Cli, not_modified: str) -> None:
    code, _, err = cli("import", not_modified, "imp:1")
    assert code == 125
    assert f'Get "{not_modified}": unexpected status 304' in err, err
    assert cli("images", "-q", "imp:1")[1] == ""
