"""Image config, inspect shape, change lines and manifests, against Docker's own output."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cargohold.errors import InvalidArgument, NotFound
from cargohold.oci.digest import sha256_digest
from cargohold.oci.durations import parse_go_duration
from cargohold.oci.image import (
    DOCKER_CONFIG,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    Platform,
    apply_changes,
    build_index,
    build_manifest,
    docker_container_config,
    docker_inspect_image,
    encode_json,
    history_entry,
    layer_compression,
    new_config,
    parse_index,
    parse_manifest,
    rfc3339_nano,
    select_platform,
)

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64
AMD64 = Platform("linux", "amd64")


def test_new_config_shape_and_order() -> None:
    cfg = new_config(
        config={"Cmd": ["bash"], "Env": ["PATH=/bin"], "Labels": {"b": "2", "a": "1"},
                "Volumes": {}, "WorkingDir": ""},
        diff_ids=[D1],
        history=[history_entry("/bin/sh -c #(nop) ADD file", created="2024-01-01T00:00:00Z")],
        created="2024-01-01T00:00:00Z",
        platform=AMD64,
    )
    assert list(cfg) == ["created", "architecture", "os", "config", "rootfs", "history"]
    assert cfg["config"] == {"Env": ["PATH=/bin"], "Cmd": ["bash"], "Labels": {"a": "1", "b": "2"}}
    assert list(cfg["config"]["Labels"]) == ["a", "b"]  # Go writes maps sorted
    assert cfg["rootfs"] == {"type": "layers", "diff_ids": [D1]}
    assert cfg["history"] == [{"created": "2024-01-01T00:00:00Z",
                               "created_by": "/bin/sh -c #(nop) ADD file"}]


def test_new_config_author_and_variant() -> None:
    cfg = new_config(author="me", platform=Platform("linux", "arm", "v7"),
                     created="2024-01-01T00:00:00Z")
    assert list(cfg)[:5] == ["created", "author", "architecture", "variant", "os"]
    assert (cfg["architecture"], cfg["variant"]) == ("arm", "v7")


def test_new_config_docker_extension_fields() -> None:
    cfg = new_config(comment="Imported from -", container="c" * 64,
                     container_config={"Cmd": ["sh"]}, created="T", platform=AMD64)
    assert cfg["comment"] == "Imported from -"
    assert cfg["container"] == "c" * 64
    assert cfg["container_config"]["Cmd"] == ["sh"]
    assert cfg["container_config"]["Hostname"] == ""
    out = docker_inspect_image(image_id=D1, config=cfg, size=0)
    assert (out["Comment"], out["Container"]) == ("Imported from -", "c" * 64)
    assert out["ContainerConfig"]["Cmd"] == ["sh"]


def test_inspect_comment_falls_back_to_last_history_entry() -> None:
    cfg = new_config(history=[history_entry(created="T", comment="from history")],
                     created="T", platform=AMD64)
    assert docker_inspect_image(image_id=D1, config=cfg, size=0)["Comment"] == "from history"


def test_encode_json_is_compact_and_stable() -> None:
    kwargs: dict[str, Any] = {"config": {"Labels": {"z": "é", "a": "<x>"}, "Cmd": ["sh"]},
                              "created": "2024-01-01T00:00:00Z", "platform": AMD64}
    a, b = encode_json(new_config(**kwargs)), encode_json(new_config(**kwargs))
    assert a == b and sha256_digest(a) == sha256_digest(b)
    assert b": " not in a and b", " not in a
    assert "é".encode() in a


def test_history_entry_omits_empty_fields() -> None:
    assert history_entry("x", created="T", empty_layer=True) == {
        "created": "T", "created_by": "x", "empty_layer": True}
    assert history_entry(created="T", author="a", comment="c") == {
        "created": "T", "author": "a", "comment": "c"}


@pytest.mark.parametrize(
    ("ns", "expected"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_704_164_645_123_456_789, "2024-01-02T03:04:05.123456789Z"),
        (1_704_164_645_120_000_000, "2024-01-02T03:04:05.12Z"),
    ],
)
def test_rfc3339_nano(ns: int, expected: str) -> None:
    assert rfc3339_nano(ns) == expected


# docker 20.10 `docker image inspect` of an image made by `docker import -c 'CMD ["bash"]'`
IMPORTED_CONFIG = {
    "architecture": "amd64",
    "comment": "Imported from -",
    "config": {"Cmd": ["bash"]},
    "created": "2024-01-02T03:04:05.123456789Z",
    "docker_version": "20.10.24",
    "os": "linux",
    "rootfs": {"type": "layers", "diff_ids": [D2]},
    "history": [{"created": "2024-01-02T03:04:05.123456789Z", "comment": "Imported from -"}],
}
EMPTY_CONTAINER_CONFIG = {
    "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
    "AttachStdout": False, "AttachStderr": False, "Tty": False, "OpenStdin": False,
    "StdinOnce": False, "Env": None, "Cmd": None, "Image": "", "Volumes": None,
    "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": None,
}


def test_docker_inspect_image_matches_docker_20_10() -> None:
    out = docker_inspect_image(
        image_id=D1, config=IMPORTED_CONFIG, size=5_578_424,
        repo_tags=["docker.io/library/myimg:latest", "localhost/x:1"],
        repo_digests=["quay.io/a/b@" + D3],
        graph_driver_data={"UpperDir": "/u"},
    )
    assert list(out) == [
        "Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "Container",
        "ContainerConfig", "DockerVersion", "Author", "Config", "Architecture", "Os", "Size",
        "VirtualSize", "GraphDriver", "RootFS", "Metadata",
    ]
    assert out["RepoTags"] == ["myimg:latest", "localhost/x:1"]
    assert out["RepoDigests"] == ["quay.io/a/b@" + D3]
    assert out["Comment"] == "Imported from -"
    assert out["ContainerConfig"] == EMPTY_CONTAINER_CONFIG
    assert list(out["ContainerConfig"]) == list(EMPTY_CONTAINER_CONFIG)
    assert out["Config"] == {**EMPTY_CONTAINER_CONFIG, "Cmd": ["bash"]}
    assert out["Size"] == out["VirtualSize"] == 5_578_424
    assert out["GraphDriver"] == {"Data": {"UpperDir": "/u"}, "Name": "overlay2"}
    assert out["RootFS"] == {"Type": "layers", "Layers": [D2]}
    assert out["Metadata"] == {"LastTagTime": "0001-01-01T00:00:00Z"}
    json.dumps(out)  # serialisable as is


def test_container_config_keeps_docker_order_and_omitempty() -> None:
    cfg = docker_container_config({
        "Healthcheck": {"Test": ["NONE"]}, "ExposedPorts": {"80/tcp": {}},
        "StopSignal": "SIGTERM", "Shell": ["/bin/bash", "-c"], "Labels": {"b": "1", "a": "2"},
    })
    keys = list(cfg)
    assert keys.index("ExposedPorts") == keys.index("AttachStderr") + 1
    assert keys.index("Healthcheck") == keys.index("Cmd") + 1
    assert keys[-3:] == ["Labels", "StopSignal", "Shell"]
    assert list(cfg["Labels"]) == ["a", "b"]
    assert "ArgsEscaped" not in cfg and "MacAddress" not in cfg


BASE = {"Env": ["PATH=/usr/bin", "HOME=/root"], "Cmd": ["bash"]}

CHANGES = [
    (["CMD echo hi"], {"Cmd": ["/bin/sh", "-c", "echo hi"]}),
    (['CMD ["nginx", "-g", "daemon off;"]'], {"Cmd": ["nginx", "-g", "daemon off;"]}),
    (['ENTRYPOINT ["/entry"]'], {"Entrypoint": ["/entry"], "Cmd": None}),
    (['ENTRYPOINT ["/entry"]', "CMD run"],
     {"Entrypoint": ["/entry"], "Cmd": ["/bin/sh", "-c", "run"]}),
    (["ENTRYPOINT exec top -b"], {"Entrypoint": ["/bin/sh", "-c", "exec top -b"], "Cmd": None}),
    (['ENV A=1 B="two words" C=$HOME/x D=${NOPE:-dflt}'],
     {"Env": ["PATH=/usr/bin", "HOME=/root", "A=1", "B=two words", "C=/root/x", "D=dflt"]}),
    (["ENV HOME /home/me"], {"Env": ["PATH=/usr/bin", "HOME=/home/me"]}),
    (["ENV MSG hello world"], {"Env": ["PATH=/usr/bin", "HOME=/root", "MSG=hello world"]}),
    (["ENV A='$HOME' B=\\$HOME"], {"Env": ["PATH=/usr/bin", "HOME=/root", "A=$HOME", "B=$HOME"]}),
    (["ENV A=1 \\", "    B=2"], {"Env": ["PATH=/usr/bin", "HOME=/root", "A=1", "B=2"]}),
    (["EXPOSE 80 53/udp 8000-8002"],
     {"ExposedPorts": {"53/udp": {}, "80/tcp": {}, "8000/tcp": {}, "8001/tcp": {},
                       "8002/tcp": {}}}),
    (['LABEL version="1.0" maintainer=me'], {"Labels": {"maintainer": "me", "version": "1.0"}}),
    (["WORKDIR /app", "WORKDIR sub/../src"], {"WorkingDir": "/app/src"}),
    (["WORKDIR rel"], {"WorkingDir": "/rel"}),
    (["USER nobody:nogroup"], {"User": "nobody:nogroup"}),
    (['VOLUME ["/data", "/logs"]'], {"Volumes": {"/data": {}, "/logs": {}}}),
    (["VOLUME /b /a"], {"Volumes": {"/a": {}, "/b": {}}}),
    (["ONBUILD RUN make"], {"OnBuild": ["RUN make"]}),
    (["HEALTHCHECK --interval=5s --timeout=1m30s --retries=3 CMD curl -f http://localhost/"],
     {"Healthcheck": {"Test": ["CMD-SHELL", "curl -f http://localhost/"],
                      "Interval": 5_000_000_000, "Timeout": 90_000_000_000, "Retries": 3}}),
    (['HEALTHCHECK CMD ["/check", "-q"]'], {"Healthcheck": {"Test": ["CMD", "/check", "-q"]}}),
    (["HEALTHCHECK NONE"], {"Healthcheck": {"Test": ["NONE"]}}),
    (["cmd lower-case works"], {"Cmd": ["/bin/sh", "-c", "lower-case works"]}),
    (["# a comment", "", "USER x"], {"User": "x"}),
]


@pytest.mark.parametrize(("changes", "expected"), CHANGES)
def test_apply_changes(changes: list[str], expected: dict[str, Any]) -> None:
    assert apply_changes(BASE, changes) == {**BASE, **expected}


def test_apply_changes_does_not_mutate_input() -> None:
    base = {"Env": ["A=1"], "Labels": {"x": "y"}}
    apply_changes(base, ["ENV A=2", "LABEL z=w"])
    assert base == {"Env": ["A=1"], "Labels": {"x": "y"}}


CHANGE_ERRORS = [
    (["FOO bar"], "foo is not a valid change command"),
    (["MAINTAINER me"], "maintainer is not a valid change command"),
    (["RUN make"], "run is not a valid change command"),
    (["STOPSIGNAL SIGKILL"], "stopsignal is not a valid change command"),
    (["EXPOSE abc"], "invalid containerPort: abc"),
    (["EXPOSE 80/xyz"], "invalid proto: xyz"),
    (["ENV"], "ENV requires at least one argument"),
    (["ENV ONLYNAME"], "ENV must have two arguments"),
    (["ENV A=1 B"], 'Syntax error - can\'t find = in "B". Must be of the form: name=value'),
    (["ONBUILD ONBUILD RUN x"], "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
    (["ONBUILD FROM x"], "FROM isn't allowed as an ONBUILD trigger"),
    (["HEALTHCHECK --interval=1us CMD x"], 'Interval "--interval" cannot be less than 1ms'),
    (["HEALTHCHECK --retries=-1 CMD x"], "--retries cannot be negative"),
    (["HEALTHCHECK --bogus=1 CMD x"], "Unknown flag: bogus"),
    (["HEALTHCHECK RUN x"], 'Unknown type "RUN" in HEALTHCHECK (try CMD)'),
    (['VOLUME [""]'], "VOLUME specified can not be an empty string"),
]


@pytest.mark.parametrize(("changes", "message"), CHANGE_ERRORS)
def test_apply_changes_errors(changes: list[str], message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        apply_changes(BASE, changes)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "ns"),
    [("0", 0), ("30s", 30_000_000_000), ("1m30s", 90_000_000_000), ("1.5h", 5_400_000_000_000),
     ("500ms", 500_000_000), ("10us", 10_000)],
)
def test_parse_go_duration(text: str, ns: int) -> None:
    assert parse_go_duration(text) == ns


@pytest.mark.parametrize("text", ["", "5", "1x", "s", "1m 30s"])
def test_parse_go_duration_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid duration"):
        parse_go_duration(text)


def test_build_manifest_oci_and_docker() -> None:
    oci = build_manifest(D1, 1234, [(D2, 100, OCI_LAYER_GZIP)], oci=True)
    assert oci == {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1,
                   "size": 1234},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": D2, "size": 100}],
    }
    docker = build_manifest(D1, 1234, [(D2, 100, DOCKER_LAYER_GZIP)], oci=False)
    assert docker["mediaType"] == DOCKER_MANIFEST
    assert list(docker["config"]) == ["mediaType", "size", "digest"]  # distribution's order
    assert docker["config"]["mediaType"] == DOCKER_CONFIG
    for built in (oci, docker):
        parsed = parse_manifest(encode_json(built))
        assert parsed.config.digest == D1 and parsed.config.size == 1234
        assert [(x.digest, x.size) for x in parsed.layers] == [(D2, 100)]


def test_parse_manifest_without_media_type_is_oci() -> None:
    data = json.dumps({"schemaVersion": 2, "config": {"mediaType": "x", "digest": D1, "size": 1},
                       "layers": []})
    assert parse_manifest(data).media_type == OCI_MANIFEST


MANIFEST_ERRORS = [
    (b"{not json", "invalid manifest"),
    (b"[]", "invalid manifest: expected object, got array"),
    (json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}).encode(),
     "schema 1 is not supported"),
    (json.dumps({"schemaVersion": 1,
                 "mediaType": "application/vnd.docker.distribution.manifest.v1+prettyjws"})
     .encode(), "schema 1 is not supported"),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(),
     "is an index"),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1},
                 "layers": []}).encode(),
     "invalid manifest: config.digest: expected a sha256 digest"),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "config": {"mediaType": "x", "digest": D1, "size": -1},
                 "layers": []}).encode(), r"invalid manifest: config.size: expected integer >= 0"),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                 "config": {"mediaType": "x", "digest": D1, "size": 1}}).encode(),
     "invalid manifest: missing required field layers"),
]


@pytest.mark.parametrize(("data", "message"), MANIFEST_ERRORS)
def test_parse_manifest_errors(data: bytes, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        parse_manifest(data)


def _index(entries: list[tuple[str, Platform | None]]) -> bytes:
    return encode_json(build_index([(d, 10, OCI_MANIFEST, p) for d, p in entries]))


def test_select_platform() -> None:
    idx = parse_index(_index([
        (D1, Platform("linux", "amd64")),
        (D2, Platform("linux", "arm64", "v8")),
        (D3, Platform("unknown", "unknown")),  # buildkit attestation manifest
    ]))
    assert select_platform(idx, "linux", "amd64").digest == D1
    assert select_platform(idx, "linux", "arm64").digest == D2
    assert select_platform(idx, "linux", "arm64", "v8").digest == D2
    with pytest.raises(NotFound) as info:
        select_platform(idx, "linux", "s390x")
    assert str(info.value) == "no matching manifest for linux/s390x in the manifest list entries"


def test_select_platform_arm_variants() -> None:
    idx = parse_index(_index([(D1, Platform("linux", "arm", "v6")),
                              (D2, Platform("linux", "arm", "v7"))]))
    assert select_platform(idx, "linux", "arm").digest == D2  # v7 is arm's default
    assert select_platform(idx, "linux", "arm", "v6").digest == D1


def test_parse_docker_manifest_list() -> None:
    data = json.dumps({"schemaVersion": 2, "mediaType": DOCKER_MANIFEST_LIST, "manifests": [
        {"mediaType": DOCKER_MANIFEST, "digest": D1, "size": 527,
         "platform": {"architecture": "amd64", "os": "linux"}}]})
    idx = parse_index(data)
    assert idx.media_type == DOCKER_MANIFEST_LIST
    assert idx.manifests[0].platform == Platform("linux", "amd64")
    with pytest.raises(InvalidArgument, match="unsupported media type"):
        parse_index(encode_json(build_manifest(D1, 1, [])))


@pytest.mark.parametrize(
    ("media_type", "expected"),
    [(OCI_LAYER_GZIP, "gzip"), (OCI_LAYER_ZSTD, "zstd"), (DOCKER_LAYER_GZIP, "gzip"),
     ("application/vnd.oci.image.layer.v1.tar", "none"), (DOCKER_CONFIG, None)],
)
def test_layer_compression(media_type: str, expected: str | None) -> None:
    assert layer_compression(media_type) == expected
