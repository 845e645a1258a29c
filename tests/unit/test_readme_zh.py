"""README.zh-CN.md stays in step with the CLI: every ``cargohold ...`` command in its shell
blocks parses with the real command tables and argparse configuration (nothing is run)."""

from __future__ import annotations

import argparse
import importlib
import re
import shlex
from pathlib import Path

import pytest

from cargohold.cli import main as cli_main

README = Path(__file__).resolve().parents[2] / "README.zh-CN.md"
_OPERATOR = re.compile(r"^[();<>|&]+$")
SECTIONS = ("一、管理容器中的数据", "二、容器互联", "三、Docker 镜像的创建",
            "四、基于 Dockerfile 创建", "五、Dockerfile 常用指令", "六、Dockerfile 案例")


def shell_blocks(text: str) -> list[str]:
    return re.findall(r"^```(?:sh|bash)\n(.*?)^```", text, flags=re.S | re.M)


def cargohold_commands(block: str) -> list[list[str]]:
    """Every ``cargohold`` invocation in a shell block (also inside ``$(...)``, pipelines
    and after ``;``/``&&``), as argv without the program name; comments dropped."""
    text = block.replace("\\\n", " ")
    found: list[list[str]] = []
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        for i, token in enumerate(tokens):
            if token != "cargohold":
                continue
            argv: list[str] = []
            for word in tokens[i + 1:]:
                if _OPERATOR.match(word):
                    break
                argv.append(word)
            found.append(argv)
    return found


def parse(argv: list[str]) -> argparse.Namespace:
    """What ``cargohold.cli.main`` does up to running the verb."""
    global_args, rest = cli_main._split_globals(argv)
    cli_main._global_parser().parse_args(global_args)
    resolved = cli_main._resolve(rest)
    assert resolved is not None, argv
    prog, module_name, cmd_args = resolved
    module = importlib.import_module(f"cargohold.cli.commands.{module_name}")
    parser = cli_main.ArgumentParser(prog=prog)
    module.configure(parser)
    return parser.parse_args(cmd_args)


def test_readme_walks_the_six_sections_and_is_linked() -> None:
    text = README.read_text()
    for title in SECTIONS:
        assert f"## {title}" in text, title
    assert "[中文说明 (README.zh-CN.md)](README.zh-CN.md)" in (README.parent / "README.md"
                                                            ).read_text().splitlines()[2]
    assert "/etc/cargohold/registries.toml" in text and '"docker.io" = [' in text


COMMANDS = [argv for block in shell_blocks(README.read_text())
            for argv in cargohold_commands(block)]


def test_the_readme_has_the_tutorials_commands() -> None:
    verbs = {argv[0] for argv in COMMANDS}
    assert len(COMMANDS) >= 60
    assert {"run", "exec", "create", "start", "commit", "export", "import", "build", "images",
            "image", "volume", "network", "system", "update", "manifest", "info"} <= verbs


@pytest.mark.parametrize("argv", COMMANDS, ids=[" ".join(a)[:60] for a in COMMANDS])
def test_every_command_parses(argv: list[str]) -> None:
    try:
        parse(argv)
    except cli_main.UsageError as e:
        pytest.fail(f"cargohold {' '.join(argv)}: {e}")


def test_a_wrong_command_is_caught() -> None:
    (bad,) = cargohold_commands("x=$(cargohold run --no-such-flag img) | cat")
    assert bad == ["run", "--no-such-flag", "img"]
    with pytest.raises(cli_main.UsageError):
        parse(bad)
    with pytest.raises(cli_main.UsageError):
        parse(["imagez", "ls"])
