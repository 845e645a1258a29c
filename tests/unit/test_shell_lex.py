"""Word expansion (BuildKit shell lexer semantics)."""

from __future__ import annotations

import re

import pytest

from cargohold.builder.shell_lex import (
    MAX_DEPTH,
    MAX_RESULT,
    EnvExpander,
    ExpansionError,
    ShellLex,
    process_word,
    process_words,
)

ENV = {
    "HOME": "/root",
    "EMPTY": "",
    "NAME": "cargo",
    "FILE": "archive.tar.gz",
    "PATHS": "/usr/local/bin:/usr/bin:/bin",
    "SPACED": "one  two",
    "PADDED": "  lead trail  ",
    "UNI": "ünï",
}


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("plain", "plain"),
        ("$HOME/x", "/root/x"),
        ("${HOME}x", "/rootx"),
        ("$NAME.conf", "cargo.conf"),
        ("$UNSET-", "-"),
        ("$", "$"),
        ("a$.b", "a$.b"),
        ("$1x", "x"),
        ("\\$HOME", "$HOME"),
        ("\\\\$HOME", "\\/root"),
        ("'$HOME'", "$HOME"),
        ('"$HOME"', "/root"),
        ('"\\$HOME"', "$HOME"),
        ('"a\\qb"', "a\\qb"),
        ("'a\\qb'", "a\\qb"),
        ("a\\qb", "aqb"),
        ('it"\'"s', "it's"),
        ("trailing\\", "trailing"),
        ("${UNSET:-fallback}", "fallback"),
        ("${EMPTY:-fallback}", "fallback"),
        ("${EMPTY-fallback}", ""),
        ("${UNSET-fallback}", "fallback"),
        ("${NAME:-fallback}", "cargo"),
        ("${NAME:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${UNSET+alt}", ""),
        ("${EMPTY?}", ""),
        ("${NAME:?must be set}", "cargo"),
        ("${UNSET:-$HOME/sub}", "/root/sub"),
        ("${UNSET:-${ALSO:-deep}}", "deep"),
        ("${UNSET:-\\$HOME}", "$HOME"),
        ("${UNSET:-a}}", "a}"),
        ("${UNSET:-x y}", "x y"),
        ("${FILE#*.}", "tar.gz"),
        ("${FILE##*.}", "gz"),
        ("${FILE%.*}", "archive.tar"),
        ("${FILE%%.*}", "archive"),
        ("${FILE#nomatch}", "archive.tar.gz"),
        ("${FILE#archive?}", "tar.gz"),
        ("${PATHS/:/;}", "/usr/local/bin;/usr/bin:/bin"),
        ("${PATHS//:/;}", "/usr/local/bin;/usr/bin;/bin"),
        ("${PATHS//\\//_}", "_usr_local_bin:_usr_bin:_bin"),
        ("${FILE/.*/}", "archive"),
        ("${FILE//?/x}", "xxxxxxxxxxxxxx"),
        ("${NAME//*/all}", "all"),
        ("${UNSET//a/b}", ""),
        ("${FILE/#arch/X}", "archive.tar.gz"),
        ("${FILE#\\*}", "archive.tar.gz"),
        ("$UNI-${UNI%ï}", "ünï-ün"),
    ],
)
def test_process_word(word: str, expected: str) -> None:
    assert process_word(word, ENV) == expected


@pytest.mark.parametrize(
    ("word", "message"),
    [
        ("${}", "bad substitution"),
        ("${:-x}", "bad substitution"),
        ("${{NAME}", "bad substitution"),
        ("${NAME", "missing '}'"),
        ("${NAME:-x", "missing '}'"),
        ("${NAME:=x}", "unsupported modifier (:=)"),
        ("${NAME:#x}", "unsupported modifier (:#)"),
        ("${NAME/x}", "missing '/'"),
        ("${UNSET?}", "UNSET: is not allowed to be unset"),
        ("${EMPTY:?}", "EMPTY: is not allowed to be empty"),
        ("${UNSET:?set it please}", "UNSET: set it please"),
        ("'open", "matching single-quote"),
        ('"open', "matching double-quote"),
        ("${FILE#\\q}", "invalid escape"),
    ],
)
def test_process_word_errors(word: str, message: str) -> None:
    with pytest.raises(ExpansionError, match=re.escape(message)) as info:
        process_word(word, ENV)
    assert str(info.value).startswith("failed to process ")


@pytest.mark.parametrize(
    ("word", "expected"),
    [
        ("80 443/tcp", ["80", "443/tcp"]),
        ("  spaced   out  ", ["spaced", "out"]),
        ("$SPACED", ["one", "two"]),
        ('"$SPACED"', ["one  two"]),
        ("x${PADDED}y", ["x", "lead", "trail", "y"]),
        ('x"${PADDED}"y', ["x  lead trail  y"]),
        ("a\\ b c", ["a b", "c"]),
        ('a\\" b', ['a"', "b"]),
        ("pre${UNSET:-post}", ["prepost"]),
        ('""', []),
        ("'' x", ["x"]),
        ("$UNSET", []),
    ],
)
def test_process_words(word: str, expected: list[str]) -> None:
    assert process_words(word, ENV) == expected


def test_backtick_escape() -> None:
    lex = ShellLex("`")
    assert lex.process_word("c:\\path`$HOME", ENV) == "c:\\path$HOME"
    assert lex.process_word('"a`"b"', ENV) == 'a"b'


def test_matches_are_reported() -> None:
    res = ShellLex().process_word_with_matches("$HOME ${UNSET:-x} ${EMPTY}", ENV)
    assert res.matched == {"HOME", "EMPTY"}
    assert res.unmatched == {"UNSET"}


def test_skip_unset_env_keeps_references() -> None:
    lex = ShellLex(skip_unset_env=True)
    assert (
        lex.process_word("$HOME $NOPE ${NOPE} ${NOPE:-d}", ENV) == "/root $NOPE ${NOPE} ${NOPE:-d}"
    )


def test_expander_uses_environment_before_the_instruction() -> None:
    ex = EnvExpander({"a": "old"})
    assert [ex.word("1"), ex.word("$a")] == ["1", "old"]
    assert ex.matched == {"a"}
    # heredoc bodies: quotes stay, escapes are still processed (as BuildKit's ExpandRaw)
    assert EnvExpander(ENV).raw('"$HOME" \\$x') == '"/root" $x'


def test_deep_nesting_is_refused() -> None:
    word = "${A:-" * (MAX_DEPTH + 5) + "x" + "}" * (MAX_DEPTH + 5)
    with pytest.raises(ExpansionError, match="nested deeper"):
        process_word(word, {})
    ok = "${A:-" * 10 + "x" + "}" * 10
    assert process_word(ok, {}) == "x"


def test_huge_results_are_refused() -> None:
    big = {"B": "x" * (MAX_RESULT // 2 + 1)}
    with pytest.raises(ExpansionError, match="exceeds"):
        process_word("$B$B", big)
    with pytest.raises(ExpansionError, match="exceeds"):
        process_word("${B//x/yy}", big)


def test_hostile_pattern_is_bounded() -> None:
    env = {"V": "a" * 5000}
    with pytest.raises(ExpansionError, match="too expensive"):
        process_word("${V//*a*a*a*a*b/x}", env)
