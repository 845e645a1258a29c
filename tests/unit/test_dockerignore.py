""".dockerignore reading and Docker's pattern semantics."""

from __future__ import annotations

from pathlib import Path

import pytest

from cargohold.builder.dockerignore import IgnoreMatcher, clean_path, read_patterns
from cargohold.errors import InvalidArgument


def test_read_patterns_normalises_lines() -> None:
    text = (
        "\ufeff# comment\n\n  *.pyc  \n/abs/path\n! /neg//x/../y\n  # not a comment\n./a/./b/\n/\n"
    )
    assert read_patterns(text) == ["*.pyc", "abs/path", "!neg/y", "# not a comment", "a/b", "/"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a//b/./c/", "a/b/c"),
        ("../x", "../x"),
        ("a/../../b", "../b"),
        ("/../a", "/a"),
        ("", "."),
        ("//a", "/a"),
    ],
)
def test_clean_path(path: str, expected: str) -> None:
    assert clean_path(path) == expected


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["*.log"], "x.log", True),
        (["*.log"], "dir/x.log", False),  # * does not cross directories
        (["*/*.log"], "dir/x.log", True),
        (["**/*.log"], "a/b/c/x.log", True),
        (["**/*.log"], "x.log", True),
        (["a/**/z"], "a/z", True),
        (["a/**/z"], "a/b/c/z", True),
        (["a/**/z"], "b/a/z", False),
        (["dir"], "dir/sub/file", True),  # a parent match excludes the contents
        (["dir/"], "dir/file", True),
        (["dir/*"], "dir", False),
        (["dir/**"], "dir/x/y", True),
        (["dir/**"], "dir", False),
        (["fo?"], "foo", True),
        (["fo?"], "fo/", False),
        (["f[a-c]o"], "fbo", True),
        (["f[^a-c]o"], "fbo", False),
        (["f[^a-c]o"], "fzo", True),
        (["\\*star"], "*star", True),
        (["\\*star"], "xstar", False),
        (["a.b"], "axb", False),
        (["x+(y)"], "x+(y)", True),
        (["**"], "anything/at/all", True),
        (["foo**"], "foobar/x", True),
        (["*", "!keep"], "keep", False),
        (["*", "!keep"], "other", True),
        (["*.md", "!README.md", "README*"], "README.md", True),  # last match wins
        (["!README.md", "*.md"], "README.md", True),
        (["docs", "!docs/keep"], "docs/keep/file", False),
        (["docs", "!docs/keep"], "docs/other", True),
        (["/abs"], "abs", True),
        ([], "x", False),
        (["*"], ".", False),
    ],
)
def test_matches(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreMatcher.from_text("\n".join(patterns)).matches(path) is excluded


def test_may_contain_exceptions_lets_the_walker_skip_dirs() -> None:
    m = IgnoreMatcher.from_text("node_modules\nbuild\n!build/out/**\nvendor\n!**/LICENSE\n")
    assert m.matches("build") and m.may_contain_exceptions("build")
    assert m.may_contain_exceptions("vendor")  # !**/LICENSE could be anywhere
    m2 = IgnoreMatcher.from_text("node_modules\nbuild\n!build/out\ncache\n")
    assert m2.matches("node_modules") and not m2.may_contain_exceptions("node_modules")
    assert m2.may_contain_exceptions("build")
    assert not m2.may_contain_exceptions("cache")
    assert m2.may_contain_exceptions(".")
    m3 = IgnoreMatcher.from_text("src\n!src/*/keep.txt\n")
    assert m3.may_contain_exceptions("src") and m3.may_contain_exceptions("src/a")
    assert not m3.may_contain_exceptions("lib")
    assert not m3.may_contain_exceptions("src/a/b")  # keep.txt sits one level down only


def test_from_file(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text(".git\n*.tmp\n!important.tmp\n")
    m = IgnoreMatcher.from_file(tmp_path / ".dockerignore")
    assert m.matches(".git/config") and m.matches("a.tmp") and not m.matches("important.tmp")
    assert not IgnoreMatcher.from_file(tmp_path / "missing").matches("anything")


def test_bad_patterns() -> None:
    with pytest.raises(InvalidArgument, match="illegal exclusion pattern"):
        IgnoreMatcher(["!"])
    with pytest.raises(InvalidArgument, match="syntax error in pattern"):
        IgnoreMatcher(["[unclosed"])
