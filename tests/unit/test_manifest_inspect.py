"""``manifest inspect`` against the in-process fake registry: Docker's three output shapes
(a manifest re-indented as served, a list rebuilt from its descriptors, ``--verbose``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_fake import FakeRegistry, digest_of, make_image

from cargohold.cli.commands.manifest_inspect import go_indent
from cargohold.cli.main import main

LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry().start()
    try:
        yield reg
    finally:
        reg.close()


def cli(tmp: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--root", str(tmp / "root"), "--runroot", str(tmp / "run"),
                 "--storage-driver", "vfs", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_go_indent_keeps_tokens_and_empty_containers() -> None:
    raw = b' {"a":[ ],"b":{},"c":"x\\"}{, :","d":[1,2.50],"e":{"f":null}}  '
    assert go_indent(raw, "\t") == (
        '{\n\t"a": [],\n\t"b": {},\n\t"c": "x\\"}{, :",\n\t"d": [\n\t\t1,\n\t\t2.50\n\t],\n'
        '\t"e": {\n\t\t"f": null\n\t}\n}  ')


def test_manifest_list_and_verbose(fake: FakeRegistry, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARGOHOLD_CONFIG", str(tmp_path / "none.toml"))
    img = make_image([{"etc/motd": b"hi\n"}])
    fake.add_image("team/app", "1", img)
    host = f"127.0.0.1:{fake.port}"
    code, out, err = cli(tmp_path, capsys, "manifest", "inspect", "--insecure",
                         f"{host}/team/app:1")
    assert (code, err) == (0, "")
    assert out == go_indent(img.manifest, "\t") + "\n"
    # a list: rebuilt from its entries as docker/distribution marshals it (3 spaces)
    entries = [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "digest": img.manifest_digest, "size": len(img.manifest),
                "platform": {"os": "linux", "architecture": "arm", "variant": "v7"},
                "annotations": {"dropped": "yes"}}]
    body = json.dumps({"schemaVersion": 2, "mediaType": LIST, "manifests": entries}).encode()
    fake.manifests["team/app:multi"] = (body, LIST)
    code, out, _ = cli(tmp_path, capsys, "manifest", "inspect", "--insecure",
                       f"{host}/team/app:multi")
    assert code == 0 and out == (
        '{\n   "schemaVersion": 2,\n'
        f'   "mediaType": "{LIST}",\n'
        '   "manifests": [\n      {\n'
        '         "mediaType": "application/vnd.docker.distribution.manifest.v2+json",\n'
        f'         "size": {len(img.manifest)},\n'
        f'         "digest": "{img.manifest_digest}",\n'
        '         "platform": {\n            "architecture": "arm",\n'
        '            "os": "linux",\n            "variant": "v7"\n         }\n'
        '      }\n   ]\n}\n')
    code, out, _ = cli(tmp_path, capsys, "manifest", "inspect", "--insecure", "-v",
                       f"{host}/team/app:multi")
    (item,) = json.loads(out)
    assert item["Ref"] == f"{host}/team/app:multi@{img.manifest_digest}"
    assert item["Descriptor"] == {"mediaType": entries[0]["mediaType"],
                                  "digest": img.manifest_digest, "size": len(img.manifest),
                                  "platform": {"architecture": "arm", "os": "linux",
                                               "variant": "v7"}}
    assert item["SchemaV2Manifest"] == json.loads(img.manifest)
    assert out.startswith('[\n\t{\n\t\t"Ref": ')
    code, out, _ = cli(tmp_path, capsys, "manifest", "inspect", "--insecure", "-v",
                       f"{host}/team/app:1")
    one = json.loads(out)
    assert one["Descriptor"]["platform"] == {"architecture": "amd64", "os": "linux"}
    assert one["Descriptor"]["digest"] == digest_of(img.manifest)
    # nothing was pulled
    assert cli(tmp_path, capsys, "images", "-q")[1] == ""
    code, out, err = cli(tmp_path, capsys, "manifest", "inspect", "--insecure",
                         f"{host}/team/app:nope")
    assert (code, out, err) == (1, "", f"no such manifest: {host}/team/app:nope\n")
