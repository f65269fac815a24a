"""Reading just enough SQL to serve it the way a ClickHouse server does.

A server parses the query itself; this process hands the text to the engine, but first must know a
few things about it: whether it is an `INSERT ... FORMAT <name>` whose data follows in the body
(the engine reads that data from a file instead, `FROM INFILE`), which format a result comes in
(for `X-ClickHouse-Format`), that it is one statement (the engine would run several; a server
refuses them), and that it touches no file or program of this machine (the engine, in chDB's local
mode, would read and write any path the process may; a server refuses `INFILE`/`OUTFILE` over HTTP
and confines `file()` to its user files). A small tokenizer over bytes finds those outside strings,
quoted names and comments, and never reads an insert's data.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from eventlog.embedded_clickhouse.errors import ServerError

# One token each: whitespace, comments, quoted strings and names, a word, a bracket, `;`, anything else.
# Non-ASCII bytes can only be part of names, strings or comments, so a word may contain them.
_TOKEN = re.compile(
    rb"""(?P<space>\s+)
    | (?P<comment>--[^\n]*|\#[^\n]*|/\*.*?\*/)
    | (?P<quoted>'(?:[^'\\]|\\.|'')*'|`(?:[^`\\]|\\.|``)*`|"(?:[^"\\]|\\.|"")*")
    | (?P<word>[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)
    | (?P<open>[(\[{]) | (?P<close>[)\]}]) | (?P<end>;) | (?P<other>.)""",
    re.VERBOSE | re.DOTALL,
)


# Table functions, engines and dictionary sources that reach the machine's files or programs.
_LOCAL_ACCESS = frozenset(
    {b"FILE", b"FILECLUSTER", b"FILESYSTEM", b"EXECUTABLE", b"EXECUTABLEPOOL", b"PYTHON"}
)
_FILE_CLAUSES = frozenset({b"INFILE", b"OUTFILE"})
# After one of these at the top level, an INSERT's FORMAT would be a SELECT's, not its rows'.
_NOT_ROWS = frozenset({b"SELECT", b"WITH", b"VALUES"})
# Statements a server answers with a result (and its X-ClickHouse-Format).
_WITH_RESULT = frozenset({b"SELECT", b"WITH", b"SHOW", b"DESCRIBE", b"DESC", b"EXISTS", b"EXPLAIN", b"CHECK"})


@dataclass(frozen=True)
class Statement:
    """One statement, as far as this server needs to know it.

    `data_format` is set for an INSERT whose rows follow the statement in that format, starting at
    `data_offset` of the text given to `read_statement`; `clause_offset` is where the INSERT's
    SETTINGS or FORMAT clause starts (`FROM INFILE` goes right before it).
    """

    sql: bytes
    keyword: bytes  # the first word, upper case: SELECT, INSERT, ...
    output_format: str | None  # a query's trailing FORMAT clause
    data_format: str | None = None
    data_offset: int = 0
    clause_offset: int = 0

    @property
    def has_result(self) -> bool:
        return self.keyword in _WITH_RESULT or self.output_format is not None

    def insert_from_file(self, path: str) -> bytes:
        """The INSERT, reading its rows from the file at `path` instead of from the request."""
        quoted = "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"
        cut = self.clause_offset
        return self.sql[:cut] + f"FROM INFILE {quoted} ".encode() + self.sql[cut:]


@dataclass(frozen=True)
class _Word:
    upper: bytes
    start: int
    end: int
    after_name_part: bool  # follows `.`, INTO or TABLE: a (part of a) table's name, not a keyword


def _name(token: bytes, kind: str | None) -> bytes:
    """What a word or a quoted name (`file`, "file", with escapes) names, upper case; b"" else."""
    if kind == "word":
        return token.upper()
    if kind == "quoted" and token[:1] in (b"`", b'"'):
        quote = token[:1]
        inner = token[1:-1].replace(quote + quote, quote)
        return codecs.escape_decode(inner)[0].upper()
    return b""


def read_statement(text: bytes, formats: frozenset[str] = frozenset()) -> Statement:
    """Find the statement at the start of `text`; for an INSERT with FORMAT, stop at the format's
    name and leave what follows (the rows) unread. `formats`: the engine's format names, lower case
    (a FORMAT followed by anything else is a column or an alias). Raises ServerError for several statements
    and for access to the machine's files or programs."""
    words: list[_Word] = []  # top-level words, in order
    depth = 0
    end: int | None = None  # where a `;` ended the statement
    previous = b""  # the name of the last token (a word or quoted name), at any depth
    name_part = False  # the last token was `.`, INTO or TABLE
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind in ("space", "comment"):
            continue
        if end is not None:
            raise ServerError("SYNTAX_ERROR", "Multi-statements are not allowed")
        if kind == "open":
            _check_access(previous)
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        elif kind == "end" and depth == 0:
            end = match.start()
        previous = _name(match.group(), kind)
        if kind == "word" and depth == 0:
            if previous in _FILE_CLAUSES:
                raise ServerError("ACCESS_DENIED", f"{previous.decode()} is not allowed over HTTP")
            words.append(_Word(previous, match.start(), match.end(), name_part))
            if _ends_insert_format(text, words, formats):
                return _insert(text, words)
        name_part = match.group() == b"." or previous in (b"INTO", b"TABLE")
    sql = text[:end] if end is not None else text
    trailing = len(words) >= 2 and words[-2].upper == b"FORMAT" and _is_format(text, words[-1], formats)
    return Statement(
        sql=sql.rstrip(),
        keyword=words[0].upper if words else b"",
        output_format=text[words[-1].start : words[-1].end].decode() if trailing else None,
    )


def _check_access(word: bytes) -> None:
    if word in _LOCAL_ACCESS:
        raise ServerError(
            "ACCESS_DENIED", f"{word.decode().lower()}() reaches this machine's files or programs"
        )


def _is_format(text: bytes, word: _Word, formats: frozenset[str]) -> bool:
    """`formats`: the engine's format names in lower case (it matches them in any case)."""
    return not formats or text[word.start : word.end].decode(errors="replace").lower() in formats


def _ends_insert_format(text: bytes, words: list[_Word], formats: frozenset[str]) -> bool:
    """INSERT ... FORMAT name, with no SELECT, WITH or VALUES before the FORMAT."""
    if len(words) < 3 or words[0].upper != b"INSERT" or words[-2].upper != b"FORMAT":
        return False
    return not any(word.upper in _NOT_ROWS for word in words[1:-2]) and _is_format(text, words[-1], formats)


def _insert(text: bytes, words: list[_Word]) -> Statement:
    """An INSERT ... FORMAT name: its rows start after the name, blanks and one line break."""
    name = words[-1]
    data = name.end
    while data < len(text) and text[data] in b" \t":
        data += 1
    data += 2 if text.startswith(b"\r\n", data) else 1 if text.startswith(b"\n", data) else 0
    settings = [word.start for word in words[1:-2] if word.upper == b"SETTINGS" and not word.after_name_part]
    return Statement(
        sql=text[: name.end],
        keyword=b"INSERT",
        output_format=None,
        data_format=text[name.start : name.end].decode(),
        data_offset=data,
        clause_offset=settings[0] if settings else words[-2].start,
    )
