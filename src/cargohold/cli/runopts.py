"""The flags shared by ``create`` and ``run``, mapped onto the engine's create request.

Options stop at the image (``run [OPTIONS] IMAGE [COMMAND] [ARG...]``): the image is a
positional argument and everything after it is the command (argparse REMAINDER).

As docker/cli's ``opts.go``, this only builds the request (Config, HostConfig,
NetworkingConfig) and refuses what only the client can know (flag syntax, ``-a`` with
``-d``); the engine checks the request itself (names, ports, mounts, policies, ...).
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cargohold.cli.context import Context
    from cargohold.engine.containers.requests import (
        ContainerCreateRequest,
        HealthcheckConfig,
        HostConfig,
        MountPoint,
        NetworkingConfig,
        PortBinding,
    )
    from cargohold.engine.containers.service import ContainerRecord
    from cargohold.engine.containers.sessions import AttachSession


def configure(parser: argparse.ArgumentParser, *, run: bool = False) -> None:
    # -h is --hostname here; --help stays
    parser.conflict_handler = "resolve"
    parser._optionals.conflict_handler = "resolve"
    a = parser.add_argument
    if run:
        a("-d", "--detach", action="store_true", help="Run container in background")
        a("--rm", action="store_true", help="Automatically remove the container when it exits")
        a("--sig-proxy", default="true", help="Proxy received signals to the process")
        a("--detach-keys", default="", help="Override the key sequence for detaching")
    else:
        parser.set_defaults(detach=True, rm=False)
    a("-i", "--interactive", action="store_true", help="Keep STDIN open even if not attached")
    a("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    a("-a", "--attach", action="append", default=[], help="Attach to STDIN, STDOUT or STDERR")
    a("--name", default="", help="Assign a name to the container")
    a("-e", "--env", action="append", default=[], help="Set environment variables")
    a("--env-file", action="append", default=[], help="Read in a file of environment variables")
    a("-w", "--workdir", default="", help="Working directory inside the container")
    a("-u", "--user", default="", help="Username or UID (format: <name|uid>[:<group|gid>])")
    a("--entrypoint", default=None, help="Overwrite the default ENTRYPOINT of the image")
    a("-h", "--hostname", default="", help="Container host name")
    a("--domainname", default="", help="Container NIS domain name")
    a("-l", "--label", action="append", default=[], help="Set meta data on a container")
    a("--label-file", action="append", default=[], help="Read in a line delimited file of labels")
    a("--restart", default="no", help="Restart policy to apply when a container exits")
    a("--stop-signal", default="", help="Signal to stop the container")
    a("--stop-timeout", type=int, default=None, help="Timeout (in seconds) to stop a container")
    a("--init", action="store_true", default=None, help="Run an init inside the container")
    a("--health-cmd", default="", help="Command to run to check health")
    a("--health-interval", default="", help="Time between running the check (ms|s|m|h)")
    a("--health-timeout", default="", help="Maximum time to allow one check to run")
    a(
        "--health-retries",
        type=int,
        default=0,
        help="Consecutive failures needed to report unhealthy",
    )
    a("--health-start-period", default="", help="Start period for the container to initialize")
    a("--health-start-interval", default="", help="Time between checks during the start period")
    a("--no-healthcheck", action="store_true", help="Disable any container-specified HEALTHCHECK")
    a("--privileged", action="store_true", help="Give extended privileges to this container")
    a("--cap-add", action="append", default=[], help="Add Linux capabilities")
    a("--cap-drop", action="append", default=[], help="Drop Linux capabilities")
    a("--security-opt", action="append", default=[], help="Security Options")
    a("--read-only", action="store_true", help="Mount the container's root filesystem as read only")
    a("--group-add", action="append", default=[], help="Add additional groups to join")
    a("-m", "--memory", default="", help="Memory limit")
    a("--memory-swap", default="", help="Swap limit equal to memory plus swap: '-1' unlimited")
    a("--cpus", default="", help="Number of CPUs")
    a("--pids-limit", type=int, default=None, help="Tune container pids limit (-1 for unlimited)")
    a("-v", "--volume", action="append", default=[], help="Bind mount a volume")
    a("--mount", action="append", default=[], help="Attach a filesystem mount to the container")
    a("--tmpfs", action="append", default=[], help="Mount a tmpfs directory")
    a("--volumes-from", action="append", default=[], help="Mount volumes from the container(s)")
    a("-p", "--publish", action="append", default=[], help="Publish a container's port(s)")
    a("-P", "--publish-all", action="store_true", help="Publish all exposed ports to random ports")
    a("--expose", action="append", default=[], help="Expose a port or a range of ports")
    a("--network", "--net", default="", help="Connect a container to a network")
    a(
        "--network-alias",
        "--net-alias",
        action="append",
        default=[],
        help="Add network-scoped alias for the container",
    )
    a("--link", action="append", default=[], help="Add link to another container")
    a("--dns", action="append", default=[], help="Set custom DNS servers")
    a("--dns-search", action="append", default=[], help="Set custom DNS search domains")
    a("--dns-option", "--dns-opt", action="append", default=[], help="Set DNS options")
    a("--add-host", action="append", default=[], help="Add a custom host-to-IP mapping")
    a("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    a("--mac-address", default="", help="Container MAC address (e.g., 92:d0:c6:0a:29:33)")
    a("--runtime", default="", help="Runtime to use for this container")
    a("--pull", default="missing", help='Pull image before running ("always"|"missing"|"never")')
    a("--platform", default="", help="Set platform if server is multi-platform capable")
    a("--log-driver", default="", help="Logging driver for the container")
    a("image", metavar="IMAGE")
    a("command", nargs=argparse.REMAINDER, metavar="[COMMAND] [ARG...]")


def _read_lines(path: str) -> list[str]:
    from cargohold.errors import InvalidArgument

    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {exc.strerror or exc}") from None
    return [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]


def parse_env(values: list[str], files: list[str]) -> tuple[str, ...]:
    """``--env-file`` first, then ``-e``; ``-e NAME`` takes NAME from our environment (and is
    dropped when unset, as Docker does)."""
    import os

    from cargohold.errors import InvalidArgument

    out: list[str] = []
    for item in [ln for f in files for ln in _read_lines(f)] + list(values):
        key, eq, _ = item.partition("=")
        if not key:
            raise InvalidArgument(f"invalid environment variable: {item}")
        if eq:
            out.append(item)
        elif key in os.environ:
            out.append(f"{key}={os.environ[key]}")
    return tuple(out)


def parse_labels(values: list[str], files: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in [ln for f in files for ln in _read_lines(f)] + list(values):
        key, _, value = item.partition("=")
        labels[key] = value
    return labels


def parse_duration(text: str, flag: str) -> int:
    """Go's time.ParseDuration subset (``1h2m3s``, ``500ms``, ``1.5s``) -> nanoseconds."""
    import re

    from cargohold.errors import InvalidArgument

    if not text:
        return 0
    units = {
        "ns": 1,
        "us": 1_000,
        "µs": 1_000,
        "ms": 1_000_000,
        "s": 10**9,
        "m": 60 * 10**9,
        "h": 3600 * 10**9,
    }
    parts = re.findall(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidArgument(
            f'invalid argument "{text}" for "--{flag}" flag: time: invalid duration "{text}"'
        )
    total = sum(float(n) * units[u] for n, u in parts)
    if total < 0:
        raise InvalidArgument(f"--{flag} cannot be negative")
    return int(total)


def _healthcheck(args: argparse.Namespace) -> HealthcheckConfig | None:
    from cargohold.engine.containers.requests import HealthcheckConfig
    from cargohold.errors import InvalidArgument

    hc = HealthcheckConfig(
        test=("CMD-SHELL", args.health_cmd) if args.health_cmd else (),
        interval=parse_duration(args.health_interval, "health-interval"),
        timeout=parse_duration(args.health_timeout, "health-timeout"),
        start_period=parse_duration(args.health_start_period, "health-start-period"),
        start_interval=parse_duration(args.health_start_interval, "health-start-interval"),
        retries=args.health_retries,
    )
    if args.health_retries < 0:
        raise InvalidArgument("--health-retries cannot be negative")
    given = hc != HealthcheckConfig()
    if args.no_healthcheck and given:
        raise InvalidArgument("--no-healthcheck conflicts with --health-* options")
    if args.no_healthcheck:
        return HealthcheckConfig(test=("NONE",))
    return hc if given else None


def _flag_values(values: list[str], flag: str,
                 check: Callable[[str], object]) -> tuple[str, ...]:
    """docker/cli's validating list flags: each value checked (and normalised) as given."""
    from cargohold.engine.containers.flag_values import go_quote
    from cargohold.errors import ClientError, InvalidArgument

    out = []
    for value in values:
        try:
            result = check(value)
        except InvalidArgument as exc:
            raise ClientError(
                f"invalid argument {go_quote(value)} for {go_quote('--' + flag)} flag: "
                f"{exc.message}"
            ) from None
        out.append(result if isinstance(result, str) else value)
    return tuple(out)


def _resolver_flags(
    args: argparse.Namespace,
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """--dns, --dns-search and --add-host, validated as docker/cli does (the engine checks
    every value written into hosts/resolv.conf/hostname again)."""
    if not (args.dns or args.dns_search or args.add_host):
        return (), (), ()
    from cargohold.engine.containers.flag_values import resolver_checks

    parse_ip, dns_search, add_host = resolver_checks()
    return (
        _flag_values(args.dns, "dns", parse_ip),
        _flag_values(args.dns_search, "dns-search", dns_search),
        _flag_values(args.add_host, "add-host", add_host),
    )


def _mounts(args: argparse.Namespace) -> tuple[MountPoint, ...]:
    """``--mount`` values as Docker's mount structs (their CSV syntax checked here)."""
    if not args.mount:
        return ()
    from cargohold.engine.containers.volumes import mount_request

    return tuple(mount_request(m) for m in args.mount)


def _ports(
    args: argparse.Namespace,
) -> tuple[frozenset[str], dict[str, tuple[PortBinding, ...]]]:
    """``--expose`` and ``-p`` as ExposedPorts keys and PortBindings (docker/cli's
    nat.ParsePortSpecs: the syntax of each value is checked here)."""
    if not (args.publish or args.expose):  # the port parser only for the flags that need it
        return frozenset(), {}
    from cargohold.engine.containers.flag_values import port_flags

    return port_flags(args.publish, args.expose)


def _attach_streams(args: argparse.Namespace) -> tuple[bool, bool, bool]:
    """AttachStdin/Stdout/Stderr from ``-a``, ``-i`` and ``-d`` (docker/cli's rules)."""
    from cargohold.errors import InvalidArgument

    attach = [x.lower() for x in args.attach]
    for x in attach:
        if x not in ("stdin", "stdout", "stderr"):
            raise InvalidArgument(f'invalid argument {x!r} for "-a, --attach" flag')
    detach = bool(args.detach)
    if attach and detach:
        raise InvalidArgument("Conflicting options: -a and -d")
    # Docker: -i always attaches stdin; without -a, stdout and stderr are attached
    return (
        (bool(args.interactive) or "stdin" in attach) and not detach,
        not detach and (not attach or "stdout" in attach),
        not detach and (not attach or "stderr" in attach),
    )


def _memory(args: argparse.Namespace) -> tuple[int, int, int]:
    """-m, --memory-swap and --cpus as numbers (docker/cli's RAMInBytes and ParseCPUs)."""
    if not (args.memory or args.memory_swap or args.cpus):
        return 0, 0, 0
    from cargohold.engine.containers.flag_values import parse_cpus, parse_memory

    memory = parse_memory(args.memory) if args.memory else 0
    swap = 0
    if args.memory_swap:
        swap = -1 if args.memory_swap == "-1" else parse_memory(args.memory_swap)
    return memory, swap, parse_cpus(args.cpus) if args.cpus else 0


def _console_size(args: argparse.Namespace) -> tuple[int, int]:
    """With ``-t``, our terminal's size, so the container's TTY has it from the start."""
    if not args.tty or args.detach:
        return 0, 0
    from cargohold.cli.terminal import window_size

    return window_size(0 if args.interactive else 1) or (0, 0)


def _host_config(
    args: argparse.Namespace, bindings: dict[str, tuple[PortBinding, ...]]
) -> HostConfig:
    from cargohold.engine.containers import requests as R

    dns, dns_search, add_host = _resolver_flags(args)
    memory, swap, nano_cpus = _memory(args)
    tmpfs = {}
    for t in args.tmpfs:
        target, _, opts = t.partition(":")
        tmpfs[target] = opts
    return R.HostConfig(
        binds=tuple(args.volume),
        mounts=_mounts(args),
        network_mode=args.network,
        port_bindings=bindings,
        restart_policy=R.RestartPolicy.parse(args.restart),
        auto_remove=bool(args.rm),
        volumes_from=tuple(args.volumes_from),
        cap_add=tuple(args.cap_add),
        cap_drop=tuple(args.cap_drop),
        dns=dns,
        dns_options=tuple(args.dns_option),
        dns_search=dns_search,
        extra_hosts=add_host,
        group_add=tuple(args.group_add),
        links=tuple(args.link),
        privileged=bool(args.privileged),
        readonly_rootfs=bool(args.read_only),
        security_opt=tuple(args.security_opt),
        tmpfs=tmpfs,
        runtime=args.runtime,
        memory=memory,
        memory_swap=swap,
        nano_cpus=nano_cpus,
        pids_limit=args.pids_limit,
        init=args.init,
        publish_all_ports=bool(args.publish_all),
        console_size=_console_size(args),
    )


def _networking(args: argparse.Namespace) -> NetworkingConfig:
    from cargohold.engine.containers import requests as R

    endpoint = R.EndpointSettings(
        aliases=tuple(args.network_alias),
        links=tuple(args.link),
        ipam_config=R.EndpointIPAMConfig(args.ip) if args.ip else None,
        mac_address=args.mac_address,
    )
    if endpoint == R.EndpointSettings():
        return R.NetworkingConfig()
    return R.NetworkingConfig({args.network or "default": endpoint})


def to_request(args: argparse.Namespace) -> ContainerCreateRequest:
    """The engine's create request for these flags (nothing is created yet)."""
    from cargohold.engine.containers.requests import ContainerCreateRequest
    from cargohold.errors import InvalidArgument

    if args.rm and args.restart not in ("", "no"):
        raise InvalidArgument("Conflicting options: --restart and --rm")
    exposed, bindings = _ports(args)
    attach_stdin, attach_stdout, attach_stderr = _attach_streams(args)
    entrypoint = None
    if args.entrypoint is not None:
        entrypoint = tuple(args.entrypoint.split()) if args.entrypoint.strip() else ("",)
    open_stdin = bool(args.interactive)
    return ContainerCreateRequest(
        hostname=args.hostname,
        domainname=args.domainname,
        user=args.user,
        attach_stdin=attach_stdin,
        attach_stdout=attach_stdout,
        attach_stderr=attach_stderr,
        exposed_ports=exposed,
        tty=bool(args.tty),
        open_stdin=open_stdin,
        stdin_once=open_stdin and not args.detach,
        env=parse_env(args.env, args.env_file),
        cmd=tuple(args.command) or None,
        image=args.image,
        entrypoint=entrypoint,
        labels=parse_labels(args.label, args.label_file),
        working_dir=args.workdir,
        stop_signal=args.stop_signal,
        stop_timeout=args.stop_timeout,
        healthcheck=_healthcheck(args),
        host_config=_host_config(args, bindings),
        networking_config=_networking(args),
    )


def print_warnings(ctx: Context, record: ContainerRecord) -> None:
    """Docker's CLI prints the create response's warnings on stderr, once per command."""
    for warning in ctx.engine.containers.create_warnings(record):
        print(f"WARNING: {warning}", file=ctx.stderr)


def foreground(
    ctx: Context,
    session: AttachSession,
    *,
    stdin: bool,
    sig_proxy: bool = True,
    detach_message: bool = False,
) -> int | None:
    """Pump this process's stdio through an attach session until the container exits: its
    exit code, or None when the user detached (or the container is gone without one).  A
    launch error the monitor reports raises here, as ``start`` would have (127, 126, ...).
    Without a TTY, ``sig_proxy`` forwards the signals we receive to the container."""
    import sys

    from cargohold.cli import terminal
    from cargohold.errors import CargoholdError

    def forward(signum: int) -> None:
        with contextlib.suppress(CargoholdError):
            ctx.engine.containers.kill(session.container_id, signum)

    out = getattr(ctx.stdout, "buffer", None) or sys.stdout.buffer
    err = getattr(ctx.stderr, "buffer", None) or sys.stderr.buffer
    with session:
        detached = terminal.pump(
            session,
            stdin=0 if stdin else None,
            stdout=out,
            stderr=err,
            raw=session.tty,
            size_from=0 if stdin and session.tty else None,
            forward=forward if sig_proxy and not session.tty else None,
        )
        if detached:
            if detach_message:
                err.write(b"read escape sequence\n")
                err.flush()
            return None
        return session.wait()


def each_container(
    ctx: Context, refs: list[str], action: Callable[[str], object], verb: str
) -> int:
    """Docker's multi-container verbs: print each ref on success, each error on stderr, and
    exit 1 when any failed."""
    from cargohold.errors import CargoholdError

    failed: list[str] = []
    for ref in refs:
        try:
            action(ref)
        except CargoholdError as exc:
            print(f"Error response from daemon: {exc.message}", file=ctx.stderr)
            failed.append(ref)
            continue
        print(ref, file=ctx.stdout)
    if failed:
        print(f"Error: failed to {verb} containers: {', '.join(failed)}", file=ctx.stderr)
        return 1
    return 0
