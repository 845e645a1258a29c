"""``events`` / ``GET /events``: the shared event log (util/eventlog.py) read and followed with
Docker's filters and time window.

Docker's rules (moby api/server/router/system, daemon/events):

- without ``since`` and ``until`` only new events are sent; with either, the kept events in
  the window come first (``since`` <= time <= ``until``);
- ``until`` in the past: only those, then the stream ends; ``until`` ahead: new events
  until then; neither: new events until the caller closes the stream;
- filters (:class:`EventFilter`): values of one key are ORed, keys ANDed, ``label`` values
  ANDed; ``container``/``image``/``network``/``volume``/``daemon`` match the actor's id or
  its ``name`` attribute (a prefix of either; ``image`` exactly, also without the tag).

Times arrive as the API has them (Unix seconds with an optional fraction,
:func:`api_timestamp`); the CLI converts its ``--since``/``--until`` words first, as the
docker CLI does (:func:`client_timestamp`: RFC 3339, Unix time, or a duration before now).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import msgspec

from cargohold.errors import ClientError, InvalidArgument
from cargohold.util.eventlog import EventLog
from cargohold.util.eventlog_read import Follower, Message

__all__ = ["EventFilter", "EventStream", "EventsRequest", "Message", "api_timestamp",
           "client_timestamp", "open_events", "parse_filter_words"]  # fmt: skip

_NAMED = ("daemon", "container", "plugin", "volume", "network", "node", "service", "secret",
          "config")  # fmt: skip
_FUZZY_EVENTS = frozenset({"health_status", "exec_create", "exec_start"})


class EventsRequest(msgspec.Struct, frozen=True):
    """The query of ``GET /events``: ``since``/``until`` as Unix times ("" = unset) and
    Docker's ``filters`` map (``{"type": ["container"], "label": ["a=b"]}``)."""

    since: str = ""
    until: str = ""
    filters: dict[str, list[str]] = msgspec.field(default_factory=dict)


# ------------------------------------------------------------------------------ times


def client_timestamp(value: str, now_ns: int | None = None) -> str:
    """The docker CLI's ``GetTimestamp``: ``value`` as the API's Unix-time string.  A Go
    duration counts back from now (whole seconds, as Docker), RFC 3339 without a zone is
    local time, a Unix time passes as it is."""
    from cargohold.container.logs import parse_duration, parse_timestamp

    now = time.time_ns() if now_ns is None else now_ns
    text = value.strip()
    duration = parse_duration(text)
    if duration is not None and text != "0":
        return str((now - duration) // 1_000_000_000)
    try:
        ns = parse_timestamp(text, now)
    except InvalidArgument:
        raise ClientError(f'failed to parse value as time or duration: "{value}"') from None
    return f"{ns // 1_000_000_000}.{ns % 1_000_000_000:09d}"


def api_timestamp(value: str) -> int | None:
    """moby's ``ParseTimestamps``: "seconds[.fraction]" in ns; None for ""."""
    if value == "":
        return None
    secs, dot, frac = value.partition(".")
    try:
        seconds = int(secs)
        nanos = int(frac) if dot else 0
    except ValueError:
        raise InvalidArgument(f'strconv.ParseInt: parsing "{value}": invalid syntax') from None
    if dot:
        nanos = int(nanos * 10 ** (9 - len(frac)))
    return seconds * 1_000_000_000 + nanos


# ------------------------------------------------------------------------------ filters


def parse_filter_words(words: Iterable[str]) -> dict[str, list[str]]:
    """``-f key=value`` words as docker/cli's ``filters.ParseFlag`` reads them (key
    lowercased, both sides trimmed); a word without ``=`` is the CLI's flag error."""
    out: dict[str, list[str]] = {}
    for word in words:
        if not word:
            continue
        key, eq, value = word.partition("=")
        if not eq:
            raise ClientError(
                f'invalid argument "{word}" for "-f, --filter" flag: bad format of filter '
                "(expected name=value)"
            )
        values = out.setdefault(key.strip().lower(), [])
        if value.strip() not in values:
            values.append(value.strip())
    return out


def _strip_tag(image: str) -> str:
    """moby's ``stripTag``: the familiar repository name, or ``image`` when not a name."""
    from cargohold.oci.reference import parse_reference

    try:
        return parse_reference(image).name_familiar
    except InvalidArgument:
        return image


class EventFilter:
    """moby's ``events.Filter.Include`` over Docker's filters map."""

    def __init__(self, filters: Mapping[str, Sequence[str]]) -> None:
        self.f = {k: frozenset(v) for k, v in filters.items()}

    def _exact(self, key: str, source: str) -> bool:
        values = self.f.get(key)
        return not values or source in values

    def _fuzzy(self, key: str, source: str) -> bool:
        values = self.f.get(key)
        return not values or any(source.startswith(v) for v in values)

    def include(self, ev: Message) -> bool:
        if not self.f:
            return True
        if self.f.get("event", frozenset()) & _FUZZY_EVENTS:
            if not self._fuzzy("event", ev.Action):
                return False
        elif not self._exact("event", ev.Action):
            return False
        if not self._exact("type", ev.Type):
            return False
        if "scope" in self.f and not self._exact("scope", ev.Scope):
            return False
        attrs = ev.Actor.Attributes
        name = attrs.get("name", "")
        for key in _NAMED:
            if not (self._fuzzy(key, ev.Actor.ID) or self._fuzzy(key, name)):
                return False
        return self._match_image(ev) and self._match_labels(attrs)

    def _match_image(self, ev: Message) -> bool:
        if not self.f.get("image"):
            return True
        named = ev.Actor.Attributes.get("name" if ev.Type == "image" else "image", "")
        candidates = (ev.Actor.ID, named, _strip_tag(ev.Actor.ID), _strip_tag(named))
        return any(c in self.f["image"] for c in candidates)

    def _match_labels(self, attrs: Mapping[str, str]) -> bool:
        for want in self.f.get("label", ()):
            key, eq, value = want.partition("=")
            if key not in attrs or (eq and attrs[key] != value):
                return False
        return True


# ------------------------------------------------------------------------------ the stream


class EventStream:
    """The events of one request, in log order: iterate (blocks while following), and
    :meth:`close` from any thread to end it (a server whose client went away)."""

    def __init__(
        self, follower: Follower, since: int | None, until: int | None, flt: EventFilter,
        follow: bool,
    ) -> None:  # fmt: skip
        self._follower = follower
        self._since, self._until = since, until
        self._filter = flt
        self._follow = follow
        self._started = False

    def __iter__(self) -> Iterator[Message]:
        self._started = True
        return self._run()

    def _run(self) -> Iterator[Message]:
        f = self._follower
        until = self._until
        try:
            for msg in f.read():
                if self._in_window(msg):
                    yield msg
            if not self._follow or (until is not None and until < time.time_ns()):
                return
            while True:
                left = None if until is None else (until - time.time_ns()) / 1e9
                if left is not None and left <= 0:
                    return
                if not f.wait(left):
                    return
                for msg in f.read():
                    if self._filter.include(msg):
                        yield msg
        finally:
            f.close()

    def _in_window(self, msg: Message) -> bool:
        if self._since is not None and msg.TimeNano < self._since:
            return False
        if self._until is not None and msg.TimeNano > self._until:
            return False
        return self._filter.include(msg)

    def close(self) -> None:
        self._follower.wake()
        if not self._started:  # never iterated: nobody else releases the descriptors
            self._follower.close()


def open_events(runroot: Path, request: EventsRequest, follow: bool = True) -> EventStream:
    """The stream ``GET /events`` sends: the request checked first (Docker's errors)."""
    since = api_timestamp(request.since)
    until = api_timestamp(request.until)
    if until is not None and since is not None and until < since:
        raise InvalidArgument(
            f"`since` time ({request.since}) cannot be after `until` time ({request.until})"
        )
    flt = EventFilter(request.filters)
    replay = since is not None or until is not None
    return EventStream(Follower(EventLog(runroot), replay), since, until, flt, follow)
