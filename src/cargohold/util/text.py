"""Small text helpers shared by error messages."""

from __future__ import annotations

_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
            "\v": "\\v", "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """Go's ``%q`` (strconv.Quote): double quotes, control and unprintable characters escaped,
    so a hostile value cannot break a message into lines."""
    out = []
    for ch in text:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    return '"' + "".join(out) + '"'


def has_control_or_space(text: str) -> bool:
    """True when ``text`` holds whitespace or a control character (anything that could end a
    line or a field of /etc/hosts or resolv.conf)."""
    return any(ch.isspace() or not ch.isprintable() for ch in text)
