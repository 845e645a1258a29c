"""Word expansion as BuildKit's Dockerfile shell lexer does it.

Supports ``$V``, ``${V}``, ``${V:-w}``, ``${V-w}``, ``${V:+w}``, ``${V+w}``, ``${V:?msg}``,
``${V?msg}``, ``${V#p}``, ``${V##p}``, ``${V%p}``, ``${V%%p}``, ``${V/p/r}``, ``${V//p/r}``,
single and double quotes and the escape character chosen with ``# escape=``.

This is not a shell: nothing is executed, command substitution does not exist, and the
result of an expansion is never expanded again.  :func:`process_word` gives one string (quotes
removed, spaces kept); :func:`process_words` splits the result into words the way EXPOSE or
VOLUME need it (splitting happens after substitution, quoted text stays one word).

Deliberate differences from BuildKit: (1) ``ProcessWords("a${x:-b}")`` gives ``["ab"]`` (the
current BuildKit loses the ``a`` because of a shared buffer); (2) ``${V/p/r}`` inserts ``r``
literally (Go's regexp would interpret ``$1`` in it); (3) pattern matching uses a small glob
automaton instead of a backtracking regexp, so hostile patterns cannot stall a build.
Expansion is bounded: nesting deeper than :data:`MAX_DEPTH` and results longer than
:data:`MAX_RESULT` characters fail with an error instead of consuming the machine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import msgspec

from cargohold.errors import InvalidArgument
from cargohold.util.text import go_quote

MAX_DEPTH = 64
MAX_RESULT = 1 << 20
# Upper bound on automaton steps for one pattern operation (~ len(value) * len(pattern)).
MAX_MATCH_WORK = 2_000_000

_SPECIAL_PARAMS = frozenset("@*#?-$!0")
_EOF = ""


class ExpansionError(InvalidArgument):
    """A word could not be expanded (syntax error, ``${V?}`` on an unset V, blow-up)."""


class _Fail(Exception):
    """Internal: carries an error message up to :meth:`ShellLex._process`."""


class ExpansionResult(msgspec.Struct, frozen=True):
    """Result of one expansion: the word, its split form and the variables consulted."""

    result: str
    words: tuple[str, ...]
    matched: frozenset[str]
    unmatched: frozenset[str]


class _Words:
    """Collects the words of a ProcessWords call (split on unquoted whitespace)."""

    def __init__(self) -> None:
        self.buf: list[str] = []
        self.size = 0
        self.words: list[str] = []
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word and self.size:
                self.words.append("".join(self.buf))
                self.buf, self.size = [], 0
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.buf.append(ch)
        self.size += len(ch)
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.buf.append(text)
        self.size += len(text)
        self.in_word = True

    def get_words(self) -> list[str]:
        if self.size:
            self.words.append("".join(self.buf))
            self.buf, self.size = [], 0
            self.in_word = False
        return self.words


class _State(msgspec.Struct):

    text: str
    env: Mapping[str, str]
    pos: int = 0
    depth: int = 0
    raw_escapes: bool = False
    matched: set[str] = msgspec.field(default_factory=set)
    unmatched: set[str] = msgspec.field(default_factory=set)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch


def _check_size(size: int) -> None:
    if size > MAX_RESULT:
        raise _Fail(f"expansion result exceeds {MAX_RESULT} characters")


class ShellLex:
    """Expands words with an environment; one instance per escape token and option set."""

    def __init__(
        self,
        escape_token: str = "\\",
        *,
        raw_quotes: bool = False,
        raw_escapes: bool = False,
        skip_process_quotes: bool = False,
        skip_unset_env: bool = False,
    ) -> None:
        if len(escape_token) != 1:
            raise InvalidArgument(f"invalid escape token {escape_token!r}")
        self.escape_token = escape_token
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes
        self.skip_process_quotes = skip_process_quotes
        self.skip_unset_env = skip_unset_env

    # -- public API ------------------------------------------------------------------------

    def process_word(self, word: str, env: Mapping[str, str]) -> str:
        """Expand ``word``: quotes removed, whitespace kept, one string."""
        return self.process_word_with_matches(word, env).result

    def process_words(self, word: str, env: Mapping[str, str]) -> list[str]:
        """Expand ``word`` and split it into words after substitution."""
        return list(self.process_word_with_matches(word, env).words)

    def process_word_with_matches(self, word: str, env: Mapping[str, str]) -> ExpansionResult:
        """Expand ``word`` and report which variables were found and which were not."""
        st = _State(text=word, env=env, raw_escapes=self.raw_escapes)
        try:
            result, words = self._stop_on(st, _EOF, self.raw_escapes)
        except _Fail as exc:
            raise ExpansionError(f"failed to process {go_quote(word)}: {exc}") from None
        except RecursionError:
            raise ExpansionError(
                f"failed to process {go_quote(word)}: nested too deeply"
            ) from None
        return ExpansionResult(
            result=result,
            words=tuple(words),
            matched=frozenset(st.matched),
            unmatched=frozenset(st.unmatched),
        )

    # -- scanner ---------------------------------------------------------------------------

    def _stop_on(self, st: _State, stop: str, raw_escapes: bool) -> tuple[str, list[str]]:
        st.depth += 1
        if st.depth > MAX_DEPTH:
            raise _Fail(f"substitutions nested deeper than {MAX_DEPTH} levels")
        saved_raw, st.raw_escapes = st.raw_escapes, raw_escapes
        try:
            return self._scan(st, stop)
        finally:
            st.raw_escapes = saved_raw
            st.depth -= 1

    def _scan(self, st: _State, stop: str) -> tuple[str, list[str]]:
        out: list[str] = []
        size = 0
        words = _Words()
        while st.peek() != _EOF:
            ch = st.peek()
            if stop and ch == stop:
                st.next()
                return "".join(out), words.get_words()
            piece = self._special(st, ch)
            if piece is not None:
                out.append(piece)
                if ch == "$":
                    words.add_string(piece)
                else:
                    words.add_raw_string(piece)
                size += len(piece)
                _check_size(size)
                continue
            ch = st.next()
            if ch == self.escape_token:
                if st.raw_escapes:
                    words.add_raw_char(ch)
                    out.append(ch)
                ch = st.next()
                if ch == _EOF:
                    break
                words.add_raw_char(ch)
            else:
                words.add_char(ch)
            out.append(ch)
            size += 1
        if stop:
            raise _Fail(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out), words.get_words()

    def _special(self, st: _State, ch: str) -> str | None:
        if ch == "$":
            return self._dollar(st)
        if ch == "<":
            return self._possible_heredoc(st)
        if not self.skip_process_quotes:
            if ch == "'":
                return self._single_quote(st)
            if ch == '"':
                return self._double_quote(st)
        return None

    def _single_quote(self, st: _State) -> str:
        out: list[str] = []
        ch = st.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            ch = st.next()
            if ch == _EOF:
                raise _Fail("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def _double_quote(self, st: _State) -> str:
        out: list[str] = []
        size = 0
        ch = st.next()
        if self.raw_quotes:
            out.append(ch)
        while True:
            nxt = st.peek()
            if nxt == _EOF:
                raise _Fail("unexpected end of statement while looking for matching double-quote")
            if nxt == '"':
                ch = st.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if nxt == "$":
                value = self._dollar(st)
                out.append(value)
                size += len(value)
                _check_size(size)
                continue
            ch = st.next()
            if ch == self.escape_token:
                if st.raw_escapes:
                    out.append(ch)
                following = st.peek()
                if following == _EOF:
                    continue
                if following in ('"', "$", self.escape_token):
                    ch = st.next()
            out.append(ch)
            size += 1

    def _possible_heredoc(self, st: _State) -> str:
        st.next()
        if st.peek() != "<":
            return "<"
        st.next()
        space: list[str] = []
        while st.peek() in ("\t", "\r", " ") and st.peek() != _EOF:
            space.append(st.next())
        return "<<" + "".join(space)

    # -- substitutions ---------------------------------------------------------------------

    def _get_env(self, st: _State, name: str) -> tuple[str, bool]:
        if name in st.env:
            st.matched.add(name)
            return st.env[name], True
        st.unmatched.add(name)
        return "", False

    def _name(self, st: _State) -> str:
        name: list[str] = []
        while st.peek() != _EOF:
            ch = st.peek()
            if not name and ch.isdigit():
                while st.peek() != _EOF and st.peek().isdigit():
                    name.append(st.next())
                return "".join(name)
            if not name and ch in _SPECIAL_PARAMS:
                return st.next()
            if not (ch.isalpha() or ch.isdigit() or ch == "_"):
                break
            name.append(st.next())
        return "".join(name)

    def _dollar(self, st: _State) -> str:
        st.next()
        if st.peek() != "{":
            name = self._name(st)
            if not name:
                return "$"
            value, found = self._get_env(st, name)
            if not found and self.skip_unset_env:
                return "$" + name
            return value
        st.next()
        if st.peek() == _EOF:
            raise _Fail("syntax error: missing '}'")
        if st.peek() in ("{", "}", ":"):
            raise _Fail("syntax error: bad substitution")
        name = self._name(st)
        ch = st.next()
        if ch == "}":
            value, found = self._get_env(st, name)
            if not found and self.skip_unset_env:
                return "${" + name + "}"
            return value
        if ch == "/":
            return self._replace(st, name)
        if ch == _EOF:
            raise _Fail("syntax error: missing '}'")
        if ch in (":", "+", "-", "?", "#", "%"):
            return self._modifier(st, name, ch)
        raise _Fail(f"unsupported modifier ({ch}) in substitution")

    def _braced_word(self, st: _State, stop: str, raw: bool, missing: str) -> str:
        try:
            word, _ = self._stop_on(st, stop, raw)
        except _Fail:
            if st.peek() == _EOF:
                raise _Fail(missing) from None
            raise
        return word

    def _modifier(self, st: _State, name: str, ch: str) -> str:
        mods = ch
        null_is_unset = False
        if ch == ":":
            null_is_unset = True
            ch = st.next()
            mods += ch
        raw = ch in ("#", "%")
        if null_is_unset and raw:
            raise _Fail(f"unsupported modifier ({mods}) in substitution")
        word = self._braced_word(st, "}", raw, "syntax error: missing '}'")
        value, is_set = self._get_env(st, name)
        if self.skip_unset_env and not is_set:
            return "${" + name + mods + word + "}"
        empty = not is_set or (null_is_unset and value == "")
        if ch == "-":
            return word if empty else value
        if ch == "+":
            return "" if empty else word
        if ch == "?":
            if not is_set:
                raise _Fail(f"{name}: {word or 'is not allowed to be unset'}")
            if null_is_unset and value == "":
                raise _Fail(f"{name}: {word or 'is not allowed to be empty'}")
            return value
        if ch in ("#", "%"):
            greedy = word.startswith(ch)
            if greedy:
                word = word[1:]
            if ch == "%":
                return _trim_suffix(word, value, greedy)
            return _trim_prefix(word, value, greedy)
        raise _Fail(f"unsupported modifier ({mods}) in substitution")

    def _replace(self, st: _State, name: str) -> str:
        replace_all = st.peek() == "/"
        if replace_all:
            st.next()
        pattern = self._braced_word(st, "/", True, "syntax error: missing '/' in ${}")
        replacement = self._braced_word(st, "}", True, "syntax error: missing '}'")
        value, is_set = self._get_env(st, name)
        if self.skip_unset_env and not is_set:
            return "${" + name + "/" + pattern + "/" + replacement + "}"
        glob = _Glob.compile(pattern)
        return _replace(glob, value, replacement, replace_all)


# -- glob patterns ----------------------------------------------------------------------------

_STAR = object()
_ANY = object()


class _Glob(msgspec.Struct, frozen=True):
    """A shell pattern (``*``, ``?``, ``\\`` escapes; no brackets) as a token list."""

    tokens: tuple[object, ...]

    @staticmethod
    def compile(pattern: str) -> _Glob:
        tokens: list[object] = []
        i = 0
        while i < len(pattern):
            ch = pattern[i]
            i += 1
            if ch == "*":
                if not tokens or tokens[-1] is not _STAR:
                    tokens.append(_STAR)
            elif ch == "?":
                tokens.append(_ANY)
            elif ch == "\\":
                nxt = pattern[i] if i < len(pattern) else ""
                if nxt in ("}", "/"):
                    continue
                if nxt not in ("*", "?", "\\"):
                    raise _Fail(
                        f"invalid pattern ({pattern}) in substitution: invalid escape '\\{nxt}'"
                    )
                tokens.append(nxt)
                i += 1
            else:
                tokens.append(ch)
        return _Glob(tuple(tokens))

    def reversed(self) -> _Glob:
        return _Glob(tuple(reversed(self.tokens)))

    def _closure(self, states: set[int]) -> set[int]:
        todo = list(states)
        while todo:
            k = todo.pop()
            if k < len(self.tokens) and self.tokens[k] is _STAR and k + 1 not in states:
                states.add(k + 1)
                todo.append(k + 1)
        return states

    def match_ends(self, text: str, start: int, budget: list[int]) -> list[int]:
        """Every end index e such that text[start:e] matches the whole pattern."""
        final = len(self.tokens)
        states = self._closure({0})
        ends = [start] if final in states else []
        for i in range(start, len(text)):
            ch = text[i]
            nxt: set[int] = set()
            for k in states:
                if k == final:
                    continue
                tok = self.tokens[k]
                if tok is _STAR:
                    if ch != "\n":
                        nxt.add(k)
                elif (tok is _ANY and ch != "\n") or tok == ch:
                    nxt.add(k + 1)
            budget[0] -= len(states) + 1
            if budget[0] < 0:
                raise _Fail("pattern matching too expensive")
            states = self._closure(nxt)
            if not states:
                break
            if final in states:
                ends.append(i + 1)
        return ends


def _trim_prefix(pattern: str, value: str, greedy: bool) -> str:
    ends = _Glob.compile(pattern).match_ends(value, 0, [MAX_MATCH_WORK])
    if not ends:
        return value
    return value[(ends[-1] if greedy else ends[0]) :]


def _trim_suffix(pattern: str, value: str, greedy: bool) -> str:
    rev = value[::-1]
    ends = _Glob.compile(pattern).reversed().match_ends(rev, 0, [MAX_MATCH_WORK])
    if not ends:
        return value
    cut = ends[-1] if greedy else ends[0]
    return rev[cut:][::-1]


def _replace(glob: _Glob, value: str, replacement: str, replace_all: bool) -> str:
    if glob.tokens and all(isinstance(t, str) for t in glob.tokens):
        literal = "".join(t for t in glob.tokens if isinstance(t, str))
        count = value.count(literal) if replace_all else min(1, value.count(literal))
        _check_size(len(value) + count * (len(replacement) - len(literal)))
        return value.replace(literal, replacement, -1 if replace_all else 1)
    budget = [MAX_MATCH_WORK]
    out: list[str] = []
    size = 0
    i = 0
    last_end = -1
    while i <= len(value):
        ends = glob.match_ends(value, i, budget)
        if ends and ends[-1] == i == last_end:
            ends = []  # an empty match right after a match is ignored (as Go does)
        if not ends:
            if i < len(value):
                out.append(value[i])
                size += 1
            i += 1
            continue
        end = last_end = ends[-1]
        out.append(replacement)
        size += len(replacement)
        _check_size(size)
        if not replace_all:
            out.append(value[end:])
            return "".join(out)
        if end == i:  # empty match: copy one character and move on (as Go does)
            if i < len(value):
                out.append(value[i])
                size += 1
            i += 1
        else:
            i = end
    return "".join(out)


# -- convenience ------------------------------------------------------------------------------


def process_word(word: str, env: Mapping[str, str], escape_token: str = "\\") -> str:
    """Expand one word (BuildKit's ``ProcessWord``)."""
    return ShellLex(escape_token).process_word(word, env)


def process_words(word: str, env: Mapping[str, str], escape_token: str = "\\") -> list[str]:
    """Expand and split into words (BuildKit's ``ProcessWords``)."""
    return ShellLex(escape_token).process_words(word, env)


class EnvExpander:
    """Expands the words of one instruction with one environment, recording what it used.

    ``matched`` (names found in ``env``) is what a build cache key must include; for
    ``ENV a=1 b=$a`` every word is expanded with the environment as it was *before* the
    instruction, because the executor builds one expander per instruction.
    """

    def __init__(self, env: Mapping[str, str], escape_token: str = "\\") -> None:
        self.env = env
        self.lex = ShellLex(escape_token)
        self.raw_lex = ShellLex("\\", skip_process_quotes=True)
        self.matched: set[str] = set()
        self.unmatched: set[str] = set()

    def _record(self, res: ExpansionResult) -> ExpansionResult:
        self.matched |= res.matched
        self.unmatched |= res.unmatched
        return res

    def word(self, text: str) -> str:
        return self._record(self.lex.process_word_with_matches(text, self.env)).result

    def words(self, text: str) -> list[str]:
        return list(self._record(self.lex.process_word_with_matches(text, self.env)).words)

    def raw(self, text: str) -> str:
        """Heredoc bodies: variables expanded, quotes and escapes left alone."""
        return self._record(self.raw_lex.process_word_with_matches(text, self.env)).result


WordExpander = Callable[[str], str]
