"""The README's main job: an end-to-end demo, ending in the seed tutorial's Apache example.

Part 1 needs no network and no container runtime: bootstrap a busybox base image, import a
rootfs template from a pipe (seed section 3), save/rmi/load it.  Part 2 is the seed's
section 6 on Debian: bootstrap debian:bookworm from the Debian mirror, build examples/apache,
run it detached with ``-p 6666:80`` and show the page served at http://127.0.0.1:6666.

Every step prints the command it runs (the Docker-compatible CLI, as a user would type it).
A missing piece stops the demo with a message naming it, never a traceback.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "apache"
URL = "http://127.0.0.1:6666"
NAME = "apache-demo"
IMAGE = "httpd:centos7"
BASE = "debian:bookworm"


class Stop(Exception):
    """The demo cannot go on; the message says why and what is missing."""


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "cargohold"
    if script.exists():
        return [str(script)]
    found = shutil.which("cargohold")
    return [found] if found else [sys.executable, "-m", "cargohold"]


def _display(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in ["cargohold", *argv])


def ch(*argv: str, stdin: str | None = None, check: bool = True, quiet: bool = False,
       shown: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cargohold ARGV`` after printing it; its output goes to the terminal."""
    print(f"\n$ {shown or _display(list(argv))}", flush=True)
    out = subprocess.PIPE if quiet else None
    if stdin is not None:
        with open(stdin, "rb") as f:
            proc = subprocess.run([*_cli(), *argv], stdin=f, stdout=out, text=True, check=False)
    else:
        proc = subprocess.run([*_cli(), *argv], stdin=subprocess.DEVNULL, stdout=out,
                              text=True, check=False)
    if check and proc.returncode != 0:
        raise Stop(f"`{shown or _display(list(argv))}` failed with exit status {proc.returncode}")
    return proc


def query(*argv: str) -> str:
    """Output of a cargohold command run silently (for decisions, not for show)."""
    proc = subprocess.run([*_cli(), *argv], capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else ""


def require(verb: str, module: str, what: str) -> None:
    if importlib.util.find_spec(f"cargohold.cli.commands.{module}") is None:
        raise Stop(f"`cargohold {verb}` is not available yet ({what}; "
                   f"cargohold/cli/commands/{module}.py is missing)")


# ---------------------------------------------------------------- part 1: no network needed


def part_images(tmp: Path) -> None:
    print("== Part 1: base images without a registry; import, save and load ==")
    ch("image", "bootstrap", "busybox")
    ch("images", "busybox")
    rootfs = tmp / "busybox-rootfs.tar"
    _rootfs_template(rootfs)
    ch("import", "-c", 'CMD ["sh"]', "-", "busybox:imported", stdin=str(rootfs),
       shown=f"cat {rootfs.name} | cargohold import -c 'CMD [\"sh\"]' - busybox:imported")
    archive = tmp / "busybox-images.tar"
    ch("save", "-o", str(archive), "busybox:latest", "busybox:imported")
    ch("rmi", "busybox:imported")
    ch("load", "-i", str(archive))
    ch("images", "busybox")
    ch("history", "busybox:imported")


def _rootfs_template(path: Path) -> None:
    """A rootfs tarball like the seed's OpenVZ template, made from the host's busybox."""
    from cargohold.engine.images.bootstrap import busybox_applets, write_busybox_tar

    busybox = "/bin/busybox"
    with open(path, "wb") as out:
        write_busybox_tar(out, busybox, busybox_applets(busybox), int(os.stat(busybox).st_mtime))
    print(f"\n# {path.name}: a busybox rootfs tarball ({path.stat().st_size // 1024} KiB), "
          "like the seed's debian-7.0-x86-minimal.tar.gz template")


# ---------------------------------------------------------------- part 2: the seed's Apache


def part_apache() -> None:
    print("\n== Part 2: the seed's Apache example (section 6) on a Debian base ==")
    require("build", "build", "the Dockerfile builder is still being written")
    require("run", "run", "container run is still being written")
    require("rm", "rm", "container removal is still being written")
    ch("run", "--rm", "busybox", "sh", "-c", "echo hello from a busybox container; uname -sr")
    if query("images", "-q", BASE):
        print(f"\n# {BASE} is already present; skipping `cargohold image bootstrap {BASE}`")
    else:
        ch("image", "bootstrap", BASE)
    print(f"\n# {EXAMPLE.relative_to(REPO)}/Dockerfile:")
    print("\n".join("    " + line for line in (EXAMPLE / "Dockerfile").read_text().splitlines()))
    ch("build", "-t", IMAGE, str(EXAMPLE),
       shown=f"cargohold build -t {IMAGE} {EXAMPLE.relative_to(REPO)}")
    if query("inspect", "--type", "container", "-f", "{{.Id}}", NAME):
        ch("rm", "-f", NAME)  # the previous demo's container
    ch("run", "-itd", "-p", "6666:80", "--name", NAME, IMAGE)
    page = wait_for_page(URL, timeout=60)
    if page is None:
        ch("logs", NAME, check=False)
        raise Stop(f"{URL} did not answer within 60 s (the container's logs are above)")
    print(f"\n$ curl {URL}\n{page.rstrip()}")
    if "this is test dockerfile web" not in page:
        raise Stop(f"{URL} answered, but not with examples/apache/index.html")
    print(f"\nApache is serving {URL} from container {NAME} (left running).")
    print(f"Stop and remove it with:  cargohold rm -f {NAME}")


def wait_for_page(url: str, timeout: float) -> str | None:
    from urllib.error import URLError
    from urllib.request import urlopen

    print(f"\n# waiting for {url} ...", flush=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urlopen(url, timeout=3) as resp:
                return str(resp.read().decode("utf-8", "replace"))
        except (URLError, OSError):
            time.sleep(0.5)
    return None


def main() -> int:
    if os.geteuid() != 0:
        print("demo: run as root (containers, overlayfs and networking need it)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="cargohold-demo-") as tmp:
        try:
            part_images(Path(tmp))
            part_apache()
        except Stop as e:
            print(f"\ndemo stopped: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            return 130
    print("\ndemo finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
