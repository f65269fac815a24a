"""Reading just enough SQL to serve it the way a ClickHouse server does.

A server parses the query itself; this process hands the text to the engine, but first must know
three things about it: whether it is an `INSERT ... FORMAT <name>` whose data follows in the body
(the engine reads that data from a file instead, `FROM INFILE`), which format a result comes in
(for `X-ClickHouse-Format`), and that it is one statement (the engine would run several; a server
refuses them). A small tokenizer over bytes finds those at the top level of the statement, outside
strings, quoted names, comments and brackets, and never reads an insert's data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from embedded_clickhouse.errors import ServerError

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


@dataclass(frozen=True)
class Statement:
    """One statement, as far as this server needs to know it.

    `data_format` is set for an INSERT whose rows follow the statement in that format, starting at
    `data_offset` of the text given to `read_statement`; `clause_offset` is where the INSERT's
    SETTINGS or FORMAT clause starts (`FROM INFILE` goes right before it).
    """

    sql: bytes
    output_format: str | None  # a query's trailing FORMAT clause
    data_format: str | None = None
    data_offset: int = 0
    clause_offset: int = 0

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


def read_statement(text: bytes) -> Statement:
    """Find the statement at the start of `text`; for an INSERT with FORMAT, stop at the format's
    name and leave what follows (the rows) unread. Raises ServerError for several statements."""
    words: list[_Word] = []  # top-level words, in order
    depth = 0
    end: int | None = None  # where a `;` ended the statement
    for match in _TOKEN.finditer(text):
        kind = match.lastgroup
        if kind in ("space", "comment"):
            continue
        if end is not None:
            raise ServerError("SYNTAX_ERROR", "Multi-statements are not allowed")
        if kind == "open":
            depth += 1
        elif kind == "close":
            depth = max(0, depth - 1)
        elif kind == "end" and depth == 0:
            end = match.start()
        elif kind == "word" and depth == 0:
            words.append(_Word(match.group().upper(), match.start(), match.end()))
            if len(words) >= 3 and words[0].upper == b"INSERT" and words[-2].upper == b"FORMAT":
                return _insert(text, words)
    sql = text[:end] if end is not None else text
    trailing = len(words) >= 2 and words[-2].upper == b"FORMAT"
    output_format = text[words[-1].start : words[-1].end].decode() if trailing else None
    return Statement(sql=sql.rstrip(), output_format=output_format)


def _insert(text: bytes, words: list[_Word]) -> Statement:
    """An INSERT ... FORMAT name: its rows start after the name, blanks and one line break."""
    name = words[-1]
    data = name.end
    while data < len(text) and text[data] in b" \t":
        data += 1
    data += 2 if text.startswith(b"\r\n", data) else 1 if text.startswith(b"\n", data) else 0
    settings = [word.start for word in words[1:-2] if word.upper == b"SETTINGS"]
    return Statement(
        sql=text[: name.end],
        output_format=None,
        data_format=text[name.start : name.end].decode(),
        data_offset=data,
        clause_offset=settings[0] if settings else words[-2].start,
    )
