"""Whether every label a PromQL expression filters, groups or matches by is one its operand
carries (``label_problems``), on the tree of ``deploy.promql.reader``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from deploy.promql.reader import (
    SET_OPERATORS,
    Aggregation,
    Binary,
    Call,
    Literal,
    Node,
    Selector,
    Unary,
    parse,
)

#: The label names of a series name, or None for a series nobody exports.
LabelsOf = Callable[[str], frozenset[str] | None]
#: Aggregations that keep the series they pick, labels and all.
_KEEPING = frozenset({"topk", "bottomk", "limitk", "limit_ratio"})
#: Aggregations whose first argument is a parameter, not the vector.
_PARAMETRISED = frozenset({"count_values", "topk", "bottomk", "quantile", "limitk", "limit_ratio"})
_SCALAR_FUNCTIONS = frozenset({"scalar", "time", "pi"})


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
    if node.op in SET_OPERATORS or left.labels is None:
        return left
    if node.on is not None:
        return _Shape(frozenset(node.on))
    return _Shape(left.labels - set(node.ignoring))
