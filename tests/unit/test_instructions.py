"""Typed instructions: flags, argument checks, stages, expansion hooks."""

from __future__ import annotations

import pytest

from cargohold.builder.instruction_support import go_duration
from cargohold.builder.instructions import (
    EXPANDED_INSTRUCTIONS,
    AddInstruction,
    ArgInstruction,
    CmdInstruction,
    CopyInstruction,
    DockerfileError,
    EntrypointInstruction,
    EnvInstruction,
    ExposeInstruction,
    FromInstruction,
    HealthcheckInstruction,
    Instruction,
    KeyValue,
    LabelInstruction,
    MaintainerInstruction,
    OnbuildInstruction,
    RunInstruction,
    ShellInstruction,
    StopsignalInstruction,
    UserInstruction,
    VolumeInstruction,
    WorkdirInstruction,
    parse_dockerfile,
)
from cargohold.builder.shell_lex import EnvExpander


def one(line: str) -> Instruction:
    """The single instruction of a one-stage Dockerfile."""
    df = parse_dockerfile(f"FROM base\n{line}\n")
    (inst,) = df.stages[0].instructions
    return inst


def error(text: str) -> str:
    with pytest.raises(DockerfileError) as info:
        parse_dockerfile(text)
    return str(info.value)


def test_apache_seed_method1_and_method2() -> None:
    common = (
        "FROM centos:7\nMAINTAINER this is apache image <ly>\nRUN yum install -y httpd\n"
        "EXPOSE 80\nADD index.html /var/www/html/\n"
    )
    m1 = parse_dockerfile(common + 'ADD run.sh /run.sh\nRUN chmod +x /run.sh\nCMD ["/run.sh"]\n')
    stage = m1.stages[0]
    assert stage.base == "centos:7"
    maint, run, expose, add, *_rest, cmd = stage.instructions
    assert isinstance(maint, MaintainerInstruction)
    assert maint.maintainer == "this is apache image <ly>"
    assert isinstance(run, RunInstruction) and run.command == ("yum install -y httpd",)
    assert run.shell_form
    assert isinstance(expose, ExposeInstruction) and expose.ports == ("80",)
    assert isinstance(add, AddInstruction)
    assert (add.sources, add.dest) == (("index.html",), "/var/www/html/")
    assert isinstance(cmd, CmdInstruction) and cmd.command == ("/run.sh",)
    assert not cmd.shell_form
    m2 = parse_dockerfile(
        common + 'ENTRYPOINT [ "/usr/sbin/apachectl" ]\nCMD ["-D","FOREGROUND"]\n'
    )
    ep, cmd2 = m2.stages[0].instructions[-2:]
    assert isinstance(ep, EntrypointInstruction) and ep.command == ("/usr/sbin/apachectl",)
    assert isinstance(cmd2, CmdInstruction) and cmd2.command == ("-D", "FOREGROUND")


def test_stages_meta_args_and_names() -> None:
    df = parse_dockerfile(
        "ARG V=1 OTHER\nFROM --platform=linux/amd64 img:$V AS Build\nRUN x\n"
        "FROM build\nCOPY --from=build /a /b\n"
    )
    assert [a.name for m in df.meta_args for a in m.args] == ["V", "OTHER"]
    first, second = df.stages
    assert (first.name, first.base, first.platform, first.index) == (
        "build",
        "img:$V",
        "linux/amd64",
        0,
    )
    assert (first.start_line, first.end_line) == (2, 3)
    assert second.name is None and second.base == "build"
    assert df.stage("BUILD") is first and df.stage(1) is second and df.stage("1") is second
    with pytest.raises(DockerfileError, match="not found"):
        df.stage("nope")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("RUN x\n", "Dockerfile:1: no build stage in current context"),
        ("ARG a\nENV b=1\nFROM x\n", "Dockerfile:2: no build stage in current context"),
        ("FROM a\nRUNN x\n", "Dockerfile:2: unknown instruction: RUNN (did you mean RUN?)"),
        ("FROM a\ncopyy a b\n", "Dockerfile:2: unknown instruction: copyy (did you mean copy?)"),
        ("FROM a\nFOOBAR x\n", "Dockerfile:2: unknown instruction: FOOBAR"),
        ("FROM a\nRUN\n", "Dockerfile:2: RUN requires at least one argument"),
        ("FROM a\nCMD\n", "Dockerfile:2: CMD requires at least one argument"),
        ("FROM a\nEXPOSE\n", "Dockerfile:2: EXPOSE requires at least one argument"),
        ("FROM a\nENV\n", "Dockerfile:2: ENV requires at least one argument"),
        ("FROM a\nUSER\n", "Dockerfile:2: USER requires exactly one argument"),
        ("FROM a\nWORKDIR\n", "Dockerfile:2: WORKDIR requires exactly one argument"),
        (
            "FROM a\nCOPY onlyone\n",
            "Dockerfile:2: COPY requires at least two arguments, but only one was provided. "
            "Destination could not be determined",
        ),
        ("FROM a\nCOPY --foo=1 a b\n", "Dockerfile:2: unknown flag: --foo (did you mean from?)"),
        ("FROM a\nRUN --bogus x\n", "Dockerfile:2: unknown flag: --bogus"),
        ("FROM a\nCOPY --chown a b\n", "Dockerfile:2: missing a value on flag: --chown"),
        (
            "FROM a\nCOPY --link=maybe a b\n",
            "Dockerfile:2: expecting boolean value for flag --link, not: maybe",
        ),
        ("FROM a\nCOPY --from=a --from=b a b\n", "Dockerfile:2: duplicate flag specified: --from"),
        ("FROM\n", "Dockerfile:1: FROM requires either one or three arguments"),
        ("FROM a AS\n", "Dockerfile:1: FROM requires either one or three arguments"),
        (
            "FROM a AS 1st\n",
            'Dockerfile:1: invalid name for build stage: "1st", '
            "name can't start with a number or contain symbols",
        ),
        ("FROM a AS b$c\n", "invalid name for build stage"),
        (
            "FROM a AS x\nFROM b AS X\n",
            'Dockerfile:2: Duplicate stage name "x", stage names should be unique '
            "(first used on line 1)",
        ),
        (
            "FROM a\nONBUILD ONBUILD RUN x\n",
            "Dockerfile:2: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed",
        ),
        ("FROM a\nONBUILD FROM b\n", "Dockerfile:2: FROM isn't allowed as an ONBUILD trigger"),
        (
            "FROM a\nONBUILD maintainer me\n",
            "Dockerfile:2: MAINTAINER isn't allowed as an ONBUILD trigger",
        ),
        ("FROM a\nONBUILD\n", "Dockerfile:2: ONBUILD requires at least one argument"),
        ("FROM a\nONBUILD RUNN x\n", "Dockerfile:2: unknown instruction: RUNN (did you mean RUN?)"),
        (
            "FROM a\nSHELL /bin/sh -c\n",
            "Dockerfile:2: SHELL requires the arguments to be in JSON form",
        ),
        ("FROM a\nSHELL []\n", "Dockerfile:2: SHELL requires at least one argument"),
        ("FROM a\nHEALTHCHECK NONE x\n", "Dockerfile:2: HEALTHCHECK NONE takes no arguments"),
        ("FROM a\nHEALTHCHECK CMD\n", "Dockerfile:2: Missing command after HEALTHCHECK CMD"),
        (
            "FROM a\nHEALTHCHECK RUN x\n",
            'Dockerfile:2: Unknown type "RUN" in HEALTHCHECK (try CMD)',
        ),
        (
            "FROM a\nHEALTHCHECK --interval=1us CMD x\n",
            'Interval "interval" cannot be less than 1ms',
        ),
        ("FROM a\nHEALTHCHECK --timeout=soon CMD x\n", 'time: invalid duration "soon"'),
        ("FROM a\nHEALTHCHECK --retries=-1 CMD x\n", "--retries cannot be negative (-1)"),
        ("FROM a\nLABEL =x\n", "Dockerfile:2: LABEL names can not be blank"),
        ("FROM a\nARG =x\n", "Dockerfile:2: ARG names can not be blank"),
        ('FROM a\nVOLUME [""]\n', "VOLUME specified can not be an empty string"),
        ("FROM a\nCOPY a <<EOF\nx\nEOF\n", "COPY cannot accept a heredoc as a destination"),
        ("FROM a\nCOPY --from=$X a b\n", "variable expansion is not supported for --from"),
        ("FROM a\nRUN --network=bridge x\n", 'invalid network mode "bridge"'),
        ("FROM a\nRUN --mount=type=nfs x\n", 'unsupported mount type "nfs"'),
        (
            "FROM a\nRUN --mount=type=bind,size=1g x\n",
            "unexpected key 'size' for mount type 'bind'",
        ),
        (
            "FROM a\nRUN --mount=type=secret x\n",
            "invalid secret mount. one of source, target required",
        ),
        (
            "FROM a\nRUN --mount=type=cache,targt=/x x\n",
            "unexpected key 'targt' in 'targt=/x' (did you mean target?)",
        ),
        ("FROM a\nRUN --mount=type=bind,uid=1 x\n", 'uid not allowed for "bind" type mounts'),
        ("FROM a\nRUN --mount=type=cache,sharing=all x\n", 'unsupported sharing value "all"'),
    ],
)
def test_errors(text: str, message: str) -> None:
    assert message in error(text)


def test_run_mounts_and_network() -> None:
    run = one(
        "RUN --network=none --mount=type=cache,target=/root/.cache,id=pip,sharing=locked,mode=0755 "
        "--mount=type=secret,id=tok,required --mount=type=tmpfs,target=/t,size=64m "
        "--mount=target=/src,from=build,rw pip install"
    )
    assert isinstance(run, RunInstruction)
    assert run.network == "none"
    cache, secret, tmpfs, bind = run.mounts
    assert (cache.type, cache.target, cache.cache_id, cache.sharing, cache.mode) == (
        "cache", "/root/.cache", "pip", "locked", 0o755,
    )  # fmt: skip
    assert not cache.readonly
    assert (secret.type, secret.cache_id, secret.required, secret.readonly) == (
        "secret",
        "tok",
        True,
        True,
    )
    assert (tmpfs.type, tmpfs.size_limit) == ("tmpfs", 64 * 1024 * 1024)
    assert (bind.type, bind.from_, bind.readonly) == ("bind", "build", False)
    assert run.command == ("pip install",)


def test_run_mount_values_are_expanded_by_the_executor() -> None:
    run = one("RUN --mount=type=cache,target=$DIR,uid=$UID make")
    assert isinstance(run, RunInstruction)
    expanded = run.expand(EnvExpander({"DIR": "/cache", "UID": "1000"}))
    assert (expanded.mounts[0].target, expanded.mounts[0].uid) == ("/cache", 1000)
    assert expanded.command == ("make",)  # RUN's command is never expanded by the builder


def test_heredoc_files_on_run_and_copy() -> None:
    df = parse_dockerfile("FROM a\nRUN <<-EOF\n\techo hi\n\tEOF\nCOPY <<'X' /x\n$NOT\nX\n")
    run, copy = df.stages[0].instructions
    assert isinstance(run, RunInstruction) and isinstance(copy, CopyInstruction)
    assert run.files[0].data == "echo hi\n" and run.files[0].chomp
    assert copy.sources == () and copy.contents[0].data == "$NOT\n"
    assert copy.contents[0].expand is False
    assert copy.expand(EnvExpander({"NOT": "x"})).contents[0].data == "$NOT\n"


def test_copy_and_add_flags() -> None:
    copy = one(
        "COPY --from=0 --chown=app:app --chmod=644 --link --parents "
        "--exclude=*.md --exclude=.git a b /dst/"
    )
    assert isinstance(copy, CopyInstruction)
    assert (copy.from_, copy.chown, copy.chmod, copy.link, copy.parents) == (
        "0",
        "app:app",
        "644",
        True,
        True,
    )
    assert copy.excludes == ("*.md", ".git") and copy.sources == ("a", "b") and copy.dest == "/dst/"
    add = one("ADD --checksum=sha256:abc --keep-git-dir=false --link=false http://x/y.tgz /z")
    assert isinstance(add, AddInstruction)
    assert (add.checksum, add.keep_git_dir, add.link, add.unpack) == (
        "sha256:abc",
        False,
        False,
        None,
    )
    json_copy = one('COPY ["a b", "/c d/"]')
    assert isinstance(json_copy, CopyInstruction) and json_copy.sources == ("a b",)


def test_env_label_arg_forms_and_expansion() -> None:
    env = one('ENV a=1 b=$a c="x y"')
    assert isinstance(env, EnvInstruction)
    expanded = env.expand(EnvExpander({"a": "old"}))
    assert expanded.pairs == (KeyValue("a", "1"), KeyValue("b", "old"), KeyValue("c", "x y"))
    legacy = one("ENV key value with  spaces")
    assert isinstance(legacy, EnvInstruction)
    assert legacy.pairs == (KeyValue("key", "value with  spaces", legacy=True),)
    label = one('LABEL "com.example.name"="a b" v=$V')
    assert isinstance(label, LabelInstruction)
    assert label.expand(EnvExpander({"V": "2"})).pairs == (
        KeyValue("com.example.name", "a b"),
        KeyValue("v", "2"),
    )
    arg = one("ARG A B=2 C=")
    assert isinstance(arg, ArgInstruction)
    assert [(a.name, a.default) for a in arg.args] == [("A", None), ("B", "2"), ("C", "")]


def test_expanding_instructions() -> None:
    ex = EnvExpander({"P": "8080", "D": "/srv", "U": "app", "S": "SIGINT"})
    expose = one("EXPOSE $P 9000/udp")
    assert isinstance(expose, ExposeInstruction)
    assert expose.expand(ex).ports == ("8080", "9000/udp")
    workdir, user = one("WORKDIR $D/app"), one("USER ${U}:${U}")
    assert isinstance(workdir, WorkdirInstruction) and workdir.expand(ex).path == "/srv/app"
    assert isinstance(user, UserInstruction) and user.expand(ex).user == "app:app"
    volume, stop = one('VOLUME ["$D/data"]'), one("STOPSIGNAL $S")
    assert isinstance(volume, VolumeInstruction) and volume.expand(ex).volumes == ("/srv/data",)
    assert isinstance(stop, StopsignalInstruction) and stop.expand(ex).signal == "SIGINT"
    cmd = one("CMD echo $D")
    assert cmd.expand(ex) is cmd
    assert {"RUN", "ENV", "COPY", "ADD", "FROM"} <= EXPANDED_INSTRUCTIONS
    assert (
        not {"CMD", "ENTRYPOINT", "SHELL", "HEALTHCHECK", "MAINTAINER", "ONBUILD"}
        & EXPANDED_INSTRUCTIONS
    )
    src = parse_dockerfile("ARG T=3\nFROM img:$T\n").stages[0].source
    assert isinstance(src, FromInstruction)
    assert src.expand(EnvExpander({"T": "3"})).base == "img:3"


def test_healthcheck() -> None:
    hc = one(
        "HEALTHCHECK --interval=1m30s --timeout=500ms --start-period=0 --retries=3 "
        "CMD curl -f x || exit 1"
    )
    assert isinstance(hc, HealthcheckInstruction)
    assert hc.test == ("CMD-SHELL", "curl -f x || exit 1")
    assert (hc.interval, hc.timeout, hc.start_period, hc.retries) == (90 * 10**9, 5 * 10**8, 0, 3)
    none = one("healthcheck none")
    assert isinstance(none, HealthcheckInstruction) and none.test == ("NONE",)
    exec_form = one('HEALTHCHECK CMD ["true"]')
    assert isinstance(exec_form, HealthcheckInstruction) and exec_form.test == ("CMD", "true")


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("30s", 30 * 10**9),
        ("1m30s", 90 * 10**9),
        ("1.5h", 5400 * 10**9),
        ("0", 0),
        ("2us", 2000),
        ("1h2m3s4ms", 3723004 * 10**6),
    ],
)
def test_go_durations(text: str, ns: int) -> None:
    assert go_duration(text) == ns


def test_onbuild_trigger_is_parsed_and_kept_as_text() -> None:
    df = parse_dockerfile(
        "FROM a\nONBUILD RUN --network=none make\nONBUILD COPY <<EOF /x\nhi\nEOF\n"
    )
    ob, ob2 = df.stages[0].instructions
    assert isinstance(ob, OnbuildInstruction) and isinstance(ob.trigger, RunInstruction)
    assert ob.expression == "RUN --network=none make" and ob.trigger.network == "none"
    assert isinstance(ob2, OnbuildInstruction) and isinstance(ob2.trigger, CopyInstruction)
    assert ob2.expression == "COPY <<EOF /x\nhi\nEOF"
    assert ob2.trigger.contents[0].data == "hi\n"


def test_shell_and_entrypoint_forms() -> None:
    shell = one('SHELL ["powershell", "-command"]')
    assert isinstance(shell, ShellInstruction) and shell.shell == ("powershell", "-command")
    ep = one("ENTRYPOINT exec top -b")
    assert (
        isinstance(ep, EntrypointInstruction) and ep.shell_form and ep.command == ("exec top -b",)
    )
    empty = one("ENTRYPOINT []")
    assert isinstance(empty, EntrypointInstruction) and empty.command == () and not empty.shell_form


def test_reserved_stage_name_is_a_warning() -> None:
    df = parse_dockerfile("FROM a AS context\n")
    assert any("reserved" in w for w in df.warnings)


def test_instructions_are_frozen() -> None:
    inst = one("USER x")
    with pytest.raises(AttributeError):
        inst.keyword = "y"  # type: ignore[misc]
