"""Dockerfile parser: text -> a flat list of :class:`Node` (one per instruction).

Follows BuildKit's ``frontend/dockerfile/parser`` rules: parser directives (``# escape=``,
``# syntax=``, ``# check=``) only before anything else, line continuations with the escape
token (comment lines and blank lines inside a continuation are dropped), heredocs for RUN, COPY
and ADD (also behind ONBUILD), JSON (exec) form with fallback to the shell form when the JSON
is not valid, ``--flags`` before the arguments, case-insensitive keywords.

Nodes carry raw text only; :mod:`cargohold.builder.instructions` turns them into typed,
validated instructions.  Errors are :class:`DockerfileError` and read
``Dockerfile:12: message``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import msgspec

from cargohold.builder.shell_lex import ExpansionError, ShellLex
from cargohold.errors import InvalidArgument

DEFAULT_ESCAPE = "\\"
_WS = re.compile(r"[\t\v\f\r ]+")
_HEREDOC = re.compile(r"([0-9]*)<<(-?)[\t\n\f\r ]*([^<]*)\Z")
_DIRECTIVE = re.compile(r"([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*\Z")
_DIRECTIVE_NAMES = ("syntax", "escape", "check")
HEREDOC_KEYWORDS = frozenset({"add", "copy", "run"})


class DockerfileError(InvalidArgument):
    """A Dockerfile error located at a line: ``Dockerfile:12: unknown instruction: RUNN``."""

    def __init__(self, filename: str, line: int | None, message: str) -> None:
        where = f"{filename}:{line}" if line else filename
        super().__init__(f"{where}: {message}")
        self.filename = filename
        self.line = line
        self.detail = message


class _Error(Exception):
    """Internal: a message that the caller locates at a line."""


class Heredoc(msgspec.Struct, frozen=True):
    """A here-document attached to an instruction (content is raw, never chomped here)."""

    name: str
    content: str = ""
    expand: bool = True
    chomp: bool = False
    fd: int = 0


class Node(msgspec.Struct, frozen=True):
    """One instruction as written.

    ``args`` follows BuildKit's AST: for ENV and LABEL it is a flat list of
    (key, value, separator) triples where the separator is ``"="`` or ``""`` for the legacy
    ``ENV key value`` form; ONBUILD has no args but a ``child`` node.
    """

    keyword: str  # as written, e.g. "run" or "RUN"
    original: str
    start_line: int
    end_line: int
    args: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    json: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    child: Node | None = None
    comments: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """The lower-case instruction name (``run``)."""
        return self.keyword.lower()

    def dump(self) -> str:
        """One-line readable form used by the golden tests."""
        parts = [f"{self.start_line}-{self.end_line}", self.keyword.upper()]
        if self.flags:
            parts.append("flags=" + json.dumps(list(self.flags), ensure_ascii=False))
        if self.json:
            parts.append("json")
        if self.child is not None:
            parts.append("{" + self.child.dump().split(" ", 1)[1] + "}")
        else:
            parts.append(json.dumps(list(self.args), ensure_ascii=False))
        for doc in self.heredocs:
            body = json.dumps(doc.content, ensure_ascii=False)
            parts.append(f"<<{'-' if doc.chomp else ''}{doc.name}(expand={doc.expand}):{body}")
        return " ".join(parts)


class Directives(msgspec.Struct, frozen=True):

    escape: str = DEFAULT_ESCAPE
    syntax: str | None = None
    check: str | None = None


class ParseResult(msgspec.Struct, frozen=True):

    nodes: tuple[Node, ...]
    directives: Directives
    warnings: tuple[str, ...] = ()


# -- directives and line handling -------------------------------------------------------------


class _Directives(msgspec.Struct):

    escape: str = DEFAULT_ESCAPE
    values: dict[str, str] = msgspec.field(default_factory=dict)
    done: bool = False
    continuation: re.Pattern[str] = msgspec.field(default_factory=lambda: _continuation_regex("\\"))

    def set_escape(self, value: str) -> None:
        if value not in ("`", "\\"):
            raise _Error(f"invalid escape token '{value}' does not match ` or \\")
        self.escape = value
        self.continuation = _continuation_regex(value)

    def feed(self, line: str) -> bool:
        """Offer one (left-stripped) line to the directive parser; True if it was one."""
        if self.done:
            return False
        if not line.startswith("#"):
            self.done = True
            return False
        match = _DIRECTIVE.match(line[1:].lstrip())
        if match is None or match.group(1).lower() not in _DIRECTIVE_NAMES:
            self.done = True
            return False
        key = match.group(1).lower()
        if key in self.values:
            raise _Error(f"only one {key} parser directive can be used")
        self.values[key] = match.group(2)
        if key == "escape":
            self.set_escape(match.group(2))
        return True


def _continuation_regex(esc: str) -> re.Pattern[str]:
    e = re.escape(esc)
    return re.compile(rf"([^{e}]){e}[ \t]*\Z|^{e}[ \t]*\Z")


def _is_comment(line: str) -> bool:
    return line.lstrip().startswith("#")


def _trim_newline(line: str) -> str:
    return line.rstrip("\r\n")


def _trim_continuation(line: str, d: _Directives) -> tuple[str, bool]:
    match = d.continuation.search(line)
    if match is None:
        return line, True
    return line[: match.start()] + (match.group(1) or ""), False


def _split_lines(text: str) -> list[str]:
    if text.startswith("\ufeff"):
        text = text[1:]
    parts = text.split("\n")
    lines = [p + "\n" for p in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


# -- words, flags, JSON -----------------------------------------------------------------------


def split_command(line: str, escape: str) -> tuple[str, list[str], str]:
    """Split a logical line into (keyword, flags, rest of the arguments)."""
    parts = _WS.split(line.strip(), maxsplit=1)
    if len(parts) < 2:
        return parts[0], [], ""
    rest, flags = _extract_flags(parts[1], escape)
    return parts[0], flags, rest.strip()


def _extract_flags(line: str, escape: str) -> tuple[str, list[str]]:
    """Leading ``--name[=value]`` words; quotes and escapes inside flags are removed."""
    words: list[str] = []
    pos = 0
    n = len(line)
    while True:
        while pos < n and line[pos].isspace():
            pos += 1
        if pos >= n:
            return "", words
        if not line.startswith("--", pos):
            return line[pos:], words
        word, pos, blank_ok = _flag_word(line, pos, escape)
        if word == "--":
            return line[pos:], words
        if blank_ok or word:
            words.append(word)


def _flag_word(line: str, pos: int, escape: str) -> tuple[str, int, bool]:
    out: list[str] = []
    quote = ""
    blank_ok = False
    n = len(line)
    while pos < n:
        ch = line[pos]
        if not quote and ch.isspace():
            break
        if not quote and ch in ("'", '"'):
            quote, blank_ok = ch, True
        elif quote and ch == quote:
            quote = ""
        elif ch == escape:
            if pos + 1 < n:
                pos += 1
                out.append(line[pos])
            elif quote:
                quote = ""
        else:
            out.append(ch)
        pos += 1
    return "".join(out), pos, blank_ok


def parse_words(rest: str, escape: str) -> list[str]:
    """Split on unquoted whitespace keeping quotes and escapes (for ENV, LABEL, ARG)."""
    words: list[str] = []
    buf: list[str] = []
    in_word = False
    blank_ok = False
    quote = ""
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if not in_word:
            if ch.isspace():
                i += 1
                continue
            in_word = True
        if quote:
            if ch == quote:
                quote = ""
            elif ch == escape and quote != "'":
                if i + 1 == n:
                    quote = ""
                    i += 1
                    continue
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
        elif ch.isspace():
            if blank_ok or buf:
                words.append("".join(buf))
            buf, in_word, blank_ok = [], False, False
        else:
            if ch in ("'", '"'):
                quote, blank_ok = ch, True
            elif ch == escape:
                if i + 1 == n:
                    i += 1
                    continue
                buf.append(ch)
                i += 1
                ch = rest[i]
            buf.append(ch)
        i += 1
    if in_word and (blank_ok or buf):
        words.append("".join(buf))
    return words


_NOT_STRINGS = "when using JSON array syntax, arrays must be comprised of strings only"


def parse_json_array(rest: str) -> list[str] | None:
    """The strings of a JSON array, or None when ``rest`` is not a JSON array."""
    rest = rest.lstrip()
    if not rest.startswith("["):
        return None
    try:
        value = json.loads(rest, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise _Error(_NOT_STRINGS)
    return value


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid JSON constant {name}")


def _maybe_json(rest: str) -> tuple[list[str], bool]:
    if not rest:
        return [], False
    parsed = parse_json_array(rest)
    if parsed is not None:
        return parsed, True
    return [rest], False


def _maybe_json_list(rest: str) -> tuple[list[str], bool]:
    parsed = parse_json_array(rest)
    if parsed is not None:
        return parsed, True
    return _whitespace_list(rest), False


def _whitespace_list(rest: str) -> list[str]:
    return _WS.split(rest) if rest else []


def _name_val(rest: str, key: str, escape: str) -> list[str]:
    words = parse_words(rest, escape)
    if not words:
        return []
    if "=" not in words[0]:
        parts = _WS.split(rest, maxsplit=1)
        if len(parts) < 2:
            raise _Error(f"{key} must have two arguments")
        return [parts[0], parts[1], ""]
    out: list[str] = []
    for word in words:
        if "=" not in word:
            raise _Error(
                f"Syntax error - can't find = in {json.dumps(word, ensure_ascii=False)}. "
                "Must be of the form: name=value"
            )
        name, value = word.split("=", 1)
        out += [name, value, "="]
    return out


def _health(rest: str) -> tuple[list[str], bool]:
    sep = 0
    while sep < len(rest) and not rest[sep].isspace():
        sep += 1
    if sep == 0:
        return [], False
    cmd, is_json = _maybe_json(rest[sep:].lstrip())
    return [rest[:sep], *cmd], is_json


def _args_for(keyword: str, rest: str, escape: str) -> tuple[list[str], bool]:
    if keyword in ("add", "copy", "volume"):
        return _maybe_json_list(rest)
    if keyword in ("cmd", "entrypoint", "run", "shell"):
        return _maybe_json(rest)
    if keyword in ("env", "label"):
        return _name_val(rest, "ENV" if keyword == "env" else "LABEL", escape), False
    if keyword == "arg":
        return parse_words(rest, escape), False
    if keyword in ("expose", "from"):
        return _whitespace_list(rest), False
    if keyword == "healthcheck":
        return _health(rest)
    if keyword in ("maintainer", "stopsignal", "user", "workdir"):
        return ([rest] if rest else []), False
    return [], False  # unknown instruction: reported when typed


def node_from_line(line: str, escape: str, comments: tuple[str, ...] = ()) -> Node:
    """Parse one logical line (continuations already joined) into a Node without lines."""
    keyword, flags, rest = split_command(line, escape)
    if keyword.lower() == "onbuild":
        child = node_from_line(rest, escape) if rest else None
        return Node(keyword, line, 0, 0, flags=tuple(flags), child=child, comments=comments)
    args, is_json = _args_for(keyword.lower(), rest, escape)
    return Node(keyword, line, 0, 0, tuple(args), tuple(flags), is_json, comments=comments)


# -- heredocs ---------------------------------------------------------------------------------


def parse_heredoc(word: str) -> Heredoc | None:
    """The heredoc a word like ``<<EOF``, ``<<-"EOF"`` or ``3<<EOF`` opens, if any."""
    match = _HEREDOC.match(word)
    if match is None or not match.group(3):
        return None
    rest = match.group(3)
    try:
        words = ShellLex(skip_unset_env=True).process_words(rest, {})
        if len(words) != 1:
            return None
        raw = ShellLex(skip_unset_env=True, raw_quotes=True).process_words(rest, {})
    except ExpansionError as exc:
        raise _Error(str(exc)) from None
    if len(raw) != 1:
        raise _Error(f"internal lexing of heredoc produced inconsistent results: {rest}")

    def quotes(s: str) -> int:
        return s.count("'") + s.count('"')

    return Heredoc(
        name=words[0],
        expand=quotes(words[0]) == quotes(raw[0]),
        chomp=match.group(2) == "-",
        fd=int(match.group(1) or 0),
    )


def heredocs_in_line(line: str) -> list[Heredoc]:
    lex = ShellLex(raw_quotes=True, raw_escapes=True, skip_unset_env=True)
    try:
        words = lex.process_words(line, {})
    except ExpansionError:
        words = []
    docs = [parse_heredoc(word) for word in words]
    return [doc for doc in docs if doc is not None]


def chomp_heredoc(content: str) -> str:
    """Strip leading tabs from every line (the ``<<-`` form)."""
    return re.sub(r"(?m)^\t+", "", content)


def _can_have_heredoc(node: Node) -> bool:
    target = node.child if node.name == "onbuild" and node.child is not None else node
    return target.name in HEREDOC_KEYWORDS and not target.json


# -- the parser -------------------------------------------------------------------------------


class _Lines:
    def __init__(self, text: str) -> None:
        self.lines = _split_lines(text)
        self.index = 0

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if self.index >= len(self.lines):
            raise StopIteration
        self.index += 1
        return self.lines[self.index - 1]

    @property
    def number(self) -> int:
        return self.index


def parse(text: str, filename: str = "Dockerfile") -> ParseResult:
    """Parse Dockerfile text into nodes; raises :class:`DockerfileError`."""
    lines = _Lines(text)
    d = _Directives()
    nodes: list[Node] = []
    warnings: list[str] = []
    comments: list[str] = []
    for raw in lines:
        start = lines.number
        try:
            node = _parse_one(raw, lines, d, comments, warnings)
        except _Error as exc:
            raise DockerfileError(filename, start, str(exc)) from None
        if node is None:
            continue
        if _can_have_heredoc(node) and "<<" in node.original:
            try:
                node = _attach_heredocs(node, lines)
            except _Error as exc:
                raise DockerfileError(filename, start, str(exc)) from None
        nodes.append(_with_lines(node, start, lines.number))
        comments = []
    if not nodes:
        raise DockerfileError(filename, lines.number or None, "file with no instructions")
    directives = Directives(d.escape, d.values.get("syntax"), d.values.get("check"))
    return ParseResult(tuple(nodes), directives, tuple(warnings))


def _parse_one(
    raw: str, lines: _Lines, d: _Directives, comments: list[str], warnings: list[str]
) -> Node | None:
    if _is_comment(raw):
        text = raw.lstrip()[1:].strip()
        if text:
            comments.append(text)
        else:
            comments.clear()
    line = _trim_newline(raw).lstrip()
    if d.feed(line) and comments:
        comments.pop()
    if _is_comment(line):
        line = ""
    line, end = _trim_continuation(line, d)
    if end and not line:
        return None
    buf = [line]
    empty_continuation = False
    while not end:
        try:
            nxt = next(lines)
        except StopIteration:
            break
        part = _trim_newline(nxt)
        d.feed(part)
        if _is_comment(nxt):
            continue
        if not part.strip():
            empty_continuation = True
            continue
        part, end = _trim_continuation(part, d)
        buf.append(part)
    logical = "".join(buf)
    if empty_continuation:
        warnings.append(f"line {lines.number}: empty continuation line found in: {logical}")
    return node_from_line(logical, d.escape, tuple(comments))


def _attach_heredocs(node: Node, lines: _Lines) -> Node:
    found: list[Heredoc] = []
    for doc in heredocs_in_line(node.original):
        body: list[str] = []
        for raw in lines:
            candidate = _trim_newline(raw)
            if doc.chomp:
                candidate = candidate.lstrip("\t")
            if candidate == doc.name:
                break
            body.append(raw)
        else:
            raise _Error("unterminated heredoc")
        found.append(Heredoc(doc.name, "".join(body), doc.expand, doc.chomp, doc.fd))
    return _replace_heredocs(node, tuple(found))


def _replace_heredocs(node: Node, docs: tuple[Heredoc, ...]) -> Node:
    return Node(
        node.keyword,
        node.original,
        node.start_line,
        node.end_line,
        node.args,
        node.flags,
        node.json,
        docs,
        node.child,
        node.comments,
    )


def _with_lines(node: Node, start: int, end: int) -> Node:
    child = _with_lines(node.child, start, end) if node.child is not None else None
    return Node(
        node.keyword,
        node.original,
        start,
        end,
        node.args,
        node.flags,
        node.json,
        node.heredocs,
        child,
        node.comments,
    )
