"""The QuickBooks Online query language: parse a SELECT statement and run it over entity dicts.

Follows Intuit's "Data queries" page
(https://developer.intuit.com/app/developer/qbo/docs/learn/explore-the-quickbooks-online-api/data-queries):

    SELECT * | COUNT(*) | field[, field...] FROM Entity
        [WHERE prop op value [AND prop op value ...]]
        [ORDERBY prop [ASC|DESC][, prop [ASC|DESC]]]
        [STARTPOSITION n] [MAXRESULTS n]

- operators: =, <, >, <=, >=, IN (list), LIKE (only the % wildcard); no OR, no joins, no !=;
- keywords are case-insensitive; string values are single-quoted, ``\\'`` escapes a quote;
- dotted properties reach nested values (``MetaData.LastUpdatedTime``); a reference property
  (``CustomerRef``) compares its ``value``;
- STARTPOSITION is 1-based; MAXRESULTS defaults to 100; above 1000 the query is refused
  (QueryValidationError 4001 "value N is too large. Max allowed value is 1000");
- string comparisons are case-insensitive (QuickBooks names are matched that way).
``ORDER BY`` (two words) is accepted too because python-quickbooks' ``all()`` sends it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

DEFAULT_MAX_RESULTS = 100
MAX_MAX_RESULTS = 1000

_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<string>'(?:\\.|[^'\\])*')
  | (?P<number>-?\d+(?:\.\d+)?(?![A-Za-z_]))
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),*])
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.]*)
    """,
    re.VERBOSE,
)

_KEYWORDS = {
    "select", "from", "where", "and", "or", "in", "like", "orderby", "order", "by", "asc",
    "desc", "startposition", "maxresults", "count", "true", "false", "not", "null",
}


class QueryError(Exception):
    """A query the service refuses.

    ``kind`` is "parse" (QueryParserError, code 4000) or "validation" (QueryValidationError,
    code 4001), the two faults Intuit's query service returns.
    """

    def __init__(self, kind: str, detail: str):
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass
class Condition:
    """One ``prop op value`` term of a WHERE clause."""

    prop: str
    op: str
    value: Any


@dataclass
class Query:
    """A parsed SELECT statement."""

    entity: str
    count: bool = False
    fields: list[str] | None = None  # None: SELECT *
    where: list[Condition] = field(default_factory=list)
    order_by: list[tuple[str, bool]] = field(default_factory=list)  # (prop, descending)
    start_position: int = 1
    max_results: int = DEFAULT_MAX_RESULTS


@dataclass
class _Tok:
    kind: str
    text: str
    pos: int


def _tokenize(text: str) -> list[_Tok]:
    toks: list[_Tok] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN_RE.match(text, pos)
        if not m:
            raise QueryError("parse", _encountered(text[pos], pos))
        kind = m.lastgroup or ""
        if kind != "ws":
            toks.append(_Tok(kind, m.group(), pos))
        pos = m.end()
    return toks


def _encountered(text: str, pos: int) -> str:
    # Mirrors the JavaCC wording Intuit's parser uses, so messages look familiar in logs.
    return f'QueryParserError: Encountered " "{text}" "{text} "" at line 1, column {pos + 1}.'


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self) -> _Tok | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def next(self) -> _Tok:
        tok = self.peek()
        if tok is None:
            raise QueryError("parse", 'QueryParserError: Encountered "<EOF>" at end of query.')
        self.i += 1
        return tok

    def fail(self, tok: _Tok) -> QueryError:
        return QueryError("parse", _encountered(tok.text, tok.pos))

    def kw(self, word: str) -> bool:
        tok = self.peek()
        if tok and tok.kind == "ident" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def expect_kw(self, word: str) -> None:
        tok = self.next()
        if not (tok.kind == "ident" and tok.text.lower() == word):
            raise self.fail(tok)

    def expect_punct(self, char: str) -> None:
        tok = self.next()
        if tok.text != char:
            raise self.fail(tok)

    def ident(self) -> str:
        tok = self.next()
        if tok.kind != "ident" or tok.text.lower() in _KEYWORDS:
            raise self.fail(tok)
        return tok.text

    def value(self) -> Any:
        tok = self.next()
        if tok.kind == "string":
            return tok.text[1:-1].replace("\\'", "'").replace("\\\\", "\\")
        if tok.kind == "number":
            return Decimal(tok.text)
        if tok.kind == "ident" and tok.text.lower() in ("true", "false"):
            return tok.text.lower() == "true"
        raise self.fail(tok)

    def integer(self) -> int:
        tok = self.next()
        if tok.kind != "number" or "." in tok.text:
            raise self.fail(tok)
        return int(tok.text)

    def parse(self) -> Query:
        self.expect_kw("select")
        count = False
        if self.kw("count"):
            self.expect_punct("(")
            self.expect_punct("*")
            self.expect_punct(")")
            count = True
        fields = None if count else self._select_list()
        self.expect_kw("from")
        query = Query(entity=self.ident(), count=count, fields=fields)
        if self.kw("where"):
            query.where.append(self._condition())
            while True:
                if self.kw("and"):
                    query.where.append(self._condition())
                    continue
                tok = self.peek()
                if tok and tok.kind == "ident" and tok.text.lower() == "or":
                    raise self.fail(tok)  # Intuit's language has no OR
                break
        ordered = self.kw("orderby")
        if not ordered and self.kw("order"):
            self.expect_kw("by")
            ordered = True
        if ordered:
            query.order_by.append(self._order_term())
            while self.peek() and self.peek().text == ",":
                self.next()
                query.order_by.append(self._order_term())
        # STARTPOSITION and MAXRESULTS may come in either order.
        for _ in range(2):
            if self.kw("startposition"):
                query.start_position = max(1, self.integer())
            elif self.kw("maxresults"):
                query.max_results = max(0, self._max_results())
        tok = self.peek()
        if tok is not None:
            raise self.fail(tok)
        return query

    def _max_results(self) -> int:
        value = self.integer()
        if value > MAX_MAX_RESULTS:
            # Intuit refuses rather than truncates (seen verbatim in quickbooks-ruby issue #24).
            raise QueryError(
                "validation",
                f"QueryValidationError: value {value} is too large. Max allowed value is "
                f"{MAX_MAX_RESULTS}",
            )
        return value

    def _select_list(self) -> list[str] | None:
        tok = self.next()
        if tok.text != "*" and (tok.kind != "ident" or tok.text.lower() in _KEYWORDS):
            raise self.fail(tok)
        names = [tok.text]
        while self.peek() and self.peek().text == ",":
            self.next()
            nxt = self.next()
            if nxt.text != "*" and (nxt.kind != "ident" or nxt.text.lower() in _KEYWORDS):
                raise self.fail(nxt)
            names.append(nxt.text)
        # "*" anywhere (python-quickbooks sends "SELECT *, Sku FROM Item") means everything.
        return None if "*" in names else names

    def _condition(self) -> Condition:
        prop = self.ident()
        tok = self.next()
        low = tok.text.lower()
        if tok.kind == "op":
            if tok.text in ("!=", "<>"):
                raise self.fail(tok)
            return Condition(prop, tok.text, self.value())
        if tok.kind == "ident" and low == "in":
            self.expect_punct("(")
            values = [self.value()]
            while self.peek() and self.peek().text == ",":
                self.next()
                values.append(self.value())
            self.expect_punct(")")
            return Condition(prop, "in", values)
        if tok.kind == "ident" and low == "like":
            val = self.value()
            if not isinstance(val, str):
                raise QueryError("parse", "QueryParserError: LIKE needs a quoted string.")
            return Condition(prop, "like", val)
        raise self.fail(tok)

    def _order_term(self) -> tuple[str, bool]:
        prop = self.ident()
        desc = False
        if self.kw("desc"):
            desc = True
        else:
            self.kw("asc")
        return prop, desc


def parse(text: str) -> Query:
    """Parse one query statement; raises QueryError."""
    return _Parser(text.strip().rstrip(";")).parse()


def validate(query: Query, entity_fields: dict[str, frozenset[str]]) -> str:
    """Check the entity and the properties used; return the entity's canonical name."""
    canonical = {name.lower(): name for name in entity_fields}
    entity = canonical.get(query.entity.lower())
    if entity is None:
        raise QueryError(
            "validation", f"QueryValidationError: Invalid context declaration : {query.entity}"
        )
    known = {name.lower() for name in entity_fields[entity]}
    used = [c.prop for c in query.where] + [p for p, _ in query.order_by] + (query.fields or [])
    for prop in used:
        root = prop.split(".")[0].lower()
        if root not in known:
            raise QueryError(
                "validation",
                f"QueryValidationError: property '{prop}' is not queryable",
            )
    return entity


def lookup(record: dict, prop: str) -> Any:
    """Resolve a (dotted, case-insensitive) property of an entity dict."""
    cur: Any = record
    for part in prop.split("."):
        if not isinstance(cur, dict):
            return None
        key = next((k for k in cur if k.lower() == part.lower()), None)
        if key is None:
            return None
        cur = cur[key]
    if isinstance(cur, dict) and "value" in cur:
        return cur["value"]  # a ReferenceType compares by its id
    return cur


def _as_datetime(value: str) -> datetime | None:
    if not isinstance(value, str) or "T" not in value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        # Intuit reads an offset-less time as the company's zone; the sandbox company is UTC.
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


def _as_decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float, Decimal)):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return None
    return None


def _key(left: Any, right: Any) -> tuple[Any, Any] | None:
    """Bring two values to one comparable type, or None if they cannot be compared."""
    if left is None or right is None:
        return None
    if isinstance(right, bool) or isinstance(left, bool):
        lb = left if isinstance(left, bool) else str(left).lower() == "true"
        rb = right if isinstance(right, bool) else str(right).lower() == "true"
        return lb, rb
    ld, rd = _as_datetime(left), _as_datetime(right)
    if ld is not None and rd is not None:
        return ld, rd
    if ld is not None and isinstance(right, str):
        # A date-only right side against a timestamp compares from midnight UTC.
        rd = _as_datetime(right + "T00:00:00")
        if rd is not None:
            return ld, rd
    if isinstance(right, Decimal) or isinstance(left, (int, float, Decimal)):
        ln, rn = _as_decimal(left), _as_decimal(right)
        if ln is not None and rn is not None:
            return ln, rn
    return str(left).lower(), str(right).lower()


def _like(value: Any, pattern: str) -> bool:
    if value is None:
        return False
    regex = ".*".join(re.escape(part) for part in pattern.lower().split("%"))
    return re.fullmatch(regex, str(value).lower(), re.DOTALL) is not None


def matches(record: dict, cond: Condition) -> bool:
    """True if one entity dict satisfies one condition."""
    value = lookup(record, cond.prop)
    if cond.op == "like":
        return _like(value, cond.value)
    if cond.op == "in":
        for candidate in cond.value:
            pair = _key(value, candidate)
            if pair is not None and pair[0] == pair[1]:
                return True
        return False
    pair = _key(value, cond.value)
    if pair is None:
        return False
    left, right = pair
    try:
        return {
            "=": left == right,
            "<": left < right,
            ">": left > right,
            "<=": left <= right,
            ">=": left >= right,
        }[cond.op]
    except TypeError:
        return False


def _sort_key(value: Any) -> tuple:
    if value is None:
        return (0, "")
    dt = _as_datetime(value) if isinstance(value, str) else None
    if dt is not None:
        return (1, dt.timestamp())
    num = _as_decimal(value)
    if num is not None and (not isinstance(value, str) or value.isdigit()):
        return (2, num)  # Ids travel as digit strings but sort as numbers
    return (3, str(value).lower())


def run(query: Query, records: list[dict]) -> tuple[list[dict], int]:
    """Filter, order and page records; return (page, total matching)."""
    selected = [r for r in records if all(matches(r, c) for c in query.where)]
    for prop, desc in reversed(query.order_by):
        selected.sort(key=lambda r, p=prop: _sort_key(lookup(r, p)), reverse=desc)
    total = len(selected)
    start = query.start_position - 1
    return selected[start : start + query.max_results], total


def project(query: Query, record: dict) -> dict:
    """Keep the selected properties (and the identity/envelope ones QuickBooks always sends)."""
    if query.fields is None:
        return record
    wanted = {f.split(".")[0].lower() for f in query.fields}
    wanted |= {"id", "synctoken", "domain", "sparse", "metadata"}
    return {k: v for k, v in record.items() if k.lower() in wanted}


def mentions(query: Query, prop: str) -> bool:
    """True if the WHERE clause names a property (e.g. Active, to include inactive names)."""
    return any(c.prop.lower() == prop.lower() for c in query.where)
