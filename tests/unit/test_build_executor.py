"""Build semantics that need no root: config-only steps, CMD/ENTRYPOINT, ARG/ENV scoping,
ONBUILD triggers, --target pruning, cache keys and the context (ignores, confinement)."""

from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cargohold.builder.cache import ImageState
from cargohold.builder.context import BuildContext, ContextError, StatCache
from cargohold.builder.dispatch_config import apply_config, expand_ports, join_workdir
from cargohold.builder.executor import Backend, BuildFailed, BuildOptions, Executor
from cargohold.builder.instructions import parse_dockerfile
from cargohold.builder.plan import make_plan
from cargohold.builder.progress import Progress
from cargohold.errors import NotFound


@dataclass
class FakeDriver:
    whiteouts: str = "delete"


@dataclass
class FakeLayers:
    """Layers as far as config steps and WORKDIR need them: every layer's tree is ``base``
    (an /etc/passwd with the user ``web``); registering only hashes the tar."""

    base: Path = Path("/nonexistent")
    driver: FakeDriver = field(default_factory=FakeDriver)

    def exists(self, chain_id: str) -> bool:
        return True

    def chain(self, chain_id: str) -> list[Any]:
        return []

    def diff_path(self, chain_id: str) -> Path:
        return self.base



def _register(stream: Any, parent: str | None) -> Any:
    import hashlib

    from cargohold.store.layers import Layer, chain_id_of

    diff_id = "sha256:" + hashlib.sha256(stream.read()).hexdigest()
    return Layer(chain_id_of(parent, diff_id), diff_id, parent, 0, "")


@dataclass
class Record:
    id: str
    repo_tags: tuple[str, ...] = ()


@dataclass
class FakeImages:
    configs: dict[str, bytes] = field(default_factory=dict)

    def get(self, image_id: str) -> Record:
        if image_id not in self.configs:
            raise NotFound(image_id)
        return Record(image_id)

    def add(self, data: bytes, top: str | None, size: int = 0) -> Record:
        import hashlib

        image_id = "sha256:" + hashlib.sha256(data).hexdigest()
        self.configs[image_id] = data
        return Record(image_id)


@dataclass
class FakeStores:
    layers: FakeLayers = field(default_factory=FakeLayers)
    images: FakeImages = field(default_factory=FakeImages)


BASE_CONFIG = {
    "architecture": "amd64",
    "os": "linux",
    "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"], "OnBuild": ["LABEL trig=yes"]},
    "rootfs": {"type": "layers", "diff_ids": []},
    "history": [],
}


def _build(tmp: Path, text: str, base_config: dict[str, Any] | None = None,
           **opts: Any) -> tuple[dict[str, Any], str]:
    base = tmp / "base"
    (base / "etc").mkdir(parents=True, exist_ok=True)
    (base / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\nweb:x:33:33::/:/bin/sh\n")
    stores = FakeStores(FakeLayers(base))
    tags: list[str] = []
    backend = Backend(
        stores=stores,  # type: ignore[arg-type]
        root=tmp / "root",
        runroot=tmp / "run",
        resolve_image=lambda name: ("sha256:" + "b" * 64,
                                    json.loads(json.dumps(base_config or BASE_CONFIG)),
                                    "sha256:" + "a" * 64),
        pull_image=lambda name: None,
        tag_image=lambda image_id, name: tags.append(name) or name,  # type: ignore[func-returns-value]
        runtime=lambda: None,
        network_store=lambda: None,
        register=_register,
    )
    ctx_dir = tmp / "ctx"
    ctx_dir.mkdir(exist_ok=True)
    out = io.StringIO()
    executor = Executor(backend, BuildOptions(**opts), BuildContext(ctx_dir), Progress(out))
    image_id = executor.build(text)
    return json.loads(stores.images.configs[image_id]), out.getvalue()


def test_config_steps_and_history(tmp_path: Path) -> None:
    config, out = _build(tmp_path, (
        "FROM base\nMAINTAINER me <me@x>\nENV A=1 B=$A\nENV A=2 C=${A}\nLABEL l=$B\n"
        "EXPOSE 80 8000-8001/udp\nVOLUME /data\nUSER web\nWORKDIR /a\nWORKDIR b\n"
        "STOPSIGNAL SIGTERM\nHEALTHCHECK --interval=5s CMD true\nSHELL [\"/bin/bash\", \"-c\"]\n"
        "CMD echo hi\n"
    ))
    section = config["config"]
    assert config["author"] == "me <me@x>"
    # ENV a=1 b=$a: b sees the old a (unset here)
    assert section["Env"] == ["PATH=/bin", "A=2", "B=", "C=1"]
    assert section["Labels"] == {"l": "", "trig": "yes"}
    assert set(section["ExposedPorts"]) == {"80/tcp", "8000/udp", "8001/udp"}
    assert section["Volumes"] == {"/data": {}}
    assert section["User"] == "web" and section["WorkingDir"] == "/a/b"
    assert section["Healthcheck"] == {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000}
    assert section["Cmd"] == ["/bin/bash", "-c", "echo hi"]
    assert "OnBuild" not in section  # triggers ran and were cleared
    created_by = [h["created_by"] for h in config["history"]]
    # Docker 20.10's classic history: the stage's current SHELL before #(nop), Go's %q / %v
    assert created_by[-1] == '/bin/bash -c #(nop)  CMD ["/bin/bash" "-c" "echo hi"]'
    assert created_by[-2] == "/bin/bash -c #(nop)  SHELL [/bin/bash -c]"
    assert created_by[-3] == ('/bin/sh -c #(nop)  HEALTHCHECK &{["CMD-SHELL" "true"] "5s" "0s" '
                              "\"0s\" '\\x00'}")
    assert "/bin/sh -c #(nop)  EXPOSE 80 8000-8001/udp" in created_by
    assert "/bin/sh -c #(nop)  VOLUME [/data]" in created_by
    # WORKDIR makes a layer with its directory (the base has neither /a nor /a/b); its nop
    # comment has one space (Docker's withCmdCommentString)
    layered = [h["created_by"] for h in config["history"] if not h.get("empty_layer")]
    assert layered == ["/bin/sh -c #(nop) WORKDIR /a", "/bin/sh -c #(nop) WORKDIR /a/b"]
    assert "[1/14] FROM base" in out and "ONBUILD LABEL trig=yes" in out


DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def test_stage_without_path_gets_dockers_default(tmp_path: Path) -> None:
    """A base without PATH (an imported image, scratch) gets Docker's default PATH, so
    ``ENV PATH=/opt/bin:$PATH`` expands against it; a base with PATH keeps its own."""
    imported = {**BASE_CONFIG, "config": {"Cmd": ["/bin/sh"], "Env": ["A=1"]}}
    config, _ = _build(tmp_path, "FROM base\nENV PATH=/opt/bin:$PATH\n", base_config=imported)
    assert config["config"]["Env"] == ["A=1", "PATH=/opt/bin:" + DEFAULT_PATH[5:]]
    assert config["history"][-1]["created_by"].endswith("ENV PATH=/opt/bin:/usr/local/sbin:"
                                                       "/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    config, _ = _build(tmp_path, "FROM scratch\nLABEL a=b\n")
    assert config["config"]["Env"] == [DEFAULT_PATH]
    config, _ = _build(tmp_path, "FROM base\nENV PATH=/opt/bin:$PATH\n")
    assert config["config"]["Env"] == ["PATH=/opt/bin:/bin"]


def test_entrypoint_resets_inherited_cmd(tmp_path: Path) -> None:
    config, _ = _build(tmp_path, 'FROM base\nENTRYPOINT ["/app"]\n')
    assert config["config"]["Entrypoint"] == ["/app"] and "Cmd" not in config["config"]
    config, _ = _build(tmp_path, 'FROM base\nCMD ["x"]\nENTRYPOINT ["/app"]\n')
    assert config["config"]["Cmd"] == ["x"]


def test_arg_scoping_and_cache(tmp_path: Path) -> None:
    text = "ARG V=global\nFROM base\nLABEL before=${V}\nARG V\nLABEL after=${V}\n"
    config, _ = _build(tmp_path, text)
    assert config["config"]["Labels"] == {"before": "", "after": "global", "trig": "yes"}
    again, out2 = _build(tmp_path, text)
    assert again == config and out2.count("CACHED") == 5
    changed, out3 = _build(tmp_path, text, build_args={"V": "cli"})
    assert changed["config"]["Labels"]["after"] == "cli"
    assert out3.count("CACHED") == 3  # FROM, ONBUILD trigger, LABEL before; ARG V on: rerun


def test_unused_build_arg_warning_and_labels(tmp_path: Path) -> None:
    config, out = _build(tmp_path, "FROM base\n", build_args={"NOPE": "1"}, labels={"k": "v"})
    assert "NOPE" in out and config["config"]["Labels"]["k"] == "v"


def test_source_date_epoch(tmp_path: Path) -> None:
    a, _ = _build(tmp_path, "FROM base\nENV X=1\n", source_date_epoch=1700000000, no_cache=True)
    b, _ = _build(tmp_path, "FROM base\nENV X=1\n", source_date_epoch=1700000000, no_cache=True)
    assert a == b and a["created"] == "2023-11-14T22:13:20Z"


def test_errors_are_located(tmp_path: Path) -> None:
    with pytest.raises(BuildFailed, match=r"Dockerfile:2: Invalid containerPort: abc"):
        _build(tmp_path, "FROM base\nEXPOSE abc\n")
    with pytest.raises(BuildFailed, match=r"Dockerfile:2: Invalid signal"):
        _build(tmp_path, "FROM base\nSTOPSIGNAL NOPE\n")
    with pytest.raises(BuildFailed, match=r"Dockerfile:2: .*outside the build context"):
        _build(tmp_path, "FROM base\nCOPY ../x /x\n")
    with pytest.raises(BuildFailed, match=r"Dockerfile:2: COPY failed: file not found"):
        _build(tmp_path, "FROM base\nCOPY missing /x\n")


def test_plan_target_prunes_and_refs(tmp_path: Path) -> None:
    df = parse_dockerfile(
        "FROM a AS one\nFROM b AS two\nCOPY --from=one /x /x\nFROM c AS three\nFROM two\n"
    )
    plan = make_plan(df, {}, None)
    assert [s.index for s in plan.stages] == [0, 1, 3]
    assert [s.index for s in make_plan(df, {}, "three").stages] == [2]
    bad = parse_dockerfile("FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\n")
    with pytest.raises(Exception, match="later build stage"):
        make_plan(bad, {}, None)
    own = parse_dockerfile("FROM a AS one\nCOPY --from=one /x /x\n")
    with pytest.raises(Exception, match="current build stage"):
        make_plan(own, {}, None)
    meta = parse_dockerfile("ARG IMG=alpine\nFROM ${IMG}:3\n")
    assert make_plan(meta, {"IMG": "debian"}, None).stages[0].base == "debian:3"


def test_config_helpers() -> None:
    assert expand_ports(("80", "1-2/udp")) == ["80/tcp", "1/udp", "2/udp"]
    assert join_workdir("/a", "../b") == "/b" and join_workdir("/a", "/c/./d") == "/c/d"
    state = ImageState("k", None, {"config": {}})
    from cargohold.builder.instructions import parse_dockerfile as p

    inst = p("FROM x\nENTRYPOINT echo hi\n").stages[0].instructions[0]
    assert apply_config(inst, state).endswith('ENTRYPOINT ["/bin/sh" "-c" "echo hi"]')


def test_context_walk_ignore_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "ctx"
    (root / "dir" / "sub").mkdir(parents=True)
    (root / "dir" / "a.txt").write_text("a")
    (root / "dir" / "b.log").write_text("b")
    (root / "dir" / "sub" / "c.txt").write_text("c")
    (root / ".dockerignore").write_text("**/*.log\n")
    os.symlink("/etc", root / "escape")
    ctx = BuildContext(root, StatCache(tmp_path / "stat.json"))
    [src] = ctx.sources("dir")
    names = [e.rel for e in ctx.walk(src)]
    assert names == ["", "a.txt", "sub", "sub/c.txt"]
    assert [s.name for s in ctx.sources("dir/*.txt")] == ["dir/a.txt"]
    with pytest.raises(ContextError):
        ctx.sources("escape/passwd")  # /etc resolves inside the context: not there
    with pytest.raises(ContextError, match="outside the build context"):
        ctx.sources("../x")
    with pytest.raises(ContextError):
        ctx.sources("dir/b.log")
    d1 = ctx.digest([src])
    ctx.close()
    os.utime(root / "dir" / "a.txt", (1, 1))
    ctx2 = BuildContext(root, StatCache(tmp_path / "stat.json"))
    assert ctx2.digest(ctx2.sources("dir")) == d1  # mtimes are not content
    (root / "dir" / "a.txt").write_text("changed")
    assert ctx2.digest(ctx2.sources("dir")) != d1
