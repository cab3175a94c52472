"""What a PromQL expression reads: the metric names it selects, and whether every label it filters,
groups or matches by is one its operand carries.

A small recursive-descent reader of PromQL (selectors with matchers, ranges, subqueries,
``offset`` and ``@``, function calls, aggregations with ``by``/``without`` before or after their
argument, binary operators with ``bool``, ``on``/``ignoring`` and ``group_left``/``group_right``),
enough to say what a query reads. It does not judge syntax: promtool does that. Grafana's template
variables (``$service``, ``${service}``, ``$__rate_interval``) may stand where a duration or a
number may, and inside strings. Used by the checks of the alert rules and of the dashboards.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

#: The label names of a series name, or None for a series nobody exports.
LabelsOf = Callable[[str], frozenset[str] | None]

AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk",
     "topk", "quantile", "limitk", "limit_ratio"}
)  # fmt: skip
#: Aggregations that keep the series they pick, labels and all.
_KEEPING = frozenset({"topk", "bottomk", "limitk", "limit_ratio"})
#: Aggregations whose first argument is a parameter, not the vector.
_PARAMETRISED = frozenset({"count_values", "topk", "bottomk", "quantile", "limitk", "limit_ratio"})
_SCALAR_FUNCTIONS = frozenset({"scalar", "time", "pi"})
_SET_OPERATORS = frozenset({"and", "or", "unless"})
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
            is_operator = tok.kind == "op" or (tok.kind == "ident" and tok.text in _SET_OPERATORS | {"atan2"})
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


@dataclass(frozen=True)
class _Shape:
    """What an expression evaluates to: a scalar (or string), or a vector whose series carry at
    most ``labels`` (None: not known, because it reads a metric nobody exports)."""

    labels: frozenset[str] | None
    scalar: bool = False


_SCALAR = _Shape(frozenset(), scalar=True)


def label_problems(expr: str, labels_of: LabelsOf) -> list[str]:
    """Each label the expression filters on, groups by or matches on that the series it applies to
    do not carry, in words. Series ``labels_of`` does not know are left to the names check."""
    problems: list[str] = []
    _shape(parse(expr), labels_of, problems)
    return problems


def _missing(wanted: tuple[str, ...], shape: _Shape, what: str, problems: list[str]) -> None:
    if shape.labels is None or shape.scalar:
        return
    for label in wanted:
        if label not in shape.labels:
            carried = ", ".join(sorted(shape.labels)) or "none"
            problems.append(f"{what} uses label {label!r}, which its operand does not carry ({carried})")


def _shape(node: Node, labels_of: LabelsOf, problems: list[str]) -> _Shape:
    if isinstance(node, Literal):
        return _SCALAR
    if isinstance(node, Unary):
        return _shape(node.operand, labels_of, problems)
    if isinstance(node, Selector):
        labels = labels_of(node.name)
        if labels is not None:
            for m in node.matchers:
                if m.label not in labels and m.label != "__name__":
                    problems.append(
                        f"{node.name} has no label {m.label!r} (matcher {m.label}{m.op}{m.value!r}); "
                        f"it has: {', '.join(sorted(labels)) or 'none'}"
                    )
        return _Shape(labels)
    if isinstance(node, Call):
        return _call(node, labels_of, problems)
    if isinstance(node, Aggregation):
        return _aggregation(node, labels_of, problems)
    return _binary(node, labels_of, problems)


def _call(node: Call, labels_of: LabelsOf, problems: list[str]) -> _Shape:
    shapes = [_shape(arg, labels_of, problems) for arg in node.args]
    vector = next((s for s in shapes if not s.scalar), None)
    if vector is None:
        return _SCALAR if node.function in _SCALAR_FUNCTIONS else _Shape(frozenset())
    if node.function == "scalar":
        return _SCALAR
    labels = vector.labels
    if node.function == "histogram_quantile":
        _missing(("le",), vector, "histogram_quantile", problems)
        return _Shape(None if labels is None else labels - {"le"})
    if node.function in ("label_replace", "label_join"):
        texts = [arg.text for arg in node.args[1:] if isinstance(arg, Literal) and arg.string]
        if not texts:
            return vector
        sources = tuple(texts[2:3]) if node.function == "label_replace" else tuple(texts[2:])
        _missing(tuple(s for s in sources if s), vector, node.function, problems)
        return _Shape(None if labels is None else labels | {texts[0]})
    return vector


def _aggregation(node: Aggregation, labels_of: LabelsOf, problems: list[str]) -> _Shape:
    shapes = [_shape(arg, labels_of, problems) for arg in node.args]
    operand = shapes[-1] if shapes else _Shape(frozenset())
    how = "without" if node.without else "by"
    _missing(node.grouping, operand, f"{node.op} {how} ({', '.join(node.grouping)})", problems)
    if node.op in _KEEPING:
        return operand
    if node.without:
        out = None if operand.labels is None else operand.labels - set(node.grouping)
    else:
        out = frozenset(node.grouping)
    first = node.args[0] if node.op in _PARAMETRISED and node.args else None
    if node.op == "count_values" and out is not None and isinstance(first, Literal) and first.string:
        out = out | {first.text}  # count_values("version", build_info): the values' own label
    return _Shape(out)


def _binary(node: Binary, labels_of: LabelsOf, problems: list[str]) -> _Shape:
    left = _shape(node.left, labels_of, problems)
    right = _shape(node.right, labels_of, problems)
    if left.scalar and right.scalar:
        return _SCALAR
    if left.scalar or right.scalar:
        return right if left.scalar else left
    if node.on is not None:
        what = f"{node.op} on ({', '.join(node.on)})"
        _missing(node.on, left, what + " (left side)", problems)
        _missing(node.on, right, what + " (right side)", problems)
    if node.ignoring and left.labels is not None and right.labels is not None:
        either = _Shape(left.labels | right.labels)
        _missing(node.ignoring, either, f"{node.op} ignoring ({', '.join(node.ignoring)})", problems)
    if node.group is not None:
        one, many = (right, left) if node.group == "left" else (left, right)
        _missing(node.include, one, f"group_{node.group} ({', '.join(node.include)})", problems)
        if many.labels is None:
            return many
        return _Shape(many.labels | set(node.include))
    if node.op == "or":
        if left.labels is None or right.labels is None:
            return _Shape(None)
        return _Shape(left.labels | right.labels)
    if node.op in _SET_OPERATORS or left.labels is None:
        return left
    if node.on is not None:
        return _Shape(frozenset(node.on))
    return _Shape(left.labels - set(node.ignoring))
