"""The typed instructions as frozen msgspec Structs (re-exported by :mod:`.instructions`).

Instructions listed in :data:`EXPANDED_INSTRUCTIONS` override ``expand(expander)``; the
executor calls it with an :class:`~cargohold.builder.shell_lex.EnvExpander` built from the
environment *before* the instruction, which gives Docker's ``ENV a=1 b=$a`` (b sees the old
a) for free.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

import msgspec
from msgspec.structs import replace

from cargohold.builder.instruction_support import Mount, parse_mount

INSTRUCTION_NAMES = (
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME",
    "WORKDIR",
)  # fmt: skip

# Instructions whose arguments get word expansion, as in BuildKit's dockerfile2llb.  FROM is
# expanded with the global ARGs only (base name and --platform); RUN only in its --mount
# values; ADD/COPY in sources, destination, --chown, --chmod (ADD also --checksum) and, with
# ``expand`` set, heredoc bodies.  Never expanded: CMD, ENTRYPOINT, SHELL, HEALTHCHECK,
# MAINTAINER, ONBUILD (its trigger is expanded when it runs in the child build), COPY --from.
EXPANDED_INSTRUCTIONS = frozenset(
    {"ADD", "ARG", "COPY", "ENV", "EXPOSE", "FROM", "LABEL", "RUN", "STOPSIGNAL", "USER",
     "VOLUME", "WORKDIR"}
)  # fmt: skip


class Expander(Protocol):
    """What ``expand`` needs: shell_lex.EnvExpander implements it."""

    def word(self, text: str) -> str: ...

    def words(self, text: str) -> list[str]: ...

    def raw(self, text: str) -> str: ...


_I = TypeVar("_I", bound="Instruction")


class Instruction(msgspec.Struct, frozen=True, kw_only=True):
    """Common part: keyword (upper case), the source text and its lines."""

    keyword: str
    original: str
    start_line: int
    end_line: int

    def expand(self: _I, ex: Expander) -> _I:
        """The instruction with variables expanded (identity for non-expanding ones)."""
        return self


class KeyValue(msgspec.Struct, frozen=True):

    key: str
    value: str
    legacy: bool = False  # ``ENV key value`` form


class ArgSpec(msgspec.Struct, frozen=True):

    name: str
    default: str | None = None


class InlineFile(msgspec.Struct, frozen=True):
    """A heredoc used as a file: COPY/ADD source or RUN script (``data`` already chomped)."""

    name: str
    data: str
    expand: bool
    chomp: bool = False


class FromInstruction(Instruction, frozen=True, kw_only=True):
    """The FROM instruction."""

    base: str
    stage_name: str | None = None
    platform: str | None = None

    def expand(self, ex: Expander) -> FromInstruction:
        platform = ex.word(self.platform) if self.platform is not None else None
        return replace(self, base=ex.word(self.base), platform=platform)


class MaintainerInstruction(Instruction, frozen=True, kw_only=True):
    """The MAINTAINER instruction."""

    maintainer: str


class _CommandLine(Instruction, frozen=True, kw_only=True):
    """Shared part of RUN, CMD and ENTRYPOINT."""

    command: tuple[str, ...]
    shell_form: bool  # True: run through SHELL; False: JSON exec form
    files: tuple[InlineFile, ...] = ()


class RunInstruction(_CommandLine, frozen=True, kw_only=True):
    """The RUN instruction."""

    mounts: tuple[Mount, ...] = ()
    mount_specs: tuple[str, ...] = ()
    network: str = "default"
    security: str = "sandbox"

    def expand(self, ex: Expander) -> RunInstruction:
        mounts = tuple(parse_mount(spec, ex.word) for spec in self.mount_specs)
        return replace(self, mounts=mounts)


class CmdInstruction(_CommandLine, frozen=True, kw_only=True):
    """The CMD instruction."""

    pass


class EntrypointInstruction(_CommandLine, frozen=True, kw_only=True):
    """The ENTRYPOINT instruction."""

    pass


class ShellInstruction(Instruction, frozen=True, kw_only=True):
    """The SHELL instruction."""

    shell: tuple[str, ...]


class ExposeInstruction(Instruction, frozen=True, kw_only=True):
    """The EXPOSE instruction."""

    ports: tuple[str, ...]

    def expand(self, ex: Expander) -> ExposeInstruction:
        return replace(self, ports=tuple(w for p in self.ports for w in ex.words(p)))


def _expand_pairs(pairs: tuple[KeyValue, ...], ex: Expander) -> tuple[KeyValue, ...]:
    return tuple(KeyValue(ex.word(p.key), ex.word(p.value), p.legacy) for p in pairs)


class EnvInstruction(Instruction, frozen=True, kw_only=True):
    """The ENV instruction."""

    pairs: tuple[KeyValue, ...]

    def expand(self, ex: Expander) -> EnvInstruction:
        return replace(self, pairs=_expand_pairs(self.pairs, ex))


class LabelInstruction(Instruction, frozen=True, kw_only=True):
    """The LABEL instruction."""

    pairs: tuple[KeyValue, ...]

    def expand(self, ex: Expander) -> LabelInstruction:
        return replace(self, pairs=_expand_pairs(self.pairs, ex))


class _Transfer(Instruction, frozen=True, kw_only=True):
    """Shared part of ADD and COPY."""

    sources: tuple[str, ...]
    dest: str
    contents: tuple[InlineFile, ...] = ()
    chown: str = ""
    chmod: str = ""
    link: bool = False
    excludes: tuple[str, ...] = ()

    def _expanded(self, ex: Expander) -> dict[str, Any]:
        contents = tuple(replace(f, data=ex.raw(f.data)) if f.expand else f for f in self.contents)
        return {
            "sources": tuple(ex.word(s) for s in self.sources),
            "dest": ex.word(self.dest),
            "contents": contents,
            "chown": ex.word(self.chown),
            "chmod": ex.word(self.chmod),
        }


class AddInstruction(_Transfer, frozen=True, kw_only=True):
    """The ADD instruction."""

    checksum: str = ""
    keep_git_dir: bool | None = None
    unpack: bool | None = None

    def expand(self, ex: Expander) -> AddInstruction:
        return replace(self, checksum=ex.word(self.checksum), **self._expanded(ex))


class CopyInstruction(_Transfer, frozen=True, kw_only=True):
    """The COPY instruction."""

    from_: str = ""
    parents: bool = False

    def expand(self, ex: Expander) -> CopyInstruction:
        return replace(self, **self._expanded(ex))


class VolumeInstruction(Instruction, frozen=True, kw_only=True):
    """The VOLUME instruction."""

    volumes: tuple[str, ...]

    def expand(self, ex: Expander) -> VolumeInstruction:
        return replace(self, volumes=tuple(ex.word(v) for v in self.volumes))


class UserInstruction(Instruction, frozen=True, kw_only=True):
    """The USER instruction."""

    user: str

    def expand(self, ex: Expander) -> UserInstruction:
        return replace(self, user=ex.word(self.user))


class WorkdirInstruction(Instruction, frozen=True, kw_only=True):
    """The WORKDIR instruction."""

    path: str

    def expand(self, ex: Expander) -> WorkdirInstruction:
        return replace(self, path=ex.word(self.path))


class StopsignalInstruction(Instruction, frozen=True, kw_only=True):
    """The STOPSIGNAL instruction."""

    signal: str

    def expand(self, ex: Expander) -> StopsignalInstruction:
        return replace(self, signal=ex.word(self.signal))


class ArgInstruction(Instruction, frozen=True, kw_only=True):
    """The ARG instruction."""

    args: tuple[ArgSpec, ...]

    def expand(self, ex: Expander) -> ArgInstruction:
        return replace(
            self,
            args=tuple(
                ArgSpec(ex.word(a.name), None if a.default is None else ex.word(a.default))
                for a in self.args
            ),
        )


class HealthcheckInstruction(Instruction, frozen=True, kw_only=True):
    """``test`` is Docker's HealthConfig.Test: ["NONE"], ["CMD", ...] or ["CMD-SHELL", cmd].

    Durations are nanoseconds (0 = not set, inherit the default), as in the image config.
    """

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


class OnbuildInstruction(Instruction, frozen=True, kw_only=True):
    """The ONBUILD instruction."""

    expression: str  # the trigger's source text (with heredoc bodies), stored in the image
    trigger: Instruction
