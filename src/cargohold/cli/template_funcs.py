"""Values and functions of the ``--format`` template engine (see ``cli/template.py``).

Printing follows Go's ``fmt`` on decoded JSON; the function table holds Go's text/template
builtins plus the functions Docker's CLI adds (json, split, join, title, lower, upper, pad,
truncate).  ``and``/``or`` are evaluated lazily by the executor and only listed here.
``tabwrite`` is Go's tabwriter as Docker's table output uses it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any


class TemplateError(Exception):
    """A template parse or execution error (wrapped into InvalidArgument by the caller)."""


class _Missing:
    """Go's invalid reflect.Value: what a missing map key evaluates to."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING: Any = _Missing()


def go_str(v: Any) -> str:
    """``fmt.Sprint`` of a decoded-JSON value: ``[a b]``, ``map[k:v]``, ``<nil>``."""
    if v is MISSING:
        return "<no value>"
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return go_float(v)
    if isinstance(v, str):
        return v
    if isinstance(v, Mapping):
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, list | tuple):
        return "[" + " ".join(go_str(x) for x in v) + "]"
    return str(v)


def go_float(f: float) -> str:
    """``strconv.FormatFloat(f, 'g', -1, 64)`` as ``fmt.Print`` uses it."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    sign = "-" if str(f).startswith("-") else ""
    if f == 0:
        return sign + "0"
    mant, _, exp_text = repr(abs(f)).partition("e")
    int_part, _, frac = mant.partition(".")
    digits = int_part + frac
    dp = len(int_part) + int(exp_text or 0)
    lead = len(digits) - len(digits.lstrip("0"))
    digits, dp = digits[lead:].rstrip("0"), dp - lead
    exp = dp - 1
    if exp < -4 or exp >= 6:  # shortest form: Go decides with precision 6
        m = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{m}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{sign}0.{'0' * -dp}{digits}"
    if dp >= len(digits):
        return sign + digits + "0" * (dp - len(digits))
    return f"{sign}{digits[:dp]}.{digits[dp:]}"


def truth(v: Any) -> bool:
    """Go template truth: false, 0, nil, empty string/list/map and missing are false."""
    if v is MISSING or v is None:
        return False
    if isinstance(v, bool | int | float | str | list | tuple | Mapping):
        return bool(v)
    return True


def go_type(v: Any) -> str:
    if v is None or v is MISSING:
        return "<nil>"
    if isinstance(v, Mapping):
        return "map[string]interface {}"
    if isinstance(v, list | tuple):
        return "[]interface {}"
    return {bool: "bool", int: "int", float: "float64", str: "string"}.get(
        type(v), type(v).__name__
    )


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _want_str(v: Any) -> str:
    if not isinstance(v, str):
        raise TemplateError(f"wrong type for value; expected string; got {go_type(v)}")
    return v


def _want_int(v: Any) -> int:
    if not _is_int(v):
        raise TemplateError(f"wrong type for value; expected int; got {go_type(v)}")
    return int(v)


# ------------------------------------------------------------------------ Go builtins


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if item is MISSING or item is None:
            raise TemplateError("index of untyped nil")
        if isinstance(item, Mapping):
            if key in item:
                item = item[key]
            else:  # the zero value of the map's element type
                item = "" if all(isinstance(x, str) for x in item.values()) else None
        elif isinstance(item, list | tuple | str):
            if not _is_int(key):
                raise TemplateError(f"cannot index slice/array with type {go_type(key)}")
            if not 0 <= key < len(item):
                raise TemplateError(f"index out of range: {key}")
            item = ord(item[key]) if isinstance(item, str) else item[key]
        else:
            raise TemplateError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *idx: Any) -> Any:
    if not isinstance(item, list | tuple | str):
        raise TemplateError(f"can't slice item of type {go_type(item)}")
    if len(idx) > 2 or not all(_is_int(i) for i in idx):
        raise TemplateError("invalid slice index")
    lo = idx[0] if idx else 0
    hi = idx[1] if len(idx) > 1 else len(item)
    if not 0 <= lo <= hi <= len(item):
        raise TemplateError(f"index out of range: {hi if hi > len(item) else lo}")
    return item[lo:hi]


def _len(item: Any) -> int:
    if isinstance(item, str):
        return len(item.encode())
    if isinstance(item, list | tuple | Mapping):
        return len(item)
    if item is None or item is MISSING:
        raise TemplateError("len of nil pointer")
    raise TemplateError(f"len of type {go_type(item)}")


def _kind(v: Any) -> str:
    if v is None or v is MISSING:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int | float):
        return "number"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq(a: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("missing argument for comparison")
    for b in others:
        ka, kb = _kind(a), _kind(b)
        if "other" in (ka, kb) and "nil" not in (ka, kb):
            raise TemplateError("non-comparable types")
        if ka != kb and "nil" not in (ka, kb):
            raise TemplateError("incompatible types for comparison")
        if (ka == "nil" and kb == "nil") or (ka == kb and a == b):
            return True
    return False


def _ordered(a: Any, b: Any) -> None:
    ka, kb = _kind(a), _kind(b)
    if ka not in ("number", "string") or kb not in ("number", "string"):
        raise TemplateError("invalid type for comparison")
    if ka != kb:
        raise TemplateError("incompatible types for comparison")


def _lt(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a < b)


def _le(a: Any, b: Any) -> bool:
    _ordered(a, b)
    return bool(a <= b)


def _sprint(*args: Any) -> str:
    out = []
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out.append(" ")
        out.append(go_str(a))
    return "".join(out)


def _sprintln(*args: Any) -> str:
    return " ".join(go_str(a) for a in args) + "\n"


def _html(*args: Any) -> str:
    text = _sprint(*args)
    for old, new in (("&", "&amp;"), ("'", "&#39;"), ("<", "&lt;"), (">", "&gt;"),
                     ('"', "&#34;"), ("\0", "\ufffd")):
        text = text.replace(old, new)
    return text


def _js(*args: Any) -> str:
    out = []
    for ch in _sprint(*args):
        if ch in "\\'\"":
            out.append("\\" + ch)
        elif ch in "<>&=" or ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return "".join(out)


def _urlquery(*args: Any) -> str:
    from urllib.parse import quote_plus

    return quote_plus(_sprint(*args), safe="")


# ------------------------------------------------------------------------ printf

_VERB_RE = re.compile(r"%([-+# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.)", re.S)


def _sprintf(fmt: Any, *args: Any) -> str:
    fmt = _want_str(fmt)
    out: list[str] = []
    pos, argi = 0, 0
    while True:
        m = _VERB_RE.search(fmt, pos)
        if m is None:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos : m.start()])
        pos = m.end()
        flags, width_s, prec_s, verb = m.groups()
        if verb == "%":
            out.append("%")
            continue
        width = prec = None
        if width_s == "*" and argi < len(args):
            width, argi = _want_int(args[argi]), argi + 1
        elif width_s:
            width = int(width_s)
        if prec_s == "*" and argi < len(args):
            prec, argi = _want_int(args[argi]), argi + 1
        elif prec_s is not None:
            prec = int(prec_s or 0)
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg, argi = args[argi], argi + 1
        out.append(_format_one(arg, flags, width, prec, verb))
    if argi < len(args):
        extra = ", ".join(f"{go_type(a)}={go_str(a)}" for a in args[argi:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _format_one(arg: Any, flags: str, width: int | None, prec: int | None, verb: str) -> str:
    spec = flags + (str(width) if width is not None else "")
    spec += f".{prec}" if prec is not None else ""
    if verb in "dboxXcU" and _is_int(arg):
        if verb == "c":
            return _pad(chr(arg), flags, width)
        if verb == "U":
            return _pad(f"U+{arg:04X}", flags, width)
        if verb == "b":
            return _pad(format(arg, "b"), flags, width)
        return str(("%" + spec + verb) % arg)
    if verb in "eEfFgG" and isinstance(arg, float | int) and not isinstance(arg, bool):
        if isinstance(arg, int):
            return f"%!{verb}(int={arg})"
        if verb in "gG" and prec is None:
            return _pad(go_float(arg), flags, width)
        return str(("%" + spec + verb) % arg)
    if verb == "x" and isinstance(arg, str):
        return _pad(arg.encode().hex(), flags, width)
    text: str | None = None
    if verb == "v" or (verb == "s" and (isinstance(arg, str | list | tuple | Mapping))):
        text = go_str(arg)
    elif verb == "q" and isinstance(arg, str):
        import json

        text = json.dumps(arg, ensure_ascii=False)
    elif verb == "t" and isinstance(arg, bool):
        text = go_str(arg)
    if text is None:
        if arg is None or arg is MISSING:
            return f"%!{verb}(<nil>)"
        return f"%!{verb}({go_type(arg)}={go_str(arg)})"
    if prec is not None and verb in "sv":
        text = text[:prec]
    return _pad(text, flags, width)


def _pad(text: str, flags: str, width: int | None) -> str:
    if width is None:
        return text
    return text.ljust(width) if "-" in flags else text.rjust(width)


# ------------------------------------------------------------------------ Docker's functions


def _json(v: Any) -> str:
    """Docker's ``json``: Go's encoder without HTML escaping, trailing newline trimmed."""
    import json

    return json.dumps(_json_ready(v), ensure_ascii=False, separators=(",", ":"))


def _json_ready(v: Any) -> Any:
    if v is MISSING:
        return None
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e21:
        return int(v)
    if isinstance(v, Mapping):
        return {str(k): _json_ready(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_json_ready(x) for x in v]
    if v is None or isinstance(v, str | int | float | bool):
        return v
    import msgspec

    if isinstance(v, msgspec.Struct):  # a record with Docker's JSON names (events.Message)
        return _json_ready(msgspec.to_builtins(v))
    return str(v)


def _split(s: Any, sep: Any) -> list[str]:
    s, sep = _want_str(s), _want_str(sep)
    return list(s) if sep == "" else s.split(sep)


def _join(items: Any, sep: Any) -> str:
    if not isinstance(items, list | tuple):
        raise TemplateError(f"wrong type for value; expected []string; got {go_type(items)}")
    return _want_str(sep).join(go_str(x) for x in items)


def _title(s: Any) -> str:
    out, prev_sep = [], True
    for ch in _want_str(s):
        out.append(ch.upper() if prev_sep else ch)
        prev_sep = not (ch.isalnum() or ch == "_")
    return "".join(out)


def _pad_space(source: Any, prefix: Any, suffix: Any) -> str:
    s = _want_str(source)
    if s == "":
        return s
    return " " * _want_int(prefix) + s + " " * _want_int(suffix)


def _truncate(source: Any, length: Any) -> str:
    s, n = _want_str(source), _want_int(length)
    return s if len(s) < n else s[:n]


def _not(v: Any) -> bool:
    return not truth(v)


# ------------------------------------------------------------------------ column layout


def tabwrite(text: str, minwidth: int = 10, padding: int = 3) -> str:
    """Go's ``text/tabwriter`` with padchar ' ' and no flags: tab-terminated cells are
    aligned per column block; the last cell of a line is never padded."""
    newline = text.endswith("\n")
    lines = [line.split("\t") for line in (text[:-1] if newline else text).split("\n")]
    out: list[str] = []
    _format_cells(lines, 0, len(lines), [], (minwidth, padding), out)
    return "\n".join(out) + ("\n" if newline else "")


def _format_cells(
    lines: list[list[str]],
    line0: int,
    line1: int,
    widths: list[int],
    sizes: tuple[int, int],
    out: list[str],
) -> None:
    column = len(widths)
    this = line0
    while this < line1:
        if column >= len(lines[this]) - 1:
            this += 1
            continue
        # a column block starts here: lines before it are written with the outer widths
        _write_cells(lines[line0:this], widths, out)
        line0, width = this, sizes[0]
        while this < line1 and column < len(lines[this]) - 1:
            width = max(width, len(lines[this][column]) + sizes[1])
            this += 1
        _format_cells(lines, line0, this, [*widths, width], sizes, out)
        line0 = this
    _write_cells(lines[line0:line1], widths, out)


def _write_cells(lines: list[list[str]], widths: list[int], out: list[str]) -> None:
    for cells in lines:
        out.append("".join(c.ljust(widths[j]) if j < len(widths) else c
                           for j, c in enumerate(cells)))


# name -> (function, min args, max args or -1)
FUNCS: dict[str, tuple[Callable[..., Any], int, int]] = {
    "and": (_not, 1, -1),
    "or": (_not, 1, -1),
    "not": (_not, 1, 1),
    "len": (_len, 1, 1),
    "index": (_index, 1, -1),
    "slice": (_slice, 1, 3),
    "print": (_sprint, 0, -1),
    "printf": (_sprintf, 1, -1),
    "println": (_sprintln, 0, -1),
    "eq": (_eq, 1, -1),
    "ne": (lambda a, b: not _eq(a, b), 2, 2),
    "lt": (_lt, 2, 2),
    "le": (_le, 2, 2),
    "gt": (lambda a, b: not _le(a, b), 2, 2),
    "ge": (lambda a, b: not _lt(a, b), 2, 2),
    "html": (_html, 0, -1),
    "js": (_js, 0, -1),
    "urlquery": (_urlquery, 0, -1),
    "json": (_json, 1, 1),
    "split": (_split, 2, 2),
    "join": (_join, 2, 2),
    "title": (_title, 1, 1),
    "lower": (lambda s: _want_str(s).lower(), 1, 1),
    "upper": (lambda s: _want_str(s).upper(), 1, 1),
    "pad": (_pad_space, 3, 3),
    "truncate": (_truncate, 2, 2),
}
