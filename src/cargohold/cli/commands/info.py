"""``cargohold info [-f FORMAT]`` (also ``system info``): Docker 20.10's layout and fields.

The text follows docker/cli's ``prettyPrintInfo`` (lines Docker prints only when set are
left out when empty); ``--format`` sees Docker's Info object (``{{.ServerVersion}}``,
``{{json .}}``) plus ``ClientInfo``.  The daemon's warnings go to stderr, as Docker's do.
"""

from __future__ import annotations

import argparse
from typing import Any

from cargohold.cli.context import Context

HELP = "Display system-wide information"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--format", help="Format the output using the given Go template")


def run(args: argparse.Namespace, ctx: Context) -> int:
    info = ctx.engine.system.info(debug=ctx.debug)
    client = {"Debug": ctx.debug, "Context": "default", "Plugins": [], "Warnings": None}
    if args.format:
        from cargohold.cli.template import render
        from cargohold.errors import ClientError

        try:
            text = render(args.format, {**info, "ClientInfo": client})
        except ClientError as e:
            print(e.message, file=ctx.stderr)
            return 64  # Docker's status for a template that does not parse
        print(text, file=ctx.stdout)
        return 0
    ctx.stdout.write(render_text(info, client))
    for warning in info.get("Warnings") or ():
        print(warning, file=ctx.stderr)
    return 0


def _line(out: list[str], label: str, value: object, always: bool = True) -> None:
    if always or value not in ("", None):
        out.append(f"{label} {_go(value)}")


def _go(value: object) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def render_text(info: dict[str, Any], client: dict[str, Any]) -> str:
    from cargohold.cli.humanize import bytes_size

    out = ["Client:", f" Context:    {client['Context']}", f" Debug Mode: {_go(client['Debug'])}",
           "", "Server:"]
    for label, key in ((" Containers:", "Containers"), ("  Running:", "ContainersRunning"),
                       ("  Paused:", "ContainersPaused"), ("  Stopped:", "ContainersStopped"),
                       (" Images:", "Images")):
        _line(out, label, info[key])
    _line(out, " Server Version:", info["ServerVersion"], False)
    _line(out, " Storage Driver:", info["Driver"], False)
    out += [f"  {k}: {v}" for k, v in info.get("DriverStatus") or ()]
    _line(out, " Logging Driver:", info["LoggingDriver"], False)
    _line(out, " Cgroup Driver:", info["CgroupDriver"], False)
    _line(out, " Cgroup Version:", info["CgroupVersion"], False)
    plugins = info["Plugins"]
    out += [" Plugins:", f"  Volume: {' '.join(plugins['Volume'])}",
            f"  Network: {' '.join(plugins['Network'])}", f"  Log: {' '.join(plugins['Log'])}",
            f" Swarm: {info['Swarm']['LocalNodeState']}"]
    out.append(" Runtimes: " + " ".join(info["Runtimes"]))
    _line(out, " Default Runtime:", info["DefaultRuntime"])
    _line(out, " Init Binary:", info["InitBinary"])
    out.append(f" runc version: {info['RuncCommit']['ID']}")
    out.append(f" init version: {info['InitCommit']['ID']}")
    out.append(" Security Options:")
    for option in info["SecurityOptions"]:
        fields = dict(part.partition("=")[::2] for part in option.split(","))
        out.append(f"  {fields.get('name', option)}")
        if fields.get("profile"):
            out.append(f"   Profile: {fields['profile']}")
    for label, key in ((" Kernel Version:", "KernelVersion"),
                       (" Operating System:", "OperatingSystem"), (" OSType:", "OSType"),
                       (" Architecture:", "Architecture")):
        _line(out, label, info[key], False)
    out += [f" CPUs: {info['NCPU']}", f" Total Memory: {bytes_size(info['MemTotal'])}"]
    _line(out, " Name:", info["Name"], False)
    _line(out, " ID:", info["ID"], False)
    out += [f" Docker Root Dir: {info['DockerRootDir']}", f" Debug Mode: {_go(info['Debug'])}"]
    for label, key in ((" HTTP Proxy:", "HttpProxy"), (" HTTPS Proxy:", "HttpsProxy"),
                       (" No Proxy:", "NoProxy")):
        _line(out, label, info[key], False)
    out.append(f" Registry: {info['IndexServerAddress']}")
    if info["Labels"] is not None:
        out += [" Labels:", *(f"  {label}" for label in info["Labels"])]
    out.append(f" Experimental: {_go(info['ExperimentalBuild'])}")
    out += _registry_lines(info["RegistryConfig"])
    out.append(f" Live Restore Enabled: {_go(info['LiveRestoreEnabled'])}")
    return "\n".join(out) + "\n\n"


def _registry_lines(config: dict[str, Any]) -> list[str]:
    out: list[str] = []
    insecure = [c["Name"] for c in config["IndexConfigs"].values() if not c["Secure"]]
    if insecure or config["InsecureRegistryCIDRs"]:
        out.append(" Insecure Registries:")
        out += [f"  {name}" for name in insecure]
        out += [f"  {cidr}" for cidr in config["InsecureRegistryCIDRs"]]
    mirrors = [f"  {m}" for m in config["Mirrors"]]
    mirrors += [f"  {m} ({name})" for name, c in config["IndexConfigs"].items()
                if name != "docker.io" for m in c["Mirrors"]]
    if mirrors:
        out += [" Registry Mirrors:", *mirrors]
    return out
