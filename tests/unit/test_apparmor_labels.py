"""AppArmor without root, the kernel facts injected (the profile text, loading it with
apparmor_parser, the profile a process gets), and the ``--security-opt`` label and apparmor
values."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from cargohold.container import apparmor as A
from cargohold.container import spec as S
from cargohold.engine.containers.start import security_options
from cargohold.errors import InvalidArgument, Unavailable

# -- --security-opt values ----------------------------------------------------------------


def test_label_options_docker_accepts() -> None:
    for opt in ("label=disable", "label=user:system_u", "label=role:r", "label=type:svirt_t",
                "label=level:s0:c1,c2", "label=filetype:f_t", "label:disable", "disable"):
        assert security_options((opt,)).labels, opt


@pytest.mark.parametrize("value", ["bogus", "type", "nested", "kind:x", "type=x"])
def test_unknown_label_option_is_refused_with_dockers_message(value: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        security_options((f"label={value}",))
    assert info.value.message == (
        f'bad label option "{value}", valid options \'disable\' or \n'
        "'user, role, level, type, filetype' followed by ':' and a value"
    )


def test_apparmor_option_and_empty_values() -> None:
    assert security_options(("apparmor=my-prof",)).apparmor == "my-prof"
    assert security_options(("apparmor:unconfined",)).apparmor == "unconfined"
    assert security_options(()).apparmor == ""
    for bad in ("apparmor=", "label=", "seccomp"):
        with pytest.raises(InvalidArgument, match="Invalid --security-opt"):
            security_options((bad,))
    with pytest.raises(InvalidArgument, match="invalid --security-opt 2"):
        security_options(("frobnicate=1",))


# -- AppArmor with the kernel facts injected -----------------------------------------------


def fake_host(tmp_path: Path, *, enabled: bool = True, loaded: tuple[str, ...] = (),
              parser_exit: int = 0) -> A.Host:
    tmp_path.mkdir(parents=True, exist_ok=True)
    sec = tmp_path / "securityfs"
    if enabled:
        sec.mkdir()
        (sec / "profiles").write_text("".join(f"{p} (enforce)\n" for p in loaded))
    module = tmp_path / "enabled"
    module.write_text("Y\n" if enabled else "N\n")
    conf = tmp_path / "apparmor.d"
    (conf / "tunables").mkdir(parents=True)
    (conf / "tunables/global").write_text("")
    current = tmp_path / "current"
    current.write_text("cargohold-cli (enforce)\n")
    parser = tmp_path / "apparmor_parser"
    log = tmp_path / "parser.log"
    # records its arguments and the profile text, then "loads" it like the kernel would
    parser.write_text(f"#!/bin/sh\necho \"$@\" >> {log}\ncat > {tmp_path}/loaded.txt\n"
                      f"[ {parser_exit} = 0 ] && echo 'cargohold-default (enforce)' >> "
                      f"{sec}/profiles\necho 'parser says no' >&2\nexit {parser_exit}\n")
    parser.chmod(0o755)
    return A.Host(security_dir=sec, enabled_file=module, config_dir=conf,
                  current_file=current, parser=str(parser))


def test_enabled_needs_securityfs_and_the_module_flag(tmp_path: Path) -> None:
    assert A.enabled(fake_host(tmp_path / "on"))
    assert not A.enabled(fake_host(tmp_path / "off", enabled=False))
    host = fake_host(tmp_path / "flag")
    host.enabled_file.write_text("N\n")
    assert not A.enabled(host)


def test_default_profile_is_loaded_once_when_missing(tmp_path: Path) -> None:
    host = fake_host(tmp_path)
    spec = A.with_apparmor(S.base_spec(), host=host)
    assert spec["process"]["apparmorProfile"] == "cargohold-default"
    assert (tmp_path / "parser.log").read_text() == "-Kr\n"
    text = (tmp_path / "loaded.txt").read_text()
    assert 'profile "cargohold-default" flags=(attach_disconnected,mediate_deleted)' in text
    assert "#include <tunables/global>" in text and "abi <abi/3.0>" not in text
    assert 'signal (receive) peer="cargohold-cli",' in text  # the engine's own profile
    A.with_apparmor(S.base_spec(), host=host)  # loaded now: the parser is not run again
    A.ensure_for_process({"apparmorProfile": "cargohold-default"}, host=host)
    assert (tmp_path / "parser.log").read_text() == "-Kr\n"


def test_a_failing_or_missing_parser_is_a_clear_error(tmp_path: Path) -> None:
    host = fake_host(tmp_path / "fail", parser_exit=1)
    with pytest.raises(Unavailable, match="-Kr' failed: parser says no"):
        A.with_apparmor(S.base_spec(), host=host)
    gone = fake_host(tmp_path / "gone")
    gone = A.Host(security_dir=gone.security_dir, enabled_file=gone.enabled_file,
                  config_dir=gone.config_dir, parser=str(tmp_path / "nonexistent"))
    with pytest.raises(Unavailable, match='install the Debian package "apparmor"'):
        A.ensure_default(gone)


def test_profile_choice_privileged_named_and_unconfined(tmp_path: Path) -> None:
    host = fake_host(tmp_path, loaded=("cargohold-default", "my prof (x)", "other"))
    def profile(requested: str = "", privileged: bool = False) -> str:
        spec = A.with_apparmor(S.base_spec(), requested, privileged, host=host)
        return str(spec["process"]["apparmorProfile"])
    assert profile() == "cargohold-default"
    assert profile(privileged=True) == "unconfined"
    assert profile("unconfined") == "unconfined"
    assert profile("other", privileged=True) == "other"
    assert profile("my prof (x)") == "my prof (x)"  # names may hold spaces and parentheses
    with pytest.raises(InvalidArgument, match="AppArmor profile 'nosuch' is not loaded"):
        profile("nosuch")
    with pytest.raises(InvalidArgument, match="is not loaded"):
        A.check_requested("nosuch", host)
    assert A.check_requested("other", host) == [] and A.check_requested("", host) == []
    assert not (tmp_path / "parser.log").exists()


def test_without_apparmor_nothing_is_set_and_a_request_warns(tmp_path: Path) -> None:
    host = fake_host(tmp_path, enabled=False)
    spec = S.base_spec()
    spec["process"]["apparmorProfile"] = "stale"
    assert "apparmorProfile" not in A.with_apparmor(spec, "my-prof", host=host)["process"]
    assert A.check_requested("my-prof", host) == [
        "AppArmor is not enabled on this host: --security-opt apparmor=my-prof has no effect"]
    assert A.check_requested("unconfined", host) == [] and A.check_requested("", host) == []
    A.ensure_for_process({"apparmorProfile": "cargohold-default"}, host=host)
    assert not (tmp_path / "parser.log").exists()


def test_profile_text_holds_docker_defaults_rules() -> None:
    text = A.profile_text()
    for rule in ("network,", "deny network alg,", "capability,", "file,", "umount,",
                 "deny mount,", "deny @{PROC}/sysrq-trigger rwklx,",
                 "deny @{PROC}/sys/[^k]** w,", "deny /sys/kernel/security/** rwklx,",
                 "deny /sys/firmware/** rwklx,", "signal (receive) peer=runc,",
                 'ptrace (trace,tracedby,read,readby) peer="cargohold-default",'):
        assert f"  {rule}\n" in text, rule
    assert text.startswith("# cargohold") and "abi <abi/3.0>," in text
    bare = A.profile_text(includes=())
    assert "@{PROC}=/proc/" in bare and "#include" not in bare


@pytest.mark.skipif(shutil.which("apparmor_parser") is None,
                    reason="apparmor_parser not installed (Debian package apparmor)")
@pytest.mark.parametrize("includes", [("abi/3.0", "tunables/global", "abstractions/base"), ()])
def test_profile_text_compiles_with_apparmor_parser(includes: tuple[str, ...]) -> None:
    """-Q: compile only, nothing is loaded (works where the kernel has no AppArmor)."""
    present = tuple(i for i in includes if (Path("/etc/apparmor.d") / i).exists())
    proc = subprocess.run(["apparmor_parser", "-Q", "-K"],
                          input=A.profile_text(includes=present).encode(),
                          capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()


def test_split_label() -> None:
    assert A.split_label("unconfined\n") == "unconfined"
    assert A.split_label("docker-default (enforce)\n") == "docker-default"
    assert A.split_label("a (b) (complain)") == "a (b)"
    assert A.split_label("plain") == "plain"
