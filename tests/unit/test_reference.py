"""Reference parsing and normalisation, checked against Docker's own results."""

from __future__ import annotations

import pytest

from cargohold.errors import InvalidArgument
from cargohold.oci.reference import (
    is_short_id_candidate,
    normalize,
    parse_reference,
)

DIGEST = "sha256:" + "ab" * 32

# input -> (str(ref), familiar form, normalize(input))
VALID = [
    ("centos:7", "docker.io/library/centos:7", "centos:7", "docker.io/library/centos:7"),
    ("centos", "docker.io/library/centos", "centos", "docker.io/library/centos:latest"),
    ("user/app", "docker.io/user/app", "user/app", "docker.io/user/app:latest"),
    ("myuser/app:1", "docker.io/myuser/app:1", "myuser/app:1", "docker.io/myuser/app:1"),
    ("docker.io/library/centos", "docker.io/library/centos", "centos",
     "docker.io/library/centos:latest"),
    ("index.docker.io/foo:1", "docker.io/library/foo:1", "foo:1", "docker.io/library/foo:1"),
    ("docker.io/library/a/b", "docker.io/library/a/b", "library/a/b",
     "docker.io/library/a/b:latest"),
    ("localhost/x", "localhost/x", "localhost/x", "localhost/x:latest"),
    ("localhost/x:latest", "localhost/x:latest", "localhost/x:latest", "localhost/x:latest"),
    ("localhost:5000/a/b:1", "localhost:5000/a/b:1", "localhost:5000/a/b:1",
     "localhost:5000/a/b:1"),
    ("quay.io/a/b:1", "quay.io/a/b:1", "quay.io/a/b:1", "quay.io/a/b:1"),
    ("[::1]:5000/x:y", "[::1]:5000/x:y", "[::1]:5000/x:y", "[::1]:5000/x:y"),
    # no slash: "localhost:5000" is the image localhost with tag 5000
    ("localhost:5000", "docker.io/library/localhost:5000", "localhost:5000",
     "docker.io/library/localhost:5000"),
    (f"busybox@{DIGEST}", f"docker.io/library/busybox@{DIGEST}", f"busybox@{DIGEST}",
     f"docker.io/library/busybox@{DIGEST}"),
    (f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}",
     f"busybox:1.36@{DIGEST}", f"docker.io/library/busybox:1.36@{DIGEST}"),
    ("a__b/c.d-e:Tag_1.x-y", "docker.io/a__b/c.d-e:Tag_1.x-y", "a__b/c.d-e:Tag_1.x-y",
     "docker.io/a__b/c.d-e:Tag_1.x-y"),
    ("a--b", "docker.io/library/a--b", "a--b", "docker.io/library/a--b:latest"),
]


@pytest.mark.parametrize(("text", "full", "short", "normalized"), VALID)
def test_valid_references(text: str, full: str, short: str, normalized: str) -> None:
    ref = parse_reference(text)
    assert str(ref) == full
    assert ref.familiar() == short
    assert normalize(text) == normalized


def test_fields_and_repository() -> None:
    ref = parse_reference(f"quay.io/a/b:1@{DIGEST}")
    assert (ref.domain, ref.path, ref.tag, ref.digest) == ("quay.io", "a/b", "1", DIGEST)
    assert ref.repository == "quay.io/a/b"
    assert ref.name_familiar == "quay.io/a/b"
    assert parse_reference("centos").name_familiar == "centos"
    assert parse_reference("centos").with_default_tag().tag == "latest"
    assert parse_reference(f"centos@{DIGEST}").with_default_tag().tag is None


INVALID = [
    ("", "invalid reference format"),
    ("Centos", "invalid reference format: repository name must be lowercase"),
    ("user/App:1", "invalid reference format: repository name must be lowercase"),
    ("foo:", "invalid reference format"),
    ("foo::1", "invalid reference format"),
    ("-foo", "invalid reference format"),
    ("foo___bar", "invalid reference format"),
    ("foo/", "invalid reference format"),
    ("foo//bar", "invalid reference format"),
    ("foo:.tag", "invalid reference format"),
    ("foo:" + "a" * 129, "invalid reference format"),
    ("foo@sha256:abc", "invalid reference format"),
    ("foo@sha256:" + "a" * 40, "invalid reference format: invalid checksum digest length"),
    ("a b", "invalid reference format"),
    ("a" * 64, f"invalid repository name ({'a' * 64}), cannot specify 64-byte hexadecimal "
     "strings"),
    ("x/" + "a" * 260, "invalid reference format: repository name must not be more than "
     "255 characters"),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_references(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        parse_reference(text)
    assert str(info.value) == message


def test_tag_max_length_accepted() -> None:
    assert parse_reference("foo:" + "a" * 128).tag == "a" * 128


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("abc123", True),
        ("0", True),
        ("sha256:abc", True),
        ("a" * 64, True),
        ("a" * 65, False),
        ("ABC", False),
        ("centos", False),
        ("abc:1", False),
        ("", False),
    ],
)
def test_short_id_candidate(text: str, expected: bool) -> None:
    assert is_short_id_candidate(text) is expected


@pytest.mark.parametrize("text", ["busybox:latest\n", "busybox\n", f"busybox@{DIGEST}\n"])
def test_a_trailing_newline_is_not_part_of_a_valid_reference(text: str) -> None:
    """Python's ``$`` also matches before a final newline; every pattern here ends at ``\\Z``."""
    with pytest.raises(InvalidArgument):
        parse_reference(text)


def test_digests_and_ids_end_where_they_end() -> None:
    from cargohold.oci.digest import is_digest

    assert is_digest(DIGEST) and not is_digest(DIGEST + "\n")
    assert not is_short_id_candidate("abc123\n")
