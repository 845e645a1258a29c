"""Registries on this machine need no configuration, as with dockerd: 127.0.0.0/8 and ::1 (an
address, or a name resolving to one) are insecure (HTTPS without verification, then plain
HTTP); any other host keeps TLS unless the configuration file lists it.  Names are resolved
through a stub here, so no lookup leaves the machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from registry_fake import FakeRegistry, digest_of, make_image

from cargohold.config import Settings
from cargohold.engine import Engine
from cargohold.engine.images.requests import PullRequest, PushRequest
from cargohold.engine.messages import discard
from cargohold.transport.registry import hosts
from cargohold.transport.registry.hosts import RegistryConfig

RESOLVED = {
    "localhost": ["127.0.0.1", "::1"],
    "registry.internal": ["127.0.1.1"],
    "v6only.local": ["::1"],
    "registry.example.com": ["203.0.113.7", "2001:db8::7"],
    "lan-registry": ["10.1.2.3"],
}


@pytest.fixture(autouse=True)
def resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def resolve(name: str) -> list[str]:
        asked.append(name)
        return RESOLVED.get(name, [])

    monkeypatch.setattr(hosts, "resolve_host", resolve, raising=False)
    return asked


@pytest.mark.parametrize(("host", "insecure"), [
    ("127.0.0.1:5000", True),
    ("127.8.9.10", True),
    ("[::1]:5000", True),
    ("localhost:5000", True),
    ("registry.internal:443", True),     # resolves to 127.0.1.1
    ("v6only.local:5000", True),
    ("registry.example.com", False),
    ("registry.example.com:5000", False),
    ("203.0.113.7:5000", False),
    ("lan-registry:5000", False),
    ("unresolvable:5000", False),
])
def test_loopback_is_insecure_without_configuration(host: str, insecure: bool) -> None:
    config = RegistryConfig()
    assert config.is_insecure(host) is insecure
    endpoint = config.endpoint(host)
    assert endpoint.url == f"https://{host}"
    assert (endpoint.tls_verify, endpoint.http_fallback) == (not insecure, insecure)


def test_configured_entries_still_count_and_docker_hub_is_never_resolved(
        resolver: list[str]) -> None:
    config = RegistryConfig(insecure=("lan-registry:5000", "10.0.0.0/8"))
    assert config.is_insecure("lan-registry:5000")
    assert config.is_insecure("lan-registry:6000")  # 10.1.2.3 is in 10.0.0.0/8
    assert not config.is_insecure("registry.example.com:5000")
    assert config.insecure_cidrs() == ["10.0.0.0/8", "::1/128", "127.0.0.0/8"]
    resolver.clear()
    assert config.endpoint("docker.io").tls_verify
    assert resolver == []  # Docker Hub is secure whatever its name resolves to
    assert not config.is_insecure("localhost:5000", resolve=False)


def test_pull_and_push_to_a_plain_http_registry_on_localhost(tmp_path: Path) -> None:
    """The tutorial's "registry on localhost:5000, push, pull" with no configuration file."""
    fake = FakeRegistry().start()
    engine = Engine(Settings(root=tmp_path / "root", runroot=tmp_path / "run",
                             storage_driver="vfs"))
    engine.settings.extra["config_file"] = str(tmp_path / "absent.toml")  # no configuration
    try:
        image = make_image([{"etc/motd": b"hi\n"}])
        fake.add_image("x", "1", image)
        name = f"localhost:{fake.port}/x:1"
        pulled = engine.registry.pull(PullRequest(from_image=name), discard)
        assert [r.image_id for r in pulled] == [digest_of(image.config)]
        engine.image_store.tag(digest_of(image.config), f"localhost:{fake.port}/y:2")
        engine.registry.push(PushRequest(name=f"localhost:{fake.port}/y:2"), discard)
        assert any(p == "/v2/y/manifests/2" and m == "PUT" for m, p, _ in fake.requests)
    finally:
        fake.close()
