"""A Go ``text/template`` subset for ``--format``, with Docker's extra functions.

Supported: fields and map keys (``.Config.Cmd``, ``.Config.Labels.k``), ``.``, ``$``,
variables (``$x := ...``, ``$x = ...``, ``$x.Field``), literals, pipelines (``.X | json``),
parenthesised pipelines with fields (``(index .Ports "80/tcp" 0).HostPort``), ``if`` / ``else
if`` / ``else``, ``range`` (``$k, $v :=``, ``else``, ``break``, ``continue``), ``with``,
comments and ``{{-`` / ``-}}`` trimming.  Functions: Go's builtins (and, or, not, len, index,
slice, print, printf, println, eq, ne, lt, le, gt, ge, html, js, urlquery) and Docker's
(json, split, join, title, lower, upper, pad, truncate).  Not supported: define/template/block.

Values print as Go's ``fmt.Print`` prints decoded JSON: lists ``[a b]``, maps ``map[k:v]``
(sorted keys), null ``<nil>``, a missing map key ``<no value>``.  ``index`` of a missing key
gives the map's zero value: ``""`` for a map of strings (Docker's typed Labels), else
``<nil>``.  ``json`` keeps dict insertion order (Go struct order); producers build map-typed
fields (Labels, ExposedPorts) with sorted keys, as Go's encoder writes them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

import msgspec

from cargohold.cli.template_funcs import FUNCS as _FUNCS
from cargohold.cli.template_funcs import (
    MISSING,
    TemplateError,
    go_str,
    go_type,
    tabwrite,
    truth,
)
from cargohold.errors import ClientError

# ------------------------------------------------------------------------ lexer


class _Tok(msgspec.Struct, frozen=True):
    """One token of an action."""

    kind: str  # str num bool nil field dot var ident | ( ) , := = eof
    value: Any
    line: int
    spaced: bool  # whitespace before the token


_RE_SPACE = re.compile(r"[ \t\r\n]+")
_RE_NUMBER = re.compile(r"[+-]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*)?\.?\d+(?:[eE][+-]?\d+)?)")
_RE_FIELDS = re.compile(r"(?:\.[A-Za-z_][A-Za-z0-9_]*)+")
_RE_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_RE_VAR = re.compile(r"\$[A-Za-z0-9_]*")
_RE_STRING = re.compile(r'"(?:[^"\\\n]|\\.)*"')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
            "b": "\b", "f": "\f", "v": "\v"}
_RE_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{3}|.)")


def _unquote(raw: str) -> str:
    def one(m: re.Match[str]) -> str:
        e = m.group(1)
        if e[0] in "xuU":
            return chr(int(e[1:], 16))
        if e[0].isdigit():
            return chr(int(e, 8))
        if e in _ESCAPES:
            return _ESCAPES[e]
        raise TemplateError("invalid syntax")

    return _RE_ESCAPE.sub(one, raw[1:-1])


def _lex_action(src: str, i: int, line: int) -> tuple[list[_Tok], int, bool, bool]:
    """Tokens of one action starting after ``{{``; returns (tokens, end, trim_l, trim_r)."""
    trim_left = src.startswith("- ", i) or src.startswith("-\t", i) or src.startswith("-\n", i)
    if trim_left:
        i += 1
    toks: list[_Tok] = []
    spaced = True
    while True:
        m = _RE_SPACE.match(src, i)
        if m:
            line += m.group().count("\n")
            i, spaced = m.end(), True
        if i >= len(src):
            raise TemplateError("unclosed action")
        if src.startswith("}}", i):
            return toks, i + 2, trim_left, False
        if spaced and src.startswith("-}}", i) and i > 0:
            return toks, i + 3, trim_left, True
        if src.startswith("/*", i):
            end = src.find("*/", i + 2)
            if end < 0 or toks:
                raise TemplateError("unclosed comment")
            line += src.count("\n", i, end)
            i = end + 2
            toks.append(_Tok("comment", None, line, spaced))
            spaced = False
            continue
        c = src[i]
        tok, n = _lex_token(src, i, c)
        toks.append(_Tok(tok[0], tok[1], line, spaced))
        i, spaced = n, False


def _lex_token(src: str, i: int, c: str) -> tuple[tuple[str, Any], int]:
    if c == '"':
        m = _RE_STRING.match(src, i)
        if not m:
            raise TemplateError("unterminated quoted string")
        return ("str", _unquote(m.group())), m.end()
    if c == "`":
        end = src.find("`", i + 1)
        if end < 0:
            raise TemplateError("unterminated raw quoted string")
        return ("str", src[i + 1 : end]), end + 1
    if c == "'":
        m = re.compile(r"'(?:[^'\\]|\\.[0-9a-fA-F]*)'").match(src, i)
        if not m:
            raise TemplateError("unterminated character constant")
        return ("num", ord(_unquote(m.group()))), m.end()
    if c in "()|,":
        return (c, c), i + 1
    if src.startswith(":=", i):
        return (":=", ":="), i + 2
    if c == "=":
        return ("=", "="), i + 1
    m = _RE_FIELDS.match(src, i)
    if m:
        return ("field", tuple(m.group()[1:].split("."))), m.end()
    if c == ".":
        return ("dot", "."), i + 1
    if c == "$":
        m = _RE_VAR.match(src, i)
        assert m is not None
        f = _RE_FIELDS.match(src, m.end())
        chain = tuple(f.group()[1:].split(".")) if f else ()
        return ("var", (m.group(), chain)), f.end() if f else m.end()
    m = _RE_NUMBER.match(src, i)
    if m and (c.isdigit() or c in "+-."):
        text = m.group().replace("_", "")
        low = text.lower()
        if "x" in low:
            return ("num", int(text, 16)), m.end()
        is_float = "." in text or ("e" in low)
        return ("num", float(text) if is_float else int(text)), m.end()
    m = _RE_IDENT.match(src, i)
    if m:
        word = m.group()
        if word in ("true", "false"):
            return ("bool", word == "true"), m.end()
        if word == "nil":
            return ("nil", None), m.end()
        return ("ident", word), m.end()
    raise TemplateError(f"unrecognized character in action: U+{ord(c):04X} {c!r}")


# ------------------------------------------------------------------------ parse tree


class _Cmd(msgspec.Struct, frozen=True):
    """One command of a pipeline: a function and its arguments, or one operand."""

    args: tuple[Any, ...]  # operands: ("lit", v) ("field", chain) ("dot",) ("var", n, chain)
    #                        ("func", name) ("pipe", _Pipe, chain)


class _Pipe(msgspec.Struct, frozen=True):
    """A pipeline with its variable declarations."""

    decl: tuple[str, ...]
    assign: bool  # "=" instead of ":="
    cmds: tuple[_Cmd, ...]
    line: int
    text: str


class _Block(msgspec.Struct, frozen=True):
    """An if, range or with block."""

    kind: str  # if | range | with
    pipe: _Pipe
    body: tuple[Any, ...]
    other: tuple[Any, ...]


_KEYWORDS = {"if", "else", "end", "range", "with", "break", "continue", "define",
             "template", "block"}


class _Parser:
    def __init__(self) -> None:
        self.items: list[Any] = []
        self.pos = 0
        self.line = 1  # line of the action being read, for error messages

    def parse_list(self, in_range: bool) -> tuple[tuple[Any, ...], list[_Tok] | None]:
        """Nodes until ``{{end}}``/``{{else}}`` (returned as the stopper tokens) or EOF."""
        nodes: list[Any] = []
        while self.pos < len(self.items):
            item = self.items[self.pos]
            self.pos += 1
            if isinstance(item, str):
                nodes.append(item)
                continue
            toks = item
            if not toks or toks[0].kind == "comment":
                continue
            self.line = toks[0].line
            head = toks[0]
            word = head.value if head.kind == "ident" else None
            if word in ("end", "else"):
                return tuple(nodes), toks
            if word in ("if", "range", "with"):
                nodes.append(self.block(word, toks, in_range or word == "range"))
            elif word in ("break", "continue"):
                if not in_range:
                    raise TemplateError(f"{{{{{word}}}}} outside {{{{range}}}}")
                nodes.append((word,))
            elif word in ("define", "template", "block"):
                raise TemplateError(f"{{{{{word}}}}} is not supported in --format")
            else:
                nodes.append(_pipeline(toks, 0, decl_ok=True)[0])
        return tuple(nodes), None

    def block(self, kind: str, toks: list[_Tok], in_range: bool) -> _Block:
        pipe, _ = _pipeline(toks, 1, decl_ok=True)
        if not pipe.cmds:
            raise TemplateError(f"missing value for {kind}")
        body, stop = self.parse_list(in_range)
        if stop is None:
            raise TemplateError("unexpected EOF")
        other: tuple[Any, ...] = ()
        if stop[0].value == "else":
            if len(stop) > 1 and stop[1].kind == "ident" and stop[1].value in ("if", "with"):
                other = (self.block(stop[1].value, stop[1:], in_range),)
                return _Block(kind, pipe, body, other)
            if len(stop) > 1:
                raise TemplateError("unexpected token in {{else}}")
            other, stop = self.parse_list(in_range)
            if stop is None or stop[0].value != "end":
                raise TemplateError("expected end; found " + ("EOF" if stop is None else
                                                               "{{else}}"))
        if len(stop) > 1:
            raise TemplateError("unexpected token in {{end}}")
        return _Block(kind, pipe, body, other)


def _split(src: str, parser: _Parser) -> list[Any]:
    """Text and action token lists, with ``{{-``/``-}}`` trimming applied."""
    items: list[Any] = []
    i, line, trim_next = 0, 1, False
    while True:
        start = src.find("{{", i)
        text = src[i:] if start < 0 else src[i:start]
        if trim_next:
            text = text.lstrip(" \t\r\n")
        if start < 0:
            if text:
                items.append(text)
            return items
        parser.line = line + text.count("\n")
        toks, end, trim_left, trim_next = _lex_action(src, start + 2, parser.line)
        if trim_left:
            text = text.rstrip(" \t\r\n")
        if text:
            items.append(text)
        line += src.count("\n", i, end)
        items.append(toks)
        i = end


def _pipeline(toks: list[_Tok], i: int, decl_ok: bool, paren: bool = False) -> tuple[_Pipe, int]:
    line = toks[0].line if toks else 1
    decl: list[str] = []
    assign = False
    if decl_ok and i < len(toks) and toks[i].kind == "var" and not toks[i].value[1]:
        j = i + 1
        names = [toks[i].value[0]]
        if j + 1 < len(toks) and toks[j].kind == "," and toks[j + 1].kind == "var":
            names.append(toks[j + 1].value[0])
            j += 2
        if j < len(toks) and toks[j].kind in (":=", "="):
            decl, assign, i = names, toks[j].kind == "=", j + 1
    cmds: list[_Cmd] = []
    args: list[Any] = []
    while i < len(toks):
        t = toks[i]
        if t.kind == ")":
            if not paren:
                raise TemplateError("unexpected right paren")
            break
        if t.kind == "|":
            if not args:
                raise TemplateError("missing command")
            cmds.append(_Cmd(tuple(args)))
            args = []
            i += 1
            continue
        operand, i = _operand(toks, i)
        args.append(operand)
    else:
        if paren:
            raise TemplateError("unclosed left paren")
    if args:
        cmds.append(_Cmd(tuple(args)))
    elif cmds:
        raise TemplateError("missing command")
    if decl and not cmds:
        raise TemplateError("missing value for command")
    return _Pipe(tuple(decl), assign, tuple(cmds), line, _text(toks)), i


def _operand(toks: list[_Tok], i: int) -> tuple[Any, int]:
    t = toks[i]
    if t.kind in ("str", "num", "bool", "nil"):
        return ("lit", t.value), i + 1
    if t.kind == "field":
        return ("field", t.value), i + 1
    if t.kind == "dot":
        return ("dot",), i + 1
    if t.kind == "var":
        return ("var", t.value[0], t.value[1]), i + 1
    if t.kind == "ident":
        if t.value in _KEYWORDS:
            raise TemplateError(f"unexpected <{t.value}> in command")
        if t.value not in _FUNCS:
            raise TemplateError(f'function "{t.value}" not defined')
        return ("func", t.value), i + 1
    if t.kind == "(":
        pipe, i = _pipeline(toks, i + 1, decl_ok=True, paren=True)
        i += 1
        chain: tuple[str, ...] = ()
        if i < len(toks) and toks[i].kind == "field" and not toks[i].spaced:
            chain, i = toks[i].value, i + 1
        return ("pipe", pipe, chain), i
    raise TemplateError(f"unexpected {t.value!r} in operand")


def _text(toks: list[_Tok]) -> str:
    parts = []
    for t in toks:
        if t.kind == "field":
            parts.append("." + ".".join(t.value))
        elif t.kind == "var":
            parts.append(t.value[0] + "".join("." + f for f in t.value[1]))
        elif t.kind == "str":
            parts.append('"' + t.value.replace("\\", "\\\\").replace('"', '\\"') + '"')
        else:
            parts.append(go_str(t.value))
    return " ".join(parts)


@lru_cache(maxsize=64)
def parse(template: str) -> tuple[Any, ...]:
    """Parse ``template``; ClientError("template parsing error: ...") when malformed."""
    p = _Parser()
    try:
        p.items = _split(template, p)
        nodes, stop = p.parse_list(in_range=False)
        if stop is not None:
            raise TemplateError(f"unexpected {{{{{stop[0].value}}}}}")
    except TemplateError as e:
        raise ClientError(f"template parsing error: template: :{p.line}: {e}") from None
    return nodes


# ------------------------------------------------------------------------ execution


class _ExecError(TemplateError):
    """An execution error already located ("LINE: executing ... at <...>: ...")."""


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class _Exec:
    def __init__(self, data: Any) -> None:
        self.root = data
        self.vars: list[tuple[str, Any]] = [("$", data)]
        self.out: list[str] = []

    def run(self, nodes: Sequence[Any], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, str):
                self.out.append(node)
            elif isinstance(node, _Pipe):
                value = self.pipe(node, dot)
                if not node.decl:
                    self.out.append(go_str(value))
            elif isinstance(node, _Block):
                self.block(node, dot)
            elif node[0] == "break":
                raise _Break
            else:
                raise _Continue

    def block(self, node: _Block, dot: Any) -> None:
        mark = len(self.vars)
        try:
            if node.kind == "range":
                self.range(node, dot, mark)
                return
            value = self.pipe(node.pipe, dot)
            if truth(value):
                self.run(node.body, value if node.kind == "with" else dot)
            else:
                self.run(node.other, dot)
        finally:
            del self.vars[mark:]

    def range(self, node: _Block, dot: Any, mark: int) -> None:
        value = self.pipe(node.pipe, dot, declare=False)
        pairs: Iterator[tuple[Any, Any]]
        if value is MISSING or value is None:
            pairs = iter(())
        elif isinstance(value, Mapping):
            pairs = ((k, value[k]) for k in sorted(value))
        elif isinstance(value, list | tuple):
            pairs = enumerate(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = ((n, n) for n in range(value))
        else:
            raise TemplateError(f"range can't iterate over {go_str(value)}")
        ran = False
        for key, elem in pairs:
            ran = True
            del self.vars[mark:]
            names = node.pipe.decl
            if len(names) == 1:
                self.vars.append((names[0], elem))
            elif len(names) == 2:
                self.vars += [(names[0], key), (names[1], elem)]
            try:
                self.run(node.body, elem)
            except _Break:
                break
            except _Continue:
                continue
        if not ran:
            del self.vars[mark:]
            self.run(node.other, dot)

    def pipe(self, pipe: _Pipe, dot: Any, declare: bool = True) -> Any:
        try:
            value: Any = MISSING
            for n, cmd in enumerate(pipe.cmds):
                value = self.command(cmd, dot, value if n else _NO_FINAL)
        except _ExecError:
            raise
        except TemplateError as e:
            raise _ExecError(f'{pipe.line}: executing "" at <{pipe.text}>: {e}') from None
        if declare and pipe.decl:
            if pipe.assign:
                self.set_var(pipe.decl[0], value)
            else:
                self.vars.append((pipe.decl[0], value))
        return value

    def set_var(self, name: str, value: Any) -> None:
        for k in range(len(self.vars) - 1, -1, -1):
            if self.vars[k][0] == name:
                self.vars[k] = (name, value)
                return
        raise TemplateError(f"undefined variable: {name}")

    def command(self, cmd: _Cmd, dot: Any, final: Any) -> Any:
        first = cmd.args[0]
        if first[0] == "func":
            return self.call(first[1], cmd.args[1:], dot, final)
        if len(cmd.args) > 1 or final is not _NO_FINAL:
            raise TemplateError(f"can't give argument to non-function {_operand_text(first)}")
        if first[0] == "lit" and first[1] is None:
            raise TemplateError("nil is not a command")
        return self.arg(first, dot)

    def arg(self, op: Any, dot: Any) -> Any:
        kind = op[0]
        if kind == "lit":
            return op[1]
        if kind == "dot":
            return dot
        if kind == "field":
            return _fields(dot, op[1])
        if kind == "var":
            for name, value in reversed(self.vars):
                if name == op[1]:
                    return _fields(value, op[2])
            raise TemplateError(f"undefined variable: {op[1]}")
        if kind == "func":
            return self.call(op[1], (), dot, _NO_FINAL)
        return _fields(self.pipe(op[1], dot), op[2])

    def call(self, name: str, ops: Sequence[Any], dot: Any, final: Any) -> Any:
        if name in ("and", "or"):
            lazy = [*ops, ("lit", final)] if final is not _NO_FINAL else list(ops)
            if not lazy:
                raise TemplateError(f"wrong number of args for {name}: want at least 1 got 0")
            value: Any = None
            for op in lazy:
                value = self.arg(op, dot)
                if truth(value) != (name == "and"):
                    return value
            return value
        args = [self.arg(op, dot) for op in ops]
        if final is not _NO_FINAL:
            args.append(final)
        fn, lo, hi = _FUNCS[name]
        if len(args) < lo or (hi >= 0 and len(args) > hi):
            want = str(lo) if lo == hi else f"at least {lo}"
            raise TemplateError(f"wrong number of args for {name}: want {want} got {len(args)}")
        try:
            return fn(*args)
        except TemplateError as e:
            raise TemplateError(f"error calling {name}: {e}") from None


_NO_FINAL: Any = object()


def _operand_text(op: Any) -> str:
    if op[0] == "field":
        return "." + ".".join(op[1])
    if op[0] == "var":
        return str(op[1]) + "".join("." + f for f in op[2])
    return "." if op[0] == "dot" else go_str(op[1]) if op[0] == "lit" else "(...)"


def _fields(value: Any, chain: Sequence[str]) -> Any:
    for name in chain:
        if value is MISSING:
            return MISSING
        if value is None:
            raise TemplateError(f"nil pointer evaluating interface {{}}.{name}")
        if isinstance(value, Mapping):
            value = value[name] if name in value else MISSING  # noqa: SIM401 (__missing__)
        elif hasattr(value, name) and not name.startswith("_"):
            value = getattr(value, name)
        else:
            raise TemplateError(f"can't evaluate field {name} in type {go_type(value)}")
    return value


def render(template: str, data: Any) -> str:
    """Execute ``template`` against ``data``.

    Malformed templates and execution errors raise ClientError with Docker's wording:
    ``template parsing error: template: :1: function "foo" not defined``.
    """
    nodes = parse(template)
    ex = _Exec(data)
    try:
        ex.run(nodes, data)
    except TemplateError as e:
        raise ClientError(f"template parsing error: template: :{e}") from None
    except (_Break, _Continue):  # pragma: no cover - parse refuses these outside range
        pass
    return "".join(ex.out)


# ------------------------------------------------------------------------ docker --format


def table_format(fmt: str) -> tuple[bool, str]:
    """Split Docker's ``--format`` value into (is_table, template body).

    A ``table`` prefix means "print a header row and align columns"; ``\\t`` and ``\\n``
    typed literally become tab and newline; surrounding spaces are dropped.  ``json`` is
    Docker's shorthand for ``{{json .}}``.  A bare ``table`` gives an empty body: the caller
    substitutes its default columns.
    """
    is_table = fmt.startswith("table")
    body = fmt[len("table") :] if is_table else fmt
    body = body.strip(" ").replace("\\t", "\t").replace("\\n", "\n")
    if not is_table and body == "json":
        body = "{{json .}}"
    return is_table, body


class _Headers(dict[str, str]):
    """Header context: every field names its column title ("" when it has none)."""

    def __missing__(self, key: str) -> str:
        return ""

    def __contains__(self, key: object) -> bool:
        return True


def render_rows(fmt: str, rows: Sequence[Any], headers: Mapping[str, str]) -> str:
    """Docker's ``--format`` for list commands; every output line ends in a newline.

    ``rows`` are what the template sees per item (dicts with Docker's field names: ``ID``,
    ``Image``...); ``headers`` maps field names to column titles (``{"ID": "CONTAINER ID"}``).
    A ``table`` format renders its header row by executing the same template against
    ``headers`` (as Docker does) and aligns columns like Docker's tabwriter (min width 10,
    padding 3).
    """
    is_table, body = table_format(fmt)
    lines = [render(body, _Headers(headers))] if is_table else []
    lines += [render(body, row) for row in rows]
    text = "".join(line + "\n" for line in lines)
    return tabwrite(text) if is_table else text
