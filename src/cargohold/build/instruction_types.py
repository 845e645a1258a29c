"""The typed instruction dataclasses (re-exported by :mod:`cargohold.build.instructions`).

Instructions listed in :data:`EXPANDED_INSTRUCTIONS` override ``expand(expander)``; the
executor calls it with an :class:`~cargohold.build.shell_lex.EnvExpander` built from the
environment *before* the instruction, which gives Docker's ``ENV a=1 b=$a`` (b sees the old
a) for free.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from cargohold.build.instruction_support import Mount, parse_mount

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


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Common part: keyword (upper case), the source text and its lines."""

    keyword: str
    original: str
    start_line: int
    end_line: int

    def expand(self: _I, ex: Expander) -> _I:
        """The instruction with variables expanded (identity for non-expanding ones)."""
        return self


@dataclass(frozen=True)
class KeyValue:
    """KeyValue (dataclass)."""

    key: str
    value: str
    legacy: bool = False  # ``ENV key value`` form


@dataclass(frozen=True)
class ArgSpec:
    """ArgSpec (dataclass)."""

    name: str
    default: str | None = None


@dataclass(frozen=True)
class InlineFile:
    """A heredoc used as a file: COPY/ADD source or RUN script (``data`` already chomped)."""

    name: str
    data: str
    expand: bool
    chomp: bool = False


@dataclass(frozen=True, kw_only=True)
class FromInstruction(Instruction):
    """The FROM instruction."""

    base: str
    stage_name: str | None = None
    platform: str | None = None

    def expand(self, ex: Expander) -> FromInstruction:
        platform = ex.word(self.platform) if self.platform is not None else None
        return replace(self, base=ex.word(self.base), platform=platform)


@dataclass(frozen=True, kw_only=True)
class MaintainerInstruction(Instruction):
    """The MAINTAINER instruction."""

    maintainer: str


@dataclass(frozen=True, kw_only=True)
class _CommandLine(Instruction):
    """Shared part of RUN, CMD and ENTRYPOINT."""

    command: tuple[str, ...]
    shell_form: bool  # True: run through SHELL; False: JSON exec form
    files: tuple[InlineFile, ...] = ()


@dataclass(frozen=True, kw_only=True)
class RunInstruction(_CommandLine):
    """The RUN instruction."""

    mounts: tuple[Mount, ...] = ()
    mount_specs: tuple[str, ...] = ()
    network: str = "default"
    security: str = "sandbox"

    def expand(self, ex: Expander) -> RunInstruction:
        mounts = tuple(parse_mount(spec, ex.word) for spec in self.mount_specs)
        return replace(self, mounts=mounts)


@dataclass(frozen=True, kw_only=True)
class CmdInstruction(_CommandLine):
    """The CMD instruction."""

    pass


@dataclass(frozen=True, kw_only=True)
class EntrypointInstruction(_CommandLine):
    """The ENTRYPOINT instruction."""

    pass


@dataclass(frozen=True, kw_only=True)
class ShellInstruction(Instruction):
    """The SHELL instruction."""

    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class ExposeInstruction(Instruction):
    """The EXPOSE instruction."""

    ports: tuple[str, ...]

    def expand(self, ex: Expander) -> ExposeInstruction:
        return replace(self, ports=tuple(w for p in self.ports for w in ex.words(p)))


def _expand_pairs(pairs: tuple[KeyValue, ...], ex: Expander) -> tuple[KeyValue, ...]:
    return tuple(KeyValue(ex.word(p.key), ex.word(p.value), p.legacy) for p in pairs)


@dataclass(frozen=True, kw_only=True)
class EnvInstruction(Instruction):
    """The ENV instruction."""

    pairs: tuple[KeyValue, ...]

    def expand(self, ex: Expander) -> EnvInstruction:
        return replace(self, pairs=_expand_pairs(self.pairs, ex))


@dataclass(frozen=True, kw_only=True)
class LabelInstruction(Instruction):
    """The LABEL instruction."""

    pairs: tuple[KeyValue, ...]

    def expand(self, ex: Expander) -> LabelInstruction:
        return replace(self, pairs=_expand_pairs(self.pairs, ex))


@dataclass(frozen=True, kw_only=True)
class _Transfer(Instruction):
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


@dataclass(frozen=True, kw_only=True)
class AddInstruction(_Transfer):
    """The ADD instruction."""

    checksum: str = ""
    keep_git_dir: bool | None = None
    unpack: bool | None = None

    def expand(self, ex: Expander) -> AddInstruction:
        return replace(self, checksum=ex.word(self.checksum), **self._expanded(ex))


@dataclass(frozen=True, kw_only=True)
class CopyInstruction(_Transfer):
    """The COPY instruction."""

    from_: str = ""
    parents: bool = False

    def expand(self, ex: Expander) -> CopyInstruction:
        return replace(self, **self._expanded(ex))


@dataclass(frozen=True, kw_only=True)
class VolumeInstruction(Instruction):
    """The VOLUME instruction."""

    volumes: tuple[str, ...]

    def expand(self, ex: Expander) -> VolumeInstruction:
        return replace(self, volumes=tuple(ex.word(v) for v in self.volumes))


@dataclass(frozen=True, kw_only=True)
class UserInstruction(Instruction):
    """The USER instruction."""

    user: str

    def expand(self, ex: Expander) -> UserInstruction:
        return replace(self, user=ex.word(self.user))


@dataclass(frozen=True, kw_only=True)
class WorkdirInstruction(Instruction):
    """The WORKDIR instruction."""

    path: str

    def expand(self, ex: Expander) -> WorkdirInstruction:
        return replace(self, path=ex.word(self.path))


@dataclass(frozen=True, kw_only=True)
class StopsignalInstruction(Instruction):
    """The STOPSIGNAL instruction."""

    signal: str

    def expand(self, ex: Expander) -> StopsignalInstruction:
        return replace(self, signal=ex.word(self.signal))


@dataclass(frozen=True, kw_only=True)
class ArgInstruction(Instruction):
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


@dataclass(frozen=True, kw_only=True)
class HealthcheckInstruction(Instruction):
    """``test`` is Docker's HealthConfig.Test: ["NONE"], ["CMD", ...] or ["CMD-SHELL", cmd].

    Durations are nanoseconds (0 = not set, inherit the default), as in the image config.
    """

    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class OnbuildInstruction(Instruction):
    """The ONBUILD instruction."""

    expression: str  # the trigger's source text (with heredoc bodies), stored in the image
    trigger: Instruction
