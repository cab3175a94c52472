"""What a PromQL expression reads: the metric names it selects (``reader``), and whether every
label it filters, groups or matches by is one its operand carries (``labels``). Used by the
checks of the alert rules and of the dashboards: ``from deploy import promql`` then
``promql.metric_names(expr)``, ``promql.label_problems(expr, labels_of)``.
"""

from deploy.promql.labels import LabelsOf, label_problems
from deploy.promql.reader import (
    Aggregation,
    Binary,
    Call,
    Literal,
    Matcher,
    Node,
    PromQLError,
    Selector,
    Token,
    Unary,
    metric_names,
    parse,
    selectors,
    tokens,
    walk,
)

__all__ = [
    "Aggregation",
    "Binary",
    "Call",
    "LabelsOf",
    "Literal",
    "Matcher",
    "Node",
    "PromQLError",
    "Selector",
    "Token",
    "Unary",
    "label_problems",
    "metric_names",
    "parse",
    "selectors",
    "tokens",
    "walk",
]
