"""Entry point: a lazy command table so each call imports only the verb it runs.

Every verb lives in ``cargohold.cli.commands.<module>`` and exposes::

    HELP: str                                  # one line for the command list
    def configure(parser: argparse.ArgumentParser) -> None
    def run(args: argparse.Namespace, ctx: Context) -> int

Group verbs (``image ls``, ``container rm``) map onto the same modules.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence

from cargohold import __version__
from cargohold.cli.context import Context

# verb -> (module, one-line help).  Modules that do not exist yet are simply not listed.
COMMANDS: dict[str, tuple[str, str]] = {
    "images": ("images", "List images"),
    "tag": ("tag", "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"),
    "rmi": ("rmi", "Remove one or more images"),
    "inspect": ("inspect", "Return low-level information on objects"),
    "history": ("history", "Show the history of an image"),
    "import": ("import_", "Import the contents from a tarball to create a filesystem image"),
    "save": ("save", "Save one or more images to a tar archive"),
    "load": ("load", "Load an image from a tar archive or STDIN"),
    "create": ("create", "Create a new container"),
    "run": ("run", "Run a command in a new container"),
    "start": ("start", "Start one or more stopped containers"),
    "stop": ("stop", "Stop one or more running containers"),
    "restart": ("restart", "Restart one or more containers"),
    "kill": ("kill", "Kill one or more running containers"),
    "rm": ("rm", "Remove one or more containers"),
    "ps": ("ps", "List containers"),
    "logs": ("logs", "Fetch the logs of a container"),
    "exec": ("exec_", "Run a command in a running container"),
    "attach": ("attach", "Attach to a running container"),
    "wait": ("wait", "Block until one or more containers stop, then print their exit codes"),
    "pause": ("pause", "Pause all processes within one or more containers"),
    "unpause": ("unpause", "Unpause all processes within one or more containers"),
    "top": ("top", "Display the running processes of a container"),
    "cp": ("cp", "Copy files/folders between a container and the local filesystem"),
    "rename": ("rename", "Rename a container"),
    "diff": ("diff", "Inspect changes to files or directories on a container's filesystem"),
    "stats": ("stats", "Display a live stream of container(s) resource usage statistics"),
    "export": ("export", "Export a container's filesystem as a tar archive"),
    "commit": ("commit", "Create a new image from a container's changes"),
    "port": ("port", "List port mappings or a specific mapping for the container"),
    "build": ("build", "Build an image from a Dockerfile"),
    "pull": ("pull", "Pull an image or a repository from a registry"),
    "push": ("push", "Push an image or a repository to a registry"),
    "login": ("login", "Log in to a registry"),
    "logout": ("logout", "Log out from a registry"),
    "version": ("version", "Show the cargohold version information"),
    "info": ("info", "Display system-wide information"),
    "update": ("update", "Update configuration of one or more containers"),
    "events": ("events", "Get real time events from the server"),
}

# group -> {subverb -> module}
GROUPS: dict[str, tuple[str, dict[str, str]]] = {
    "image": (
        "Manage images",
        {
            "ls": "images",
            "list": "images",
            "inspect": "image_inspect",
            "rm": "rmi",
            "remove": "rmi",
            "tag": "tag",
            "history": "history",
            "prune": "image_prune",
            "import": "import_",
            "save": "save",
            "load": "load",
            "pull": "pull",
            "push": "push",
            "build": "build",
            "bootstrap": "bootstrap",
            "analyze": "image_analyze",
        },
    ),
    "container": (
        "Manage containers",
        {
            "ls": "ps",
            "list": "ps",
            "ps": "ps",
            "create": "create",
            "run": "run",
            "start": "start",
            "stop": "stop",
            "restart": "restart",
            "kill": "kill",
            "rm": "rm",
            "remove": "rm",
            "logs": "logs",
            "exec": "exec_",
            "attach": "attach",
            "wait": "wait",
            "pause": "pause",
            "unpause": "unpause",
            "top": "top",
            "cp": "cp",
            "rename": "rename",
            "diff": "diff",
            "stats": "stats",
            "export": "export",
            "commit": "commit",
            "port": "port",
            "inspect": "container_inspect",
            "prune": "container_prune",
            "update": "update",
        },
    ),
    "volume": (
        "Manage volumes",
        {
            "create": "volume_create",
            "ls": "volume_ls",
            "list": "volume_ls",
            "inspect": "volume_inspect",
            "rm": "volume_rm",
            "remove": "volume_rm",
            "prune": "volume_prune",
        },
    ),
    "network": (
        "Manage networks",
        {
            "create": "network_create",
            "ls": "network_ls",
            "list": "network_ls",
            "inspect": "network_inspect",
            "rm": "network_rm",
            "remove": "network_rm",
            "prune": "network_prune",
            "connect": "network_connect",
            "disconnect": "network_disconnect",
        },
    ),
    "system": (
        "Manage cargohold",
        {"df": "system_df", "events": "events", "info": "info", "prune": "system_prune"},
    ),
    "builder": ("Manage builds", {"prune": "builder_prune"}),
    "manifest": ("Manage image manifests and manifest lists",
                 {"inspect": "manifest_inspect"}),
}


class UsageError(Exception):
    """A command-line usage error; reported Docker's way with exit status 125."""


class HelpShown(Exception):
    """Help text to print on stdout with exit status 0."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so errors use Docker's wording and code."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message}\nSee '{self.prog} --help'.")


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(f"cargohold.cli.commands.{module}") is not None


def _top_help() -> str:
    lines = ["Usage:  cargohold [OPTIONS] COMMAND", "", "A daemonless, Docker-compatible "
             "container engine", "", "Management Commands:"]
    for name, (desc, _) in GROUPS.items():
        lines.append(f"  {name:<11} {desc}")
    lines += ["", "Commands:"]
    for name, (module, desc) in COMMANDS.items():
        if _module_exists(module):
            lines.append(f"  {name:<11} {desc}")
    lines += ["", "Run 'cargohold COMMAND --help' for more information on a command."]
    return "\n".join(lines)


def _global_parser() -> ArgumentParser:
    p = ArgumentParser(prog="cargohold", add_help=False)
    p.add_argument("--root", help="storage root directory (default /var/lib/cargohold)")
    p.add_argument("--runroot", help="run-state directory (default /run/cargohold)")
    p.add_argument("--runtime", help="OCI runtime: runc (default), a name defined in the "
                   "configuration file's [runtimes], or the path of a runc-compatible binary")
    p.add_argument("--storage-driver", help="overlay or vfs")
    p.add_argument("-D", "--debug", action="store_true")
    p.add_argument("-l", "--log-level", default="info")
    p.add_argument("-v", "--version", action="store_true")
    p.add_argument("-h", "--help", action="store_true")
    return p


def _resolve(argv: list[str]) -> tuple[str, str, list[str]] | None:
    """Map ``argv`` (after global options) to (prog, module, remaining args)."""
    if not argv:
        return None
    verb, rest = argv[0], argv[1:]
    if verb in GROUPS:
        desc, subs = GROUPS[verb]
        if not rest or rest[0] in ("-h", "--help"):
            names = "\n".join(f"  {s}" for s in subs)
            raise HelpShown(f"Usage:  cargohold {verb} COMMAND\n\n{desc}\n\nCommands:\n{names}")
        sub = rest[0]
        if sub not in subs or not _module_exists(subs[sub]):
            raise UsageError(
                f"unknown command \"{sub}\" for \"cargohold {verb}\"\n"
                f"See 'cargohold {verb} --help'."
            )
        return f"cargohold {verb} {sub}", subs[sub], rest[1:]
    if verb in COMMANDS and _module_exists(COMMANDS[verb][0]):
        return f"cargohold {verb}", COMMANDS[verb][0], rest
    raise UsageError(f"unknown command \"{verb}\" for \"cargohold\"\nSee 'cargohold --help'.")


# Verbs whose process may end with os._exit once its output is flushed: they leave no thread,
# atexit handler or finalizer behind, and interpreter teardown of the modules they import
# costs ~8 ms per call.
FAST_EXIT = frozenset({"run", "create", "start", "rm"})


def main(argv: Sequence[str] | None = None) -> int:
    code = _main(argv)
    if argv is None and _fast_exit_ok:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            return code
        os._exit(code)
    return code


_fast_exit_ok = False


def _main(argv: Sequence[str] | None) -> int:
    global _fast_exit_ok
    from cargohold.cli.output import report_error

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        global_args, rest = _split_globals(args)
        gopts = _global_parser().parse_args(global_args)
        if gopts.version:
            print(f"cargohold version {__version__}")
            return 0
        resolved = _resolve(rest)
        if resolved is None:
            print(_top_help())
            return 0
        prog, module_name, cmd_args = resolved
        _fast_exit_ok = module_name in FAST_EXIT
        module = importlib.import_module(f"cargohold.cli.commands.{module_name}")
        parser = ArgumentParser(prog=prog, description=getattr(module, "HELP", None))
        module.configure(parser)
        ns = parser.parse_args(cmd_args)
        ctx = Context.from_options(gopts)
        return int(module.run(ns, ctx))
    except HelpShown as e:
        print(str(e))
        return 0
    except UsageError as e:
        print(f"cargohold: {e}", file=sys.stderr)
        return 125
    except KeyboardInterrupt:
        return 130
    except BaseException as e:  # every error ends in a Docker-style message
        return report_error(e)


def _split_globals(args: list[str]) -> tuple[list[str], list[str]]:
    """Split argv into the global options before the verb and everything from the verb on."""
    takes_value = {"--root", "--runroot", "--runtime", "--storage-driver", "-l", "--log-level"}
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("-"):
            break
        if a in takes_value:
            i += 2
            continue
        i += 1
    return args[:i], args[i:]
