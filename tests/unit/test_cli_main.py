from __future__ import annotations

import pytest

from cargohold.cli.main import main


def test_version_prints_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version"]) == 0
    assert "Version:" in capsys.readouterr().out


def test_unknown_command_is_usage_error_125(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["frobnicate"]) == 125
    assert 'unknown command "frobnicate"' in capsys.readouterr().err


def test_unknown_flag_exits_125(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["version", "--bogus"]) == 125
    err = capsys.readouterr().err
    assert "--bogus" in err and "See 'cargohold version --help'." in err


def test_global_root_option_is_accepted(tmp_path: object) -> None:
    assert main(["--root", str(tmp_path), "version"]) == 0
