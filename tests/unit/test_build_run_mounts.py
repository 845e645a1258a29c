"""The host side of RUN --mount without root: cache directories named by a hash of the id and
opened without following links, the context's view (copy form) and what .dockerignore
excludes, entitlements, and the build cache's root-only modes."""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path

import pytest

from cargohold.builder import entitlements, run_mounts
from cargohold.builder.cache import BuildCache, ImageState, buildcache_dir, private_dir
from cargohold.builder.context import BuildContext, StatCache
from cargohold.builder.executor import BuildFailed
from cargohold.builder.instruction_support import Mount
from cargohold.builder.instructions import parse_dockerfile
from cargohold.builder.run_mounts import cache_dir
from cargohold.builder.views import ContextViews
from cargohold.errors import InvalidArgument


def test_cache_ids_are_names_never_paths(tmp_path: Path) -> None:
    buildcache = buildcache_dir(tmp_path)
    seen = set()
    for cache_id in (".", "..", "../x", "/", "a/../../..", "x"):
        path = cache_dir(buildcache, cache_id)
        assert path.parent == buildcache / "mounts"
        assert path.name == hashlib.sha256(cache_id.encode()).hexdigest()
        assert stat.S_ISDIR(os.lstat(path).st_mode)
        seen.add(path)
    assert len(seen) == 6
    assert stat.S_IMODE(os.stat(buildcache / "mounts").st_mode) == 0o700


def test_planted_links_are_replaced_not_followed(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    buildcache = buildcache_dir(tmp_path / "root")
    name = hashlib.sha256(b"pip").hexdigest()
    # mounts/ itself a link (an older version handed it to steps), then the entry a link
    os.symlink(victim, buildcache / "mounts")
    path = cache_dir(buildcache, "pip", mode=0o777)
    assert not (buildcache / "mounts").is_symlink()
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o777
    os.rmdir(path)
    os.symlink(victim, path)
    (buildcache / "mounts" / "file").write_text("")
    path = cache_dir(buildcache, "pip", mode=0o770)
    assert path.name == name and not path.is_symlink()
    assert stat.S_IMODE(os.lstat(path).st_mode) == 0o770
    assert os.listdir(victim) == [] and stat.S_IMODE(os.stat(victim).st_mode) == 0o700


def _context(root: Path) -> BuildContext:
    (root / "only" / "deep").mkdir(parents=True)
    (root / "only" / "keep").write_text("k")
    (root / "only" / "other").write_text("o")
    (root / "sub").mkdir()
    (root / "sub" / "a.log").write_text("l")
    (root / "sub" / "b.txt").write_text("b")
    (root / "x.key").write_text("s")
    (root / "Dockerfile").write_text("FROM x\n")
    (root / ".dockerignore").write_text("*.key\n**/*.log\nonly/*\n!only/keep\n")
    return BuildContext(root)


def test_excluded_paths_in_walk_order(tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx")
    assert list(ctx.excluded()) == [
        ("only/deep", False), ("only/other", False), ("sub/a.log", False), ("x.key", False),
    ]
    (tmp_path / "ctx" / ".dockerignore").write_text("only\n!only/keep\n")
    assert list(BuildContext(tmp_path / "ctx").excluded()) == [
        ("only", True), ("only/deep", False), ("only/other", False),
    ]
    (tmp_path / "ctx" / ".dockerignore").unlink()
    assert list(BuildContext(tmp_path / "ctx").excluded()) == []


def _names(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_context_view_copy_hides_excluded_and_throws_writes_away(tmp_path: Path) -> None:
    ctx = _context(tmp_path / "ctx")
    before = _names(tmp_path / "ctx")
    views = ContextViews(ctx, tmp_path / "tmp")
    views.overlay = False  # the form for hosts without overlay (the overlay form: integration)
    with views.view(writable=True) as view:
        assert _names(view) == [".dockerignore", "Dockerfile", "only", "only/keep", "sub",
                                "sub/b.txt"]
        (view / "only" / "keep").write_text("evil")
        (view / "new").write_text("new")
    assert _names(tmp_path / "ctx") == before
    assert (tmp_path / "ctx" / "only" / "keep").read_text() == "k"
    assert not view.exists()
    views.close()
    assert os.listdir(tmp_path / "tmp") == []


def test_entitlements_validate_and_refuse() -> None:
    assert entitlements.validate(["network.host", "network.host"]) == ("network.host",)
    with pytest.raises(InvalidArgument, match="unknown entitlement device"):
        entitlements.validate(["device"])
    df = parse_dockerfile("FROM a\nRUN --network=host x\nRUN --security=insecure y\n"
                          "RUN --network=none z\n")
    host, insecure, none = df.stages[0].instructions
    nothing = entitlements.granted((), "default")
    assert "network.host is not allowed" in str(entitlements.refusal(host, nothing))  # type: ignore[arg-type]
    assert entitlements.refusal(host, entitlements.granted((), "host")) is None  # type: ignore[arg-type]
    assert "security.insecure is not allowed" in str(
        entitlements.refusal(insecure, entitlements.granted(("network.host",), "none")))  # type: ignore[arg-type]
    assert entitlements.refusal(
        insecure, entitlements.granted(("security.insecure",), "none")) is None  # type: ignore[arg-type]
    assert entitlements.refusal(none, nothing) is None  # type: ignore[arg-type]


def test_build_refuses_before_any_step(tmp_path: Path) -> None:
    from test_build_executor import _build

    with pytest.raises(BuildFailed, match=r"Dockerfile:3: network.host is not allowed: "
                       r"RUN --network=host needs 'build --allow network.host'"):
        _build(tmp_path, "FROM base\nLABEL a=b\nRUN --network=host true\n", network="none")
    assert not (tmp_path / "root" / "buildcache" / "steps").exists()  # not even LABEL ran
    with pytest.raises(BuildFailed, match=r"Dockerfile:2: security.insecure is not allowed"):
        _build(tmp_path, "FROM base\nRUN --security=insecure true\n", allow=("network.host",))


def test_build_cache_files_are_root_only(tmp_path: Path) -> None:
    os.makedirs(tmp_path / "buildcache", mode=0o755)
    os.chmod(tmp_path / "buildcache", 0o755)  # as an older version made it
    assert stat.S_IMODE(os.stat(buildcache_dir(tmp_path)).st_mode) == 0o700
    cache = BuildCache(tmp_path, lambda chain_id: True)
    cache.put(ImageState("ab" * 32, None, {"config": {}}))
    stats = StatCache(tmp_path / "buildcache" / "statcache.json")
    (tmp_path / "f").write_bytes(b"x")
    stats.digest(str(tmp_path / "f"), os.stat(tmp_path / "f"))
    stats.save()
    modes = {str(p.relative_to(tmp_path)): stat.S_IMODE(os.lstat(p).st_mode)
             for p in (tmp_path / "buildcache").rglob("*")}
    assert modes == {"buildcache/steps": 0o700, "buildcache/steps/ab": 0o700,
                     f"buildcache/steps/ab/{'ab' * 32}.json": 0o600,
                     "buildcache/statcache.json": 0o600,
                     "buildcache/statcache.json.lock": 0o600}
    assert cache.get("ab" * 32) is not None
    assert stat.S_IMODE(os.stat(private_dir(tmp_path, "contexts")).st_mode) == 0o700


def test_url_cache_files_are_root_only(tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    from cargohold.builder.dispatch_copy import fetch_url

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "f.txt").write_bytes(b"data")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                                directory=str(tmp_path / "www"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        urls = tmp_path / "buildcache" / "urls"
        got = fetch_url(f"http://127.0.0.1:{server.server_address[1]}/f.txt", urls)
    finally:
        server.shutdown()
    assert got.path.read_bytes() == b"data"
    assert stat.S_IMODE(os.stat(urls).st_mode) == 0o700
    assert {stat.S_IMODE(os.stat(p).st_mode) for p in urls.iterdir()} == {0o600}


def _cache_mount(sharing: str) -> Mount:
    return Mount(type="cache", target="/var/cache/apt", cache_id="apt", sharing=sharing,
                 readonly=False)


def test_locked_cache_mounts_take_turns_across_builds(tmp_path: Path) -> None:
    import threading
    import time

    buildcache = buildcache_dir(tmp_path)
    first = contextlib.ExitStack()
    path = run_mounts._shared_cache(_cache_mount("locked"), "apt", buildcache, first)
    got: list[float] = []

    def second_build() -> None:
        with contextlib.ExitStack() as stack:
            assert run_mounts._shared_cache(_cache_mount("locked"), "apt", buildcache,
                                            stack) == path
            got.append(time.monotonic())

    t = threading.Thread(target=second_build)
    t.start()
    time.sleep(0.2)
    assert got == []  # waits while the first step runs
    released = time.monotonic()
    first.close()
    t.join(10)
    assert got and got[0] >= released
    with contextlib.ExitStack() as stack:  # shared: alongside anyone
        assert run_mounts._shared_cache(_cache_mount(""), "apt", buildcache, stack) == path


def test_private_cache_mounts_in_use_get_their_own_instance(tmp_path: Path) -> None:
    import threading

    buildcache = buildcache_dir(tmp_path)
    others: list[Path] = []

    def other_build() -> None:  # another build's step, at the same time
        with contextlib.ExitStack() as b:
            others.append(run_mounts._shared_cache(_cache_mount("private"), "apt",
                                                   buildcache, b))

    with contextlib.ExitStack() as a:
        one = run_mounts._shared_cache(_cache_mount("private"), "apt", buildcache, a)
        t = threading.Thread(target=other_build)
        t.start()
        t.join(10)
        assert others and others[0] != one
        assert others[0].parent == one.parent == buildcache / "mounts"
    with contextlib.ExitStack() as c:  # free again: the first instance is reused
        assert run_mounts._shared_cache(_cache_mount("private"), "apt", buildcache, c) == one
