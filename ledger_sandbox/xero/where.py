r"""The ``where`` and ``order`` query parameters of Xero GET endpoints.

Xero evaluates ``where`` as a .NET dynamic-LINQ style expression, e.g.
``Status=="AUTHORISED" AND Contact.ContactID==guid("…")``, ``Date>=DateTime(2024,01,31)``,
``Name.Contains("Ltd")``, ``AmountDue>0``, ``EmailAddress!=null``.  This module parses that subset
into a predicate over a stored record (nested dicts, keys matched case-insensitively).  Strings
compare case-insensitively, as Xero's filters do, on their Unicode text: a literal is
decoded from its escapes only (``\"``, ``\\``, ``\uXXXX``), never byte-wise, so accented
names match; ``ToLower()``/``ToUpper()`` are Unicode-aware.  Anything outside the subset
raises :class:`QueryError` which the app renders as Xero's 400 ``QueryParseException``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from .dates import parse_datetime

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>"(?:[^"\\]|\\.)*")
      | (?P<num>-?\d+(?:\.\d+)?)
      | (?P<op>==|!=|>=|<=|&&|\|\||[<>=!(),.])
      | (?P<id>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)
_METHODS = {"contains", "startswith", "endswith", "tolower", "toupper", "equals"}


class QueryError(ValueError):
    """A ``where``/``order`` expression outside the emulated subset or malformed."""


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        found = _TOKEN.match(text, pos)
        if not found or found.end() == pos:
            raise QueryError(f"Syntax error at position {pos} in where clause")
        pos = found.end()
        kind = found.lastgroup
        out.append((kind, found.group(kind)))
    return out


class _Parser:
    """Recursive-descent parser producing nested callables ``f(record) -> value``."""

    def __init__(self, text: str):
        self.toks = _tokens(text)
        self.i = 0

    def peek(self, offset: int = 0) -> tuple[str, str] | None:
        j = self.i + offset
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise QueryError("Unexpected end of where clause")
        self.i += 1
        return tok

    def accept(self, *values: str) -> bool:
        tok = self.peek()
        if tok and tok[1].upper() in values:
            self.i += 1
            return True
        return False

    def expect(self, value: str) -> None:
        if not self.accept(value):
            raise QueryError(f"'{value}' expected in where clause")

    def parse(self) -> Callable[[dict], Any]:
        node = self.or_()
        if self.peek() is not None:
            raise QueryError(f"Unexpected token {self.peek()[1]!r} in where clause")
        return node

    def or_(self):
        left = self.and_()
        while self.accept("OR", "||"):
            right = self.and_()
            left = (lambda a, b: lambda r: bool(a(r)) or bool(b(r)))(left, right)
        return left

    def and_(self):
        left = self.not_()
        while self.accept("AND", "&&"):
            right = self.not_()
            left = (lambda a, b: lambda r: bool(a(r)) and bool(b(r)))(left, right)
        return left

    def not_(self):
        if self.accept("NOT", "!"):
            inner = self.not_()
            return lambda r: not inner(r)
        return self.cmp()

    def cmp(self):
        left = self.value()
        tok = self.peek()
        if tok and tok[0] == "op" and tok[1] in ("==", "=", "!=", ">", "<", ">=", "<="):
            self.i += 1
            right = self.value()
            op = tok[1]
            return lambda r: _compare(op, left(r), right(r))
        return left

    def value(self):
        node = self.primary()
        while self.peek() and self.peek()[1] == "." and self.peek(1) and self.peek(1)[0] == "id":
            self.i += 1
            name = self.take()[1]
            if name.lower() not in _METHODS:
                raise QueryError(f"Method {name!r} is not supported in where clauses")
            self.expect("(")
            args = []
            if not self.accept(")"):
                args.append(self.or_())
                while self.accept(","):
                    args.append(self.or_())
                self.expect(")")
            node = (lambda n, m, a: lambda r: _method(m, n(r), [x(r) for x in a]))(
                node, name.lower(), args)
        return node

    def primary(self):
        kind, text = self.take()
        if text == "(":
            node = self.or_()
            self.expect(")")
            return node
        if kind == "str":
            value = _unescape(text[1:-1])
            return lambda r: value
        if kind == "num":
            number = Decimal(text)
            return lambda r: number
        if kind != "id":
            raise QueryError(f"Unexpected token {text!r} in where clause")
        upper = text.upper()
        if upper in ("TRUE", "FALSE"):
            flag = upper == "TRUE"
            return lambda r: flag
        if upper == "NULL":
            return lambda r: None
        if upper == "GUID" and self.peek() and self.peek()[1] == "(":
            self.expect("(")
            literal = self.take()
            self.expect(")")
            value = literal[1].strip('"').lower()
            return lambda r: value
        if upper == "DATETIME" and self.peek() and self.peek()[1] == "(":
            self.expect("(")
            parts = [int(self.take()[1])]
            while self.accept(","):
                parts.append(int(self.take()[1]))
            self.expect(")")
            try:
                moment = dt.datetime(*parts, tzinfo=dt.timezone.utc)
            except (TypeError, ValueError) as error:
                raise QueryError(f"Invalid DateTime literal: {error}") from None
            return lambda r: moment
        path = [text]
        # A dotted path continues while the next identifier is not a method call.
        while (self.peek() and self.peek()[1] == "." and self.peek(1)
               and self.peek(1)[0] == "id" and not (
                   self.peek(2) and self.peek(2)[1] == "("
                   and self.peek(1)[1].lower() in _METHODS)):
            self.i += 1
            path.append(self.take()[1])
        return lambda r: resolve(r, path)


_ESCAPE = re.compile(r"\\(u[0-9A-Fa-f]{4}|.)", re.DOTALL)
_ESCAPED = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def _unescape(text: str) -> str:
    r"""A string literal's text with its backslash escapes (``\"``, ``\\``, ``\n``,
    ``\uXXXX`` …) resolved, every other character kept as the Unicode text it is.

    (Decoding the literal with Python's ``unicode_escape`` codec, as this module once did,
    reads the UTF-8 bytes of "é" as two Latin-1 characters, so no accented name ever
    matched.)
    """
    def one(found: re.Match) -> str:
        code = found.group(1)
        if len(code) == 5 and code[0] == "u":
            return chr(int(code[1:], 16))
        return _ESCAPED.get(code, code)

    return _ESCAPE.sub(one, text)


def resolve(record: Any, path: list[str]) -> Any:
    """Follow a dotted ``path`` through nested dicts, matching keys case-insensitively."""
    value = record
    for part in path:
        if not isinstance(value, dict):
            return None
        lowered = part.lower()
        value = next((v for k, v in value.items() if k.lower() == lowered), None)
    return value


def _coerce(left: Any, right: Any) -> tuple[Any, Any]:
    # Bring both sides to one comparable type: datetime, Decimal, bool or lower-case str.
    if isinstance(left, dt.datetime) or isinstance(right, dt.datetime):
        return _as_datetime(left), _as_datetime(right)
    if isinstance(left, bool) or isinstance(right, bool):
        return left, right
    if isinstance(left, Decimal) or isinstance(right, Decimal):
        return _as_decimal(left), _as_decimal(right)
    if isinstance(left, str) and isinstance(right, str):
        return left.lower(), right.lower()
    return left, right


def _as_datetime(value: Any) -> Any:
    if value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    try:
        return parse_datetime(str(value))
    except (ValueError, TypeError):
        return None


def _as_decimal(value: Any) -> Any:
    if value is None or isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except InvalidOperation:
        return None


def _compare(op: str, left: Any, right: Any) -> bool:
    left, right = _coerce(left, right)
    if op in ("==", "="):
        return left == right
    if op == "!=":
        return left != right
    if left is None or right is None:
        return False
    try:
        return {">": left > right, "<": left < right, ">=": left >= right,
                "<=": left <= right}[op]
    except TypeError:
        raise QueryError(f"Operator {op} cannot compare these values") from None


def _method(name: str, target: Any, args: list[Any]) -> Any:
    if name == "tolower":
        return target.lower() if isinstance(target, str) else target
    if name == "toupper":
        return target.upper() if isinstance(target, str) else target
    if target is None:
        return False
    text, arg = str(target).lower(), str(args[0] if args else "").lower()
    return {"contains": arg in text, "startswith": text.startswith(arg),
            "endswith": text.endswith(arg), "equals": text == arg}[name]


def compile_where(text: str | None) -> Callable[[dict], bool]:
    """Compile a ``where`` expression into a predicate (no expression: everything matches)."""
    if not text or not text.strip():
        return lambda record: True
    node = _Parser(text).parse()
    return lambda record: bool(node(record))


def sort_records(records: list[dict], order: str | None) -> list[dict]:
    """Sort by an ``order`` clause such as ``"Date DESC, InvoiceNumber ASC"``."""
    if not order or not order.strip():
        return records
    keys = []
    for clause in order.split(","):
        parts = clause.split()
        if not parts or len(parts) > 2 or (len(parts) == 2
                                          and parts[1].upper() not in ("ASC", "DESC")):
            raise QueryError(f"Invalid order clause {clause.strip()!r}")
        keys.append((parts[0].split("."), len(parts) == 2 and parts[1].upper() == "DESC"))
    result = list(records)
    for path, descending in reversed(keys):
        # Stable sorts applied from the last key to the first give a multi-key order;
        # missing values sort first, as SQL NULLs do in ascending order.
        result.sort(key=lambda r, p=path: _sort_key(resolve(r, p)), reverse=descending)
    return result


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (0, "")
    if isinstance(value, bool):
        return (1, int(value))
    if isinstance(value, (int, float, Decimal)):
        return (1, Decimal(str(value)))
    return (2, str(value).lower())
