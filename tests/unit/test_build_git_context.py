"""Git build contexts: which sources are git URLs, the ``#ref:subdir`` fragment, and clones of
local repositories over file:// (no root, no network)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from cargohold.builder.git_context import (
    CLONE_ERROR,
    GitContextError,
    GitSource,
    clone,
    is_git_url,
    parse_git_url,
)

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git binary")


@pytest.mark.parametrize(
    "source",
    [
        "git://example.com/repo",
        "git://example.com/repo.git#main:sub",
        "git@github.com:owner/repo.git",
        "git@example.com:repo#v1",
        "github.com/owner/repo",
        "github.com/owner/repo#:docker",
        "https://example.com/owner/repo.git",
        "http://127.0.0.1:8000/repo.git#branch:sub/dir",
        "https://example.com/repo.git?x=1",
    ],
)
def test_git_urls(source: str) -> None:
    assert is_git_url(source)


@pytest.mark.parametrize(
    "source",
    [
        "-",
        ".",
        "ctx",
        "/srv/repo.git",
        "repo.git",
        "https://example.com/context.tar.gz",
        "https://example.com/repo.git/Dockerfile",
        "https://example.com/repogit",
        "http://example.com/x#y.git",
        "ftp://example.com/repo.git",
        "file:///srv/repo.git",
        "gitlab.com/owner/repo",
    ],
)
def test_not_git_urls(source: str) -> None:
    assert not is_git_url(source)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("git://h/r.git", GitSource("git://h/r.git", None, "")),
        ("git://h/r.git#", GitSource("git://h/r.git", None, "")),
        ("git://h/r.git#main", GitSource("git://h/r.git", "main", "")),
        ("git://h/r.git#v1.0:sub", GitSource("git://h/r.git", "v1.0", "sub")),
        ("git://h/r.git#:sub/dir/", GitSource("git://h/r.git", None, "sub/dir")),
        ("git://h/r.git#:/sub", GitSource("git://h/r.git", None, "sub")),
        ("git://h/r.git#:.", GitSource("git://h/r.git", None, "")),
        ("git://h/r.git#:a/../b", GitSource("git://h/r.git", None, "b")),
        ("git://h/r.git#feature/x:a:b", GitSource("git://h/r.git", "feature/x", "a:b")),
        ("git@github.com:o/r.git#dev:d", GitSource("git@github.com:o/r.git", "dev", "d")),
        ("github.com/o/r#abc1234", GitSource("https://github.com/o/r", "abc1234", "")),
        (
            "https://h/o/r.git#refs/pull/1/head",
            GitSource("https://h/o/r.git", "refs/pull/1/head", ""),
        ),
    ],
)
def test_fragment(source: str, expected: GitSource) -> None:
    assert parse_git_url(source) == expected


@pytest.mark.parametrize("fragment", [":..", ":../x", ":a/../../x", ":/../x"])
def test_subdir_outside_refused(fragment: str) -> None:
    with pytest.raises(GitContextError, match="not within git root") as info:
        parse_git_url("git://h/r.git#" + fragment)
    assert info.value.message.startswith(CLONE_ERROR)


def test_option_like_ref_refused() -> None:
    with pytest.raises(GitContextError, match="invalid refspec: --upload-pack=x"):
        parse_git_url("git://h/r.git#--upload-pack=x")


# -- clones of a local repository ------------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str:
    env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
        GIT_CONFIG_NOSYSTEM="1",
        HOME=str(cwd),
    )
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    )
    return out.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """main: top.txt, sub/in.txt, link-out -> /etc, link-in -> sub; branch dev; tag v1."""
    src = tmp_path / "src"
    src.mkdir()
    _git(src, "init", "-q", "-b", "main")
    (src / "top.txt").write_text("main\n")
    (src / "sub").mkdir()
    (src / "sub" / "in.txt").write_text("in main\n")
    os.symlink("/etc", src / "link-out")
    os.symlink("sub", src / "link-in")
    _git(src, "add", ".")
    _git(src, "commit", "-q", "-m", "one")
    _git(src, "tag", "v1")
    _git(src, "checkout", "-q", "-b", "dev")
    (src / "top.txt").write_text("dev\n")
    _git(src, "commit", "-q", "-am", "two")
    _git(src, "checkout", "-q", "main")
    return src


@needs_git
def test_clone_default_branch_without_git_dir(repo: Path, tmp_path: Path) -> None:
    ctx = clone(GitSource(f"file://{repo}", None, ""), tmp_path / "out")
    assert ctx == tmp_path / "out"
    assert (ctx / "top.txt").read_text() == "main\n"
    assert not (ctx / ".git").exists()


@needs_git
@pytest.mark.parametrize(("ref", "content"), [("dev", "dev\n"), ("v1", "main\n")])
def test_clone_branch_and_tag(repo: Path, tmp_path: Path, ref: str, content: str) -> None:
    ctx = clone(GitSource(f"file://{repo}", ref, ""), tmp_path / "out")
    assert (ctx / "top.txt").read_text() == content


@needs_git
@pytest.mark.parametrize("length", [40, 10])
def test_clone_commit_ids(repo: Path, tmp_path: Path, length: int) -> None:
    commit = _git(repo, "rev-parse", "dev")[:length]
    ctx = clone(GitSource(f"file://{repo}", commit, ""), tmp_path / "out")
    assert (ctx / "top.txt").read_text() == "dev\n"
    assert not (ctx / ".git").exists()


@needs_git
def test_clone_other_ref(repo: Path, tmp_path: Path) -> None:
    _git(repo, "update-ref", "refs/pull/1/head", "dev")  # as GitHub publishes pull requests
    ctx = clone(GitSource(f"file://{repo}", "pull/1/head", ""), tmp_path / "out")
    assert (ctx / "top.txt").read_text() == "dev\n"


@needs_git
def test_clone_subdir_and_symlinked_subdir(repo: Path, tmp_path: Path) -> None:
    ctx = clone(GitSource(f"file://{repo}", None, "sub"), tmp_path / "a")
    assert ctx == tmp_path / "a" / "sub" and (ctx / "in.txt").read_text() == "in main\n"
    ctx = clone(GitSource(f"file://{repo}", None, "link-in"), tmp_path / "b")
    assert ctx == tmp_path / "b" / "sub"


@needs_git
@pytest.mark.parametrize(
    ("subdir", "message"),
    [
        ("link-out", '"link-out" not within git root'),
        ("top.txt", "not a directory: top.txt"),
        ("missing", "no such directory: missing"),
        (".git", "no such directory: .git"),
    ],
)
def test_clone_bad_subdir(repo: Path, tmp_path: Path, subdir: str, message: str) -> None:
    with pytest.raises(GitContextError) as info:
        clone(GitSource(f"file://{repo}", None, subdir), tmp_path / "out")
    assert info.value.message == CLONE_ERROR + "error setting git context, " + message


@needs_git
def test_clone_missing_ref_and_repo(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(GitContextError) as info:
        clone(GitSource(f"file://{repo}", "nope", ""), tmp_path / "a")
    assert info.value.message == (
        CLONE_ERROR + "fatal: Remote branch nope not found in upstream origin"
    )
    with pytest.raises(GitContextError) as info:
        clone(GitSource(f"file://{repo}", "deadbeef1", ""), tmp_path / "b")
    assert info.value.message.startswith(CLONE_ERROR)
    with pytest.raises(GitContextError) as info:
        clone(GitSource(f"file://{tmp_path}/absent", None, ""), tmp_path / "c")
    assert info.value.message.startswith(CLONE_ERROR + "fatal: ")


@needs_git
def test_clone_with_submodule(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    _git(lib, "init", "-q", "-b", "main")
    (lib / "lib.txt").write_text("lib\n")
    _git(lib, "add", ".")
    _git(lib, "commit", "-q", "-m", "lib")
    # file:// submodules are refused by default since git 2.38.1 (CVE-2022-39253)
    for key, value in {
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "protocol.file.allow",
        "GIT_CONFIG_VALUE_0": "always",
    }.items():
        monkeypatch.setenv(key, value)
    _git(repo, "submodule", "add", "-q", f"file://{lib}", "vendor/lib")
    _git(repo, "commit", "-q", "-m", "submodule")
    ctx = clone(GitSource(f"file://{repo}", None, ""), tmp_path / "out")
    assert (ctx / "vendor" / "lib" / "lib.txt").read_text() == "lib\n"
    assert not (ctx / ".git").exists() and not (ctx / "vendor" / "lib" / ".git").exists()
    assert (ctx / ".gitmodules").exists()
