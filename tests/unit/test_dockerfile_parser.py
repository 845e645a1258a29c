"""Dockerfile parser: golden files in tests/data/dockerfile/<case>/ plus targeted cases.

Regenerate the golden ``result`` files after an intended change with
``CARGOHOLD_REGEN_GOLDEN=1 pytest tests/unit/test_dockerfile_parser.py`` and review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cargohold.builder.instructions import parse_dockerfile
from cargohold.builder.parser import DockerfileError, parse
from cargohold.errors import InvalidArgument

DATA = Path(__file__).resolve().parent.parent / "data" / "dockerfile"
CASES = sorted(p.name for p in DATA.iterdir() if (p / "Dockerfile").is_file())


def render(text: str) -> str:
    """The golden dump: directives, one line per node, then the stages."""
    result = parse(text)
    d = result.directives
    lines = [f"directives escape={d.escape!r} syntax={d.syntax!r} check={d.check!r}"]
    lines += [node.dump() for node in result.nodes]
    df = parse_dockerfile(text)
    lines += [
        f"meta-arg {a.start_line} {[(s.name, s.default) for s in a.args]}" for a in df.meta_args
    ]
    for s in df.stages:
        lines.append(
            f"stage {s.index} name={s.name!r} base={s.base!r} platform={s.platform!r} "
            f"lines={s.start_line}-{s.end_line} instructions={len(s.instructions)}"
        )
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("case", CASES)
def test_golden(case: str) -> None:
    text = (DATA / case / "Dockerfile").read_text(encoding="utf-8")
    got = render(text)
    expected_file = DATA / case / "result"
    if os.environ.get("CARGOHOLD_REGEN_GOLDEN"):
        expected_file.write_text(got, encoding="utf-8")
    assert got == expected_file.read_text(encoding="utf-8")


def nodes(text: str) -> list[str]:
    return [n.dump() for n in parse(text).nodes]


def test_keywords_are_case_insensitive_and_lines_are_tracked() -> None:
    result = parse("from a\n\nrUn  echo  hi\n")
    assert [n.name for n in result.nodes] == ["from", "run"]
    assert (result.nodes[1].start_line, result.nodes[1].end_line) == (3, 3)
    assert result.nodes[1].args == ("echo  hi",)


def test_continuation_keeps_leading_space_of_next_line() -> None:
    assert parse("FROM a\nRUN a \\\n  b\n").nodes[1].args == ("a   b",)


def test_escaped_escape_at_end_of_line_still_continues_like_buildkit() -> None:
    # BuildKit's regex cannot see that "\\\\" is an escaped backslash; neither do we.
    result = parse("FROM a\nRUN echo \\\\\nRUN b\n")
    assert [n.start_line for n in result.nodes] == [1, 2, 3]


def test_empty_continuation_line_is_a_warning() -> None:
    result = parse("FROM a\nRUN a \\\n\n b\n")
    assert result.nodes[1].args == ("a  b",)
    assert result.nodes[1].end_line == 4
    assert len(result.warnings) == 1


def test_directives_only_at_the_top() -> None:
    assert parse("# escape=`\nFROM a\n").directives.escape == "`"
    assert parse("FROM a\n# escape=`\n").directives.escape == "\\"
    assert parse("# hello\n# escape=`\nFROM a\n").directives.escape == "\\"
    assert parse("\n# escape=`\nFROM a\n").directives.escape == "\\"
    assert parse("# Syntax = x/y:1\nFROM a\n").directives.syntax == "x/y:1"


def test_directive_errors() -> None:
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: only one escape parser"):
        parse("# escape=`\n# escape=\\\nFROM a\n")
    with pytest.raises(DockerfileError, match="invalid escape token '!'"):
        parse("# escape=!\nFROM a\n")


def test_directive_is_not_kept_as_comment() -> None:
    result = parse("# escape=\\\n# about a\nFROM a\n")
    assert result.nodes[0].comments == ("about a",)


def test_bom_is_ignored() -> None:
    assert parse("\ufeff# escape=`\nFROM a\n").directives.escape == "`"


def test_crlf_line_endings() -> None:
    assert parse("FROM a\r\nRUN x \\\r\n y\r\n").nodes[1].args == ("x  y",)


def test_json_with_non_strings_is_an_error_not_a_fallback() -> None:
    with pytest.raises(DockerfileError, match=r"^Dockerfile:2: when using JSON array syntax"):
        parse('FROM a\nCMD ["a", 1]\n')


def test_flags_stop_at_double_dash_and_first_non_flag() -> None:
    node = parse("FROM a\nCOPY --chown=1 -- --x /d\n").nodes[1]
    assert node.flags == ("--chown=1",)
    assert node.args == ("--x", "/d")
    node = parse('FROM a\nRUN --mount="type=bind,target=/a b" echo --not-a-flag\n').nodes[1]
    assert node.flags == ("--mount=type=bind,target=/a b",)
    assert node.args == ("echo --not-a-flag",)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Dockerfile: file with no instructions"),
        ("# only\n\n# comments\n", "Dockerfile:3: file with no instructions"),
        ("FROM a\nRUN <<EOF\nno end\n", "Dockerfile:2: unterminated heredoc"),
        ("FROM a\nENV onlykey\n", "Dockerfile:2: ENV must have two arguments"),
        (
            "FROM a\nENV a=1 b\n",
            'Dockerfile:2: Syntax error - can\'t find = in "b". Must be of the form: name=value',
        ),
    ],
)
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(DockerfileError) as info:
        parse(text)
    assert str(info.value) == message
    assert isinstance(info.value, InvalidArgument)


def test_filename_appears_in_errors() -> None:
    with pytest.raises(DockerfileError, match=r"^build/Containerfile:1: "):
        parse_dockerfile("FROM\n", "build/Containerfile")


def test_heredoc_not_recognised_for_json_or_other_instructions() -> None:
    result = parse('FROM a\nCMD ["<<EOF"]\nLABEL x=<<EOF\nRUN echo\n')
    assert [n.name for n in result.nodes] == ["from", "cmd", "label", "run"]
    assert all(not n.heredocs for n in result.nodes)


def test_heredoc_with_space_after_arrows() -> None:
    node = parse("FROM a\nRUN << EOF\nx\nEOF\n").nodes[1]
    assert [(d.name, d.content) for d in node.heredocs] == [("EOF", "x\n")]


def test_heredoc_content_is_not_processed_for_comments_or_continuations() -> None:
    node = parse("FROM a\nRUN <<EOF\n# kept \\\n\nEOF\n").nodes[1]
    assert node.heredocs[0].content == "# kept \\\n\n"
    assert node.end_line == 5


def test_large_dockerfile_is_fast_enough() -> None:
    text = "FROM a\n" + "RUN echo hello world && true\n" * 5000
    assert len(parse(text).nodes) == 5001
