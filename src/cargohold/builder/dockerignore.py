""".dockerignore reading and matching with Docker's semantics (moby/patternmatcher).

* lines starting with ``#`` are comments; blank lines are skipped; whitespace around a
  pattern is removed; patterns are cleaned like Go's ``filepath.Clean`` and a leading ``/``
  is dropped (``/a/b`` == ``a/b``);
* ``*`` and ``?`` never match ``/``; ``[...]`` is a character class; ``**`` matches any
  number of directories (also none); ``\\`` escapes the next character;
* ``!pattern`` re-includes; the last pattern that matches a path decides;
* a pattern that matches a parent directory matches everything inside it.

The context walker asks :meth:`IgnoreMatcher.matches` for every path and, for an excluded
directory, :meth:`IgnoreMatcher.may_contain_exceptions` to learn whether it must still descend
into it (an exception such as ``!dir/keep`` may re-include something inside).
"""

from __future__ import annotations

import re
from pathlib import Path

import msgspec

from cargohold.errors import InvalidArgument

_REGEX_ESCAPE = frozenset(".+()|{}$")


def clean_path(path: str) -> str:
    """Go's ``path.Clean`` for slash-separated paths."""
    if not path:
        return "."
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = "/".join(out)
    if rooted:
        return "/" + cleaned
    return cleaned or "."


def read_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore file, normalised as Docker's ignorefile.ReadAll."""
    if text.startswith("\ufeff"):
        text = text[1:]
    patterns: list[str] = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = clean_path(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


class Pattern(msgspec.Struct, frozen=True):
    """One compiled pattern; ``text`` is the cleaned pattern without its ``!``."""

    text: str
    exclusion: bool
    kind: str  # "exact" | "prefix" | "suffix" | "regex"
    regex: re.Pattern[str] | None

    @staticmethod
    def compile(raw: str) -> Pattern:
        text = clean_path(raw.strip())
        exclusion = text.startswith("!")
        if exclusion:
            if len(text) == 1:
                raise InvalidArgument('illegal exclusion pattern: "!"')
            text = text[1:]
        kind, source = _translate(text)
        regex = None
        if kind == "regex":
            try:
                regex = re.compile(source)
            except re.error as exc:
                raise InvalidArgument(f"syntax error in pattern {raw!r}: {exc}") from None
        return Pattern(text, exclusion, kind, regex)

    def match(self, path: str) -> bool:
        if self.kind == "exact":
            return path == self.text
        if self.kind == "prefix":
            return path.startswith(self.text[:-2])
        if self.kind == "suffix":
            suffix = self.text[2:]
            return path.endswith(suffix) or (suffix.startswith("/") and path == suffix[1:])
        assert self.regex is not None
        return self.regex.match(path) is not None

    def match_self_or_parent(self, path: str) -> bool:
        if self.match(path):
            return True
        parts = path.split("/")
        return any(self.match("/".join(parts[:i])) for i in range(1, len(parts)))


def _translate(pattern: str) -> tuple[str, str]:
    """Pattern -> (match kind, regex source), as patternmatcher's compile does."""
    out = ["^"]
    kind = "exact"
    i, n = 0, len(pattern)
    while i < n:
        start = i
        ch = pattern[i]
        i += 1
        if ch == "*" and i < n and pattern[i] == "*":
            i += 1
            if i < n and pattern[i] == "/":
                i += 1
            if i >= n:
                if kind == "exact":
                    kind = "prefix"
                else:
                    out.append(".*")
                    kind = "regex"
            else:
                out.append("(.*/)?")
                kind = "regex"
            if start == 0:
                kind = "suffix"
        elif ch == "*":
            out.append("[^/]*")
            kind = "regex"
        elif ch == "?":
            out.append("[^/]")
            kind = "regex"
        elif ch in _REGEX_ESCAPE:
            out.append("\\" + ch)
        elif ch == "\\":
            if i < n:
                out.append("\\" + pattern[i])
                i += 1
                kind = "regex"
            else:
                out.append("\\\\")
        elif ch in "[]":
            out.append(ch)
            kind = "regex"
        else:
            out.append(ch)
    out.append(r"\Z")
    return kind, "".join(out)


class IgnoreMatcher:
    """Decides which context paths a .dockerignore excludes."""

    def __init__(self, patterns: list[str]) -> None:
        self.patterns = tuple(Pattern.compile(p) for p in patterns if p.strip())
        self.has_exclusions = any(p.exclusion for p in self.patterns)

    @classmethod
    def from_file(cls, path: str | Path) -> IgnoreMatcher:
        """Read a .dockerignore file; a missing file ignores nothing."""
        try:
            text = Path(path).read_text(encoding="utf-8", errors="surrogateescape")
        except FileNotFoundError:
            return cls([])
        return cls(read_patterns(text))

    @classmethod
    def from_text(cls, text: str) -> IgnoreMatcher:
        return cls(read_patterns(text))

    def matches(self, relpath: str) -> bool:
        """True if the context-relative path is excluded (itself or through a parent)."""
        path = clean_path(relpath.lstrip("/"))
        if path == ".":
            return False
        matched = False
        for pattern in self.patterns:
            if pattern.exclusion != matched:
                continue
            if pattern.match_self_or_parent(path):
                matched = not pattern.exclusion
        return matched

    def may_contain_exceptions(self, reldir: str) -> bool:
        """Whether some ``!`` pattern could re-include a path below the directory.

        When this is False and :meth:`matches` is True for the directory, the walker can
        skip the whole directory.  The answer errs on the side of True.
        """
        path = clean_path(reldir.lstrip("/"))
        dirs = [] if path == "." else path.split("/")
        return any(p.exclusion and _could_reach_below(p.text, dirs) for p in self.patterns)


def _could_reach_below(pattern: str, dirs: list[str]) -> bool:
    """Could ``pattern`` match the directory ``dirs``, an ancestor, or something below it?"""
    segments = pattern.split("/")
    for i, segment in enumerate(segments):
        if "**" in segment:
            return True
        if i >= len(dirs):
            return True  # the pattern goes deeper than the directory
        if not _segment_matches(segment, dirs[i]):
            return False
    return True  # the pattern matches the directory itself or an ancestor


def _segment_matches(segment: str, name: str) -> bool:
    try:
        return Pattern.compile(segment).match(name)
    except InvalidArgument:
        return True
