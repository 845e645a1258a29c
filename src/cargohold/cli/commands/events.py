"""``cargohold events [--since T] [--until T] [-f KEY=VALUE]... [--format TEMPLATE]``.

docker/cli's ``system events``: the times are converted here (RFC 3339, Unix time, a
duration before now) and the engine replays and follows the shared event log.  Without
``--until`` it follows until interrupted (Ctrl-C ends it with 130, as Docker's CLI).  Each
event is one line, flushed at once::

    2026-12-04T02:01:34.123456789Z container start 3f4e... (image=busybox, name=web)

(the time in the local zone, attributes sorted by key), or the ``--format`` template
executed on the event (Go's field names: ``.Type``, ``.Action``, ``.Actor.ID``,
``.Actor.Attributes``, ``.TimeNano``; ``{{json .}}`` or ``json``: the API's object).
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from cargohold.cli.context import Context
from cargohold.errors import CargoholdError

if TYPE_CHECKING:
    from cargohold.engine.system.events import EventStream, Message

HELP = "Get real time events from the server"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", default="", help="Show all events created since timestamp")
    parser.add_argument("--until", default="", help="Stream events until this timestamp")
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="Filter output based on conditions provided")  # fmt: skip
    parser.add_argument("--format", default="",
                        help="Format the output using the given Go template")  # fmt: skip


def stamp(ns: int) -> str:
    """Go's ``rfc3339NanoFixed`` in the local zone: 2026-12-04T03:01:34.000000123+01:00."""
    secs, frac = divmod(ns, 1_000_000_000)
    local = time.localtime(secs)
    off = local.tm_gmtoff or 0
    zone = "Z"
    if off:
        sign = "+" if off > 0 else "-"
        zone = f"{sign}{abs(off) // 3600:02d}:{abs(off) % 3600 // 60:02d}"
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', local)}.{frac:09d}{zone}"


def pretty(msg: Message) -> str:
    """docker/cli's ``prettyPrintEvent``."""
    out = ""
    if msg.TimeNano:
        out = stamp(msg.TimeNano) + " "
    elif msg.Time:
        out = stamp(msg.Time * 1_000_000_000) + " "
    out += f"{msg.Type} {msg.Action} {msg.Actor.ID}"
    attrs = msg.Actor.Attributes
    if attrs:
        out += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return out + "\n"


def _template(fmt: str) -> str:
    """The template to use ("" for the default line), checked on an empty event as docker
    does; a bad one is Docker's exit 64."""
    if not fmt:
        return ""
    from cargohold.cli.template import render
    from cargohold.engine.system.events import Message
    from cargohold.errors import ClientError

    body = "{{json .}}" if fmt == "json" else fmt
    try:
        render(body, Message())
    except ClientError as e:
        text = e.message.removeprefix("template parsing error: ")
        raise _FormatError(f"Error parsing format: {text}") from None
    return body


class _FormatError(Exception):
    pass


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.cli.commands._container_errors import report
    from cargohold.engine.system.events import (
        EventsRequest,
        client_timestamp,
        parse_filter_words,
    )

    try:
        body = _template(args.format)
    except _FormatError as e:
        print(e, file=ctx.stderr)
        return 64
    try:
        filters = parse_filter_words(args.filter)
    except CargoholdError as e:
        print(f"cargohold: {e.message}\nSee 'cargohold events --help'.", file=ctx.stderr)
        return 125
    try:
        now = time.time_ns()
        request = EventsRequest(
            since=client_timestamp(args.since, now) if args.since else "",
            until=client_timestamp(args.until, now) if args.until else "",
            filters=filters,
        )
        stream = ctx.engine.events(request)
        _print(ctx, stream, body)
    except CargoholdError as e:
        return report(ctx.stderr, e)
    return 0


def _print(ctx: Context, stream: EventStream, body: str) -> None:
    """Each event as it comes; the stream's descriptors are released however this ends."""
    from cargohold.cli.template import render

    out = ctx.stdout
    try:
        for msg in stream:
            out.write(render(body, msg) + "\n" if body else pretty(msg))
            out.flush()
    finally:
        stream.close()
