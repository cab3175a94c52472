"""What a PromQL expression reads: a small recursive-descent reader of PromQL (selectors with
matchers, ranges, subqueries, ``offset`` and ``@``, function calls, aggregations with
``by``/``without`` before or after their argument, binary operators with ``bool``,
``on``/``ignoring`` and ``group_left``/``group_right``), enough to say what a query reads: its
tree (``parse``) and the metric names it selects (``metric_names``). It does not judge syntax:
promtool does that. Grafana's template variables (``$service``, ``${service}``,
``$__rate_interval``) may stand where a duration or a number may, and inside strings.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
     "topk", "quantile", "limitk", "limit_ratio"}
)  # fmt: skip
#: The set operators (binary operators between vectors that match series, not values).
SET_OPERATORS = frozenset({"and", "or", "unless"})
_PRECEDENCE = {
    "or": 1, "and": 2, "unless": 2,
    "==": 3, "!=": 3, "<": 3, "<=": 3, ">": 3, ">=": 3,
    "+": 4, "-": 4, "*": 5, "/": 5, "%": 5, "atan2": 5, "^": 6,
}  # fmt: skip

_TOKEN = re.compile(
    r"""(?P<space>\s+|\#[^\n]*)
    |(?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    |(?P<range>\[[^\]]*\])
    |(?P<var>\$\{[^}]*\}|\$\w+)
    |(?P<dur>(?:\d+(?:ms|[smhdwy]))+(?![\w.]))
    |(?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)
    |(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    |(?P<op>=~|!~|!=|==|<=|>=|[=<>+\-*/%^(){},@])""",
    re.VERBOSE,
)


class PromQLError(ValueError):
    """The expression is not one this reader understands."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


def tokens(expr: str) -> list[Token]:
    found: list[Token] = []
    at = 0
    while at < len(expr):
        match = _TOKEN.match(expr, at)
        if not match:
            raise PromQLError(f"cannot read {expr[at : at + 20]!r} in {expr!r}")
        kind = match.lastgroup or ""
        if kind != "space":
            found.append(Token(kind, match.group()))
        at = match.end()
    found.append(Token("end", ""))
    return found


def _unquote(text: str) -> str:
    body = text[1:-1]
    return body if text[0] == "`" else re.sub(r"\\(.)", r"\1", body)


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    value: str


@dataclass(frozen=True)
class Selector:
    name: str
    matchers: tuple[Matcher, ...] = ()


@dataclass(frozen=True)
class Literal:
    """A number, a string or a Grafana variable standing for one."""

    text: str
    string: bool = False


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple[Node, ...]


@dataclass(frozen=True)
class Aggregation:
    op: str
    args: tuple[Node, ...]
    grouping: tuple[str, ...] = ()
    without: bool = False


@dataclass(frozen=True)
class Binary:
    op: str
    left: Node
    right: Node
    on: tuple[str, ...] | None = None  # on(...) labels
    ignoring: tuple[str, ...] = ()
    group: str | None = None  # "left" or "right" (many-to-one, one-to-many)
    include: tuple[str, ...] = ()  # group_left(...) labels taken from the other side


@dataclass(frozen=True)
class Unary:
    operand: Node


Node = Selector | Literal | Call | Aggregation | Binary | Unary


@dataclass
class _Reader:
    expr: str
    toks: list[Token] = field(default_factory=list)
    at: int = 0

    def __post_init__(self) -> None:
        self.toks = tokens(self.expr)

    @property
    def next(self) -> Token:
        return self.toks[self.at]

    def take(self, text: str | None = None, kind: str | None = None) -> Token:
        tok = self.next
        if (text is not None and tok.text != text) or (kind is not None and tok.kind != kind):
            raise PromQLError(f"expected {text or kind} but found {tok.text!r} in {self.expr!r}")
        self.at += 1
        return tok

    def is_op(self, text: str) -> bool:
        return self.next.kind == "op" and self.next.text == text

    def is_word(self, *words: str) -> bool:
        return self.next.kind == "ident" and self.next.text in words

    def whole(self) -> Node:
        node = self.expression(0)
        self.take(kind="end")
        return node

    def expression(self, floor: int) -> Node:
        left = self.unary()
        while True:
            tok = self.next
            is_operator = tok.kind == "op" or (tok.kind == "ident" and tok.text in SET_OPERATORS | {"atan2"})
            level = _PRECEDENCE.get(tok.text) if is_operator else None
            if level is None or level < floor:
                return left
            self.at += 1
            if self.is_word("bool"):
                self.at += 1
            on: tuple[str, ...] | None = None
            ignoring: tuple[str, ...] = ()
            if self.is_word("on"):
                self.at += 1
                on = self.labels()
            elif self.is_word("ignoring"):
                self.at += 1
                ignoring = self.labels()
            group: str | None = None
            include: tuple[str, ...] = ()
            if self.is_word("group_left", "group_right"):
                group = self.take().text.removeprefix("group_")
                if self.is_op("("):
                    include = self.labels()
            right = self.expression(level if tok.text == "^" else level + 1)
            left = Binary(tok.text, left, right, on, ignoring, group, include)

    def unary(self) -> Node:
        if self.is_op("-") or self.is_op("+"):
            sign = self.take().text
            operand = self.expression(_PRECEDENCE["^"])
            return Unary(operand) if sign == "-" else operand
        return self.postfix(self.primary())

    def postfix(self, node: Node) -> Node:
        while True:
            if self.next.kind == "range":  # [5m], [$__rate_interval], [1h:5m] (a subquery)
                self.at += 1
            elif self.is_word("offset"):
                self.at += 1
                if self.is_op("-"):
                    self.at += 1
                self.take(kind=self.next.kind if self.next.kind in ("dur", "num", "var") else "dur")
            elif self.is_op("@"):
                self.at += 1
                if self.is_word("start", "end"):
                    self.at += 1
                    self.take("(")
                    self.take(")")
                else:
                    self.take(kind=self.next.kind if self.next.kind in ("num", "var") else "num")
            else:
                return node

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind in ("num", "var", "dur"):
            return Literal(tok.text)
        if tok.kind == "str":
            return Literal(_unquote(tok.text), string=True)
        if tok.kind == "op" and tok.text == "(":
            inner = self.expression(0)
            self.take(")")
            return inner
        if tok.kind == "op" and tok.text == "{":
            return self.selector("")
        if tok.kind != "ident":
            raise PromQLError(f"unexpected {tok.text!r} in {self.expr!r}")
        if tok.text.lower() in ("inf", "nan") and not (self.is_op("(") or self.is_op("{")):
            return Literal(tok.text)
        if tok.text in AGGREGATIONS and (self.is_op("(") or self.is_word("by", "without")):
            return self.aggregation(tok.text)
        if self.is_op("("):
            return Call(tok.text, self.arguments())
        if self.is_op("{"):
            self.at += 1
            return self.selector(tok.text)
        return Selector(tok.text)

    def aggregation(self, op: str) -> Aggregation:
        grouping: tuple[str, ...] | None = None
        without = False
        if self.is_word("by", "without"):
            without = self.take().text == "without"
            grouping = self.labels()
        args = self.arguments()
        if grouping is None and self.is_word("by", "without"):
            without = self.take().text == "without"
            grouping = self.labels()
        return Aggregation(op, args, grouping or (), without)

    def arguments(self) -> tuple[Node, ...]:
        self.take("(")
        args: list[Node] = []
        while not self.is_op(")"):
            args.append(self.expression(0))
            if not self.is_op(")"):
                self.take(",")
        self.take(")")
        return tuple(args)

    def labels(self) -> tuple[str, ...]:
        """``(a, b, "c.d")``: a grouping's or a matching's label names."""
        self.take("(")
        names: list[str] = []
        while not self.is_op(")"):
            tok = self.take()
            if tok.kind not in ("ident", "str"):
                raise PromQLError(f"expected a label name but found {tok.text!r} in {self.expr!r}")
            names.append(_unquote(tok.text) if tok.kind == "str" else tok.text)
            if not self.is_op(")"):
                self.take(",")
        self.take(")")
        return tuple(names)

    def selector(self, name: str) -> Selector:
        """The matchers after ``{`` (taken): ``label op "value"`` pairs; a quoted string alone names
        the metric (``{"my.metric", a="b"}``), as does a ``__name__="..."`` matcher."""
        matchers: list[Matcher] = []
        while not self.is_op("}"):
            tok = self.take()
            if tok.kind == "str" and (self.is_op(",") or self.is_op("}")):
                name = _unquote(tok.text)
            elif tok.kind in ("ident", "str"):
                label = _unquote(tok.text) if tok.kind == "str" else tok.text
                op = self.take(kind="op").text
                if op not in ("=", "!=", "=~", "!~"):
                    raise PromQLError(f"{op!r} is not a label matcher in {self.expr!r}")
                value = _unquote(self.take(kind="str").text)
                if label == "__name__" and op == "=":
                    name = value
                else:
                    matchers.append(Matcher(label, op, value))
            else:
                raise PromQLError(f"expected a label matcher but found {tok.text!r} in {self.expr!r}")
            if not self.is_op("}"):
                self.take(",")
        self.take("}")
        if not name:
            raise PromQLError(f"a selector without a metric name in {self.expr!r}")
        return Selector(name, tuple(matchers))


def parse(expr: str) -> Node:
    return _Reader(expr).whole()


def walk(node: Node) -> Iterator[Node]:
    yield node
    children: tuple[Node, ...] = ()
    if isinstance(node, Call | Aggregation):
        children = node.args
    elif isinstance(node, Binary):
        children = (node.left, node.right)
    elif isinstance(node, Unary):
        children = (node.operand,)
    for child in children:
        yield from walk(child)


def selectors(expr: str) -> list[Selector]:
    return [node for node in walk(parse(expr)) if isinstance(node, Selector)]


def metric_names(expr: str) -> set[str]:
    """The series names an expression selects (``x_bucket``, ``x_total``: as written)."""
    return {selector.name for selector in selectors(expr)}
