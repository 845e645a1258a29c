"""Pull and push against a real registry (Debian's docker-registry, Distribution v2) started on
127.0.0.1 by the tests: plain HTTP, and TLS with a self-signed CA plus htpasswd auth.  Interop
with skopeo and podman where they are installed.  Every registry is stopped and its directory
removed, even when a test fails.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from podman_env import private_podman

from cargohold.cli.main import main

REGISTRY = shutil.which("docker-registry")
pytestmark = pytest.mark.skipif(REGISTRY is None, reason="docker-registry is not installed "
                                "(apt-get install docker-registry)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Registry:
    host: str
    dir: Path
    proc: subprocess.Popen[bytes]
    tls: bool
    ca: Path | None = None


def _htpasswd(path: Path, user: str, password: str) -> None:
    if shutil.which("htpasswd"):
        subprocess.run(["htpasswd", "-Bbc", str(path), user, password], check=True,
                       capture_output=True)
        return
    import crypt  # pragma: no cover - only without apache2-utils

    path.write_text(f"{user}:{crypt.crypt(password, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")


def _certs(d: Path) -> tuple[Path, Path, Path]:
    ca_key, ca, key, csr, crt = (d / n for n in ("ca.key", "ca.crt", "srv.key", "srv.csr",
                                                 "srv.crt"))
    ext = d / "ext.cnf"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    run = [["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(ca_key),
            "-out", str(ca), "-days", "2", "-subj", "/CN=cargohold test CA"],
           ["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
            str(csr), "-subj", "/CN=127.0.0.1"],
           ["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
            "-CAcreateserial", "-out", str(crt), "-days", "2", "-extfile", str(ext)]]
    for cmd in run:
        subprocess.run(cmd, check=True, capture_output=True)
    return ca, crt, key


def start_registry(base: Path, tls: bool = False) -> Registry:
    port = free_port()
    d = base / f"registry-{port}"
    d.mkdir(parents=True)
    config = [
        "version: 0.1", "log:", "  level: error", "storage:", "  filesystem:",
        f"    rootdirectory: {d / 'data'}", "  delete:", "    enabled: true",
        "http:", f"  addr: 127.0.0.1:{port}",
    ]
    ca = None
    if tls:
        ca, crt, key = _certs(d)
        config += ["  tls:", f"    certificate: {crt}", f"    key: {key}"]
        _htpasswd(d / "htpasswd", "alice", "s3cret")
        config += ["auth:", "  htpasswd:", "    realm: test", f"    path: {d / 'htpasswd'}"]
    (d / "config.yml").write_text("\n".join(config) + "\n")
    proc = subprocess.Popen([str(REGISTRY), "serve", str(d / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=open(d / "log", "wb"))  # noqa: SIM115
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError((d / "log").read_text()) from None
            time.sleep(0.05)
    return Registry(f"127.0.0.1:{port}", d, proc, tls, ca)


def stop_registry(reg: Registry) -> None:
    reg.proc.terminate()
    try:
        reg.proc.wait(5)
    except subprocess.TimeoutExpired:
        reg.proc.kill()
        reg.proc.wait()
    shutil.rmtree(reg.dir, ignore_errors=True)


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    reg = start_registry(tmp_path)
    try:
        yield reg
    finally:
        stop_registry(reg)


@pytest.fixture
def tls_registry(tmp_path: Path) -> Iterator[Registry]:
    reg = start_registry(tmp_path, tls=True)
    try:
        yield reg
    finally:
        stop_registry(reg)


class Cli:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(["--root", str(self.root), "--runroot", str(self.root / "run"),
                     "--storage-driver", "vfs", *args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    monkeypatch.setenv("CARGOHOLD_CONFIG", str(tmp_path / "registries.toml"))
    return Cli(tmp_path / "root", capsys)


def rootfs(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def image(cli: Cli, tmp_path: Path, registry: Registry) -> str:
    name = f"{registry.host}/demo/x:1"
    tar = rootfs(tmp_path / "rootfs.tar", {"bin/hello": b"#!/bin/sh\necho hi\n",
                                           "etc/big": os.urandom(200_000)})
    code, _, err = cli("import", str(tar), name)
    assert code == 0, err
    return name


def test_push_then_pull_by_tag_and_digest(cli: Cli, registry: Registry, image: str) -> None:
    code, out, err = cli("push", "--tls-verify=false", image)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"The push refers to repository [{registry.host}/demo/x]"
    assert any(line.endswith(": Pushed") for line in lines)
    assert lines[-1].startswith("1: digest: sha256:") and " size: " in lines[-1]
    digest = lines[-1].split()[2]
    code, out, _ = cli("push", "--tls-verify=false", image)  # second push: nothing to upload
    assert code == 0 and ": Layer already exists" in out and out.splitlines()[-1] == lines[-1]
    code, out, _ = cli("inspect", "--format", "{{.Id}}", image)
    image_id = out.strip()
    assert cli("rmi", image)[0] == 0
    code, out, err = cli("pull", "--tls-verify=false", image)
    assert code == 0, err
    assert out.splitlines()[0] == "1: Pulling from demo/x"
    assert f"Digest: {digest}" in out
    assert f"Status: Downloaded newer image for {image}" in out
    assert out.splitlines()[-1] == image
    assert cli("inspect", "--format", "{{.Id}}", image)[1].strip() == image_id
    code, out, _ = cli("pull", "--tls-verify=false", image)
    assert "Status: Image is up to date" in out
    by_digest = f"{registry.host}/demo/x@{digest}"
    assert cli("rmi", "-f", image)[0] == 0
    code, out, err = cli("pull", "--tls-verify=false", by_digest)
    assert code == 0, err
    assert out.splitlines()[-1] == by_digest
    code, out, _ = cli("inspect", "--format", "{{json .RepoDigests}}", by_digest)
    assert json.loads(out) == [by_digest]


def test_all_tags_and_missing_manifest(cli: Cli, registry: Registry, image: str) -> None:
    two = image.replace(":1", ":2")
    assert cli("tag", image, two)[0] == 0
    code, out, err = cli("push", "-a", "--tls-verify=false", image.rsplit(":", 1)[0])
    assert code == 0, err
    assert "1: digest:" in out and "2: digest:" in out
    assert cli("rmi", image, two)[0] == 0
    code, out, err = cli("pull", "-a", "--tls-verify=false", image.rsplit(":", 1)[0])
    assert code == 0, err
    code, out, _ = cli("images", "--format", "{{.Tag}}", image.rsplit(":", 1)[0])
    assert sorted(out.split()) == ["1", "2"]
    code, _, err = cli("pull", "--tls-verify=false", f"{registry.host}/demo/nope")
    assert code != 0
    assert err.strip() == (f"Error response from daemon: manifest for {registry.host}/demo/nope"
                           ":latest not found: manifest unknown: manifest unknown")


def test_loopback_registry_needs_no_configuration(cli: Cli, registry: Registry, image: str,
                                                  tmp_path: Path) -> None:
    """As dockerd: a registry on 127.0.0.0/8 (or a name resolving there, localhost) is tried
    over HTTPS, then plain HTTP, with no configuration file; ``--tls-verify`` still forces TLS.
    (A name outside loopback keeps TLS: tests/unit/test_registry_loopback.py.)"""
    assert not (tmp_path / "registries.toml").exists()
    code, _, err = cli("push", "--tls-verify=true", image)
    assert code != 0 and "server gave HTTP response to HTTPS client" in err
    code, out, err = cli("push", image)
    assert code == 0, err
    assert cli("rmi", image)[0] == 0
    code, out, err = cli("pull", image)
    assert code == 0, err
    assert f"Status: Downloaded newer image for {image}" in out
    by_name = image.replace("127.0.0.1:", "localhost:")
    assert cli("tag", image, by_name)[0] == 0
    code, _, err = cli("push", by_name)
    assert code == 0, err
    assert cli("rmi", image, by_name)[0] == 0
    code, out, err = cli("pull", by_name)
    assert code == 0, err
    assert out.splitlines()[-1] == by_name
    code, out, _ = cli("info", "--format", "{{json .RegistryConfig.InsecureRegistryCIDRs}}")
    assert "127.0.0.0/8" in json.loads(out)


def test_zstd_push_is_stable(cli: Cli, registry: Registry, image: str) -> None:
    code, out, err = cli("push", "--tls-verify=false", "--compression-format", "zstd", image)
    assert code == 0, err
    first = out.splitlines()[-1]
    code, out, _ = cli("push", "--tls-verify=false", "--compression-format", "zstd", image)
    assert out.splitlines()[-1] == first and "Layer already exists" in out


def test_tls_htpasswd_login_logout(cli: Cli, tls_registry: Registry, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    host = tls_registry.host
    assert tls_registry.ca is not None
    certs = tmp_path / "certs.d"
    (certs / host).mkdir(parents=True)
    shutil.copy(tls_registry.ca, certs / host / "ca.crt")
    (tmp_path / "registries.toml").write_text(f'certs-dirs = ["{certs}"]\n')
    tar = rootfs(tmp_path / "r.tar", {"a": b"a"})
    assert cli("import", str(tar), f"{host}/private/y:1")[0] == 0
    code, _, err = cli("pull", f"{host}/private/y:1")
    assert code != 0 and err.strip().startswith(
        "Error response from daemon: pull access denied for "
        f"{host}/private/y, repository does not exist or may require 'docker login'")
    monkeypatch.setattr("sys.stdin", io.StringIO("wrong\n"))
    code, _, err = cli("login", "-u", "alice", "--password-stdin", host)
    assert code != 0 and "401" in err
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    code, out, err = cli("login", "-u", "alice", "--password-stdin", host)
    assert (code, out) == (0, "Login Succeeded\n"), err
    config = json.loads((tmp_path / "docker-config" / "config.json").read_text())
    assert host in config["auths"]
    code, out, err = cli("push", f"{host}/private/y:1")
    assert code == 0, err
    code, out, err = cli("pull", f"{host}/private/y:1")
    assert code == 0, err
    code, out, _ = cli("logout", host)
    assert out == f"Removing login credentials for {host}\n"
    assert host not in json.loads(
        (tmp_path / "docker-config" / "config.json").read_text())["auths"]
    code, _, err = cli("push", f"{host}/private/y:1")
    assert code != 0
    (tmp_path / "registries.toml").write_text("")
    # no CA: a loopback registry's certificate is not verified (dockerd's insecure default),
    # unless TLS verification is asked for
    code, _, err = cli("pull", f"{host}/private/y:1")
    assert code != 0 and "pull access denied" in err
    code, _, err = cli("pull", "--tls-verify=true", f"{host}/private/y:1")
    assert code != 0 and "certificate" in err.lower()


# ---- interop ------------------------------------------------------------------------------
def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def test_skopeo_accepts_what_we_push(cli: Cli, registry: Registry, image: str) -> None:
    skopeo = _tool("skopeo")
    assert cli("push", "--tls-verify=false", image)[0] == 0
    r = subprocess.run([skopeo, "inspect", "--tls-verify=false", f"docker://{image}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["Layers"]) == 1


def test_we_pull_what_skopeo_pushes(cli: Cli, registry: Registry, image: str,
                                    tmp_path: Path) -> None:
    skopeo = _tool("skopeo")
    assert cli("save", "-o", str(tmp_path / "x.tar"), image)[0] == 0
    target = f"{registry.host}/from/skopeo:1"
    r = subprocess.run([skopeo, "copy", "--dest-tls-verify=false",
                        f"docker-archive:{tmp_path / 'x.tar'}", f"docker://{target}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    code, _, err = cli("pull", "--tls-verify=false", target)
    assert code == 0, err
    ids = [cli("inspect", "--format", "{{.Id}}", n)[1].strip() for n in (image, target)]
    assert ids[0] == ids[1]


def test_podman_pulls_and_runs_what_we_push(cli: Cli, registry: Registry,
                                            tmp_path: Path) -> None:
    if not Path("/bin/busybox").exists():
        pytest.skip("busybox-static is not installed")
    name = f"{registry.host}/demo/busybox:1"
    tar = tmp_path / "busybox.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add("/bin/busybox", "bin/busybox")
    assert cli("import", "-c", 'CMD ["/bin/busybox", "echo", "pushed by cargohold"]', str(tar),
               name)[0] == 0
    assert cli("push", name)[0] == 0
    with private_podman() as podman:
        r = podman("pull", "--tls-verify=false", name)
        assert r.returncode == 0, r.stderr
        r = podman("run", "--rm", "--network", "none", name)
        assert (r.returncode, r.stdout) == (0, "pushed by cargohold\n"), r.stderr


def _layer_digests(out: str) -> list[str]:
    return [line.split(": ", 1)[0] for line in out.splitlines() if line.endswith(": Pushed")]


def test_push_digest_is_stable_per_level_and_mounts_without_compressing(
        cli: Cli, registry: Registry, image: str) -> None:
    pushed = {}
    for level in ("3", "6", "3"):
        code, out, err = cli("push", "--tls-verify=false", "--compression-level", level, image)
        assert code == 0, err
        pushed.setdefault(level, []).append(out.splitlines()[-1])
    # level 3 twice: the same manifest digest; the second push found its layer in place
    assert pushed["3"][0] == pushed["3"][1] and pushed["3"][0] != pushed["6"][0]
    other = image.replace("/demo/x:", "/other/x:")
    assert cli("tag", image, other)[0] == 0
    code, out, err = cli("push", "--tls-verify=false", "--compression-level", "3", other)
    assert code == 0, err
    assert "Mounted from" in out and "Pushing" not in out  # known blob: nothing compressed
    code, _, err = cli("push", "--tls-verify=false", "--compression-level", "12", image)
    assert code == 125 and "invalid gzip compression level 12" in err


def _cli_subprocess(cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    import sys

    exe = Path(sys.executable).with_name("cargohold")
    return subprocess.run([str(exe), "--root", str(cli.root), "--runroot", str(cli.root / "run"),
                           "--storage-driver", "vfs", *args], capture_output=True, text=True,
                          timeout=120)


def test_run_create_and_from_pull_a_missing_image(cli: Cli, registry: Registry,
                                                 tmp_path: Path) -> None:
    (tmp_path / "registries.toml").write_text(f'insecure-registries = ["{registry.host}"]\n')
    name = f"{registry.host}/demo/bb:1"
    tar = rootfs(tmp_path / "bb.tar", {"bin/busybox": Path("/bin/busybox").read_bytes()}
                 if Path("/bin/busybox").exists() else {"bin/hello": b"x"})
    assert cli("import", str(tar), name)[0] == 0
    code, _, err = cli("push", name)
    assert code == 0, err
    assert cli("rmi", name)[0] == 0

    code, out, err = cli("create", "--pull", "never", "--network", "none", name, "true")
    assert (code, out) == (125, "")
    assert err.strip() == f"Error response from daemon: No such image: {name}"

    code, out, err = cli("create", "--network", "none", name, "true")
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0] == f"Unable to find image '{name}' locally"
    assert lines[1] == "1: Pulling from demo/bb"
    assert lines[-1] == f"Status: Downloaded newer image for {name}"
    assert cli("rm", out.strip())[0] == 0

    code, out, err = cli("create", "--pull", "always", "--network", "none", name, "true")
    assert code == 0, err
    assert f"Status: Image is up to date for {name}" in err
    assert "Unable to find image" not in err
    assert cli("rm", out.strip())[0] == 0

    assert cli("rmi", name)[0] == 0
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {name}\nLABEL pulled=yes\n")
    code, _, err = cli("build", "-q", "-t", "derived:1", str(ctx))
    assert code == 0, err
    assert cli("image", "inspect", name)[0] == 0
    assert cli("rmi", "derived:1", name)[0] == 0

    if os.geteuid() != 0 or shutil.which("runc") is None or not Path("/bin/busybox").exists():
        return
    r = _cli_subprocess(cli, "run", "--rm", "--network", "none", name, "/bin/busybox", "echo",
                        "hi")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "hi\n"
    assert r.stderr.splitlines()[0] == f"Unable to find image '{name}' locally"
    r = _cli_subprocess(cli, "run", "--rm", "--pull", "never", "--network", "none",
                        f"{registry.host}/demo/none:1", "true")
    assert r.returncode == 125
    assert f"No such image: {registry.host}/demo/none:1" in r.stderr
    assert cli("rmi", name)[0] == 0
