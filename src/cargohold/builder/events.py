"""What a build reports, as data: the executor hands these to the sink of that one build.

Two renderings read the same events: BuildKit's ``#N`` lines and ``[+] Building`` block for
``cargohold build`` (``progress.py``, ``progress_tty.py``), and the classic builder's JSON
stream the Engine API sends (``Step 2/5 : RUN x``, `` ---> Running in <id>``, `` ---> Using
cache``, `` ---> <id>``, ``Successfully built``/``tagged``).  Pulls of ``FROM`` arrive as
Docker's JSON messages (``transport/registry/events.py``) in the same sink, and so do the
build's last message: ``{"aux":{"ID":...}}`` on success, the error (with a failed RUN's exit
code) on failure.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from cargohold.transport.registry.events import JSONMessage


class BuildEvent(msgspec.Struct, frozen=True):
    """Base of the build's own events."""


class Planned(BuildEvent, frozen=True):
    """The build will run ``steps`` vertices (BuildKit's count: the definition, each
    stage's FROM and instructions, the export); the Dockerfile has ``instructions``
    (the classic ``Step N/M``'s M: meta ARGs and every stage's instructions and FROM)."""

    steps: int
    instructions: int


class StepStarted(BuildEvent, frozen=True):
    """A vertex starts.  ``name`` is BuildKit's (``[2/3] RUN make``, ``[internal] load build
    definition from Dockerfile``, ``exporting to image``); ``instruction`` the instruction as
    written (empty for the definition and the export) and ``number`` its place in the file
    (the classic ``Step N``; 0 for the definition, the export and ONBUILD triggers)."""

    name: str
    instruction: str = ""
    number: int = 0


class StepNote(BuildEvent, frozen=True):
    """A line under the running step; a later note with the same ``key`` replaces it."""

    text: str
    key: str | None = None


class StepOutput(BuildEvent, frozen=True):
    """Bytes a RUN step's process wrote (stdout and stderr, as they came)."""

    data: bytes


class StepContainer(BuildEvent, frozen=True):
    """The RUN step's process runs in the working container ``id``."""

    id: str


class StepCached(BuildEvent, frozen=True):
    """The step's result came from the cache; ``key`` names that result."""

    key: str = ""


class StepDone(BuildEvent, frozen=True):
    """The step ran and made the result ``key``; ``container``: its working container, now
    removed (empty when the step needed none)."""

    key: str = ""
    container: str = ""


class StepFailed(BuildEvent, frozen=True):
    """The running step failed with ``message`` (the build's error follows)."""

    message: str


class BuildWarning(BuildEvent, frozen=True):
    message: str


class ImageWritten(BuildEvent, frozen=True):
    """The export wrote (or found) the image ``id``."""

    id: str


class ImageTagged(BuildEvent, frozen=True):
    """The export named the image ``name`` (normalised: docker.io/library/x:latest)."""

    name: str


BuildSink = Callable[[BuildEvent | JSONMessage], None]


def discard(event: BuildEvent | JSONMessage) -> None:
    """The sink of a caller that shows nothing."""
