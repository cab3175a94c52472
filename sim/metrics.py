"""Rank correlation, error and graph figures for judging a model on a simulated population (pure Python)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties given the average of the ranks they span."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    result = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        average = (start + end) / 2.0 + 1.0
        for k in range(start, end + 1):
            result[order[k]] = average
        start = end + 1
    return result


def pearson(xs: Sequence[float], ys: Sequence[float]) -> float:
    n = len(xs)
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    syy = math.fsum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else 0.0


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    return pearson(ranks(xs), ranks(ys))


def mae(xs: Sequence[float], ys: Sequence[float]) -> float:
    return math.fsum(abs(x - y) for x, y in zip(xs, ys, strict=True)) / len(xs)


def largest_component_share(nodes: Iterable[str], edges: Iterable[tuple[str, str]]) -> float:
    """Share of ``nodes`` in the largest connected component of the undirected graph."""
    parent = {n: n for n in nodes}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    sizes: dict[str, int] = {}
    for n in parent:
        root = find(n)
        sizes[root] = sizes.get(root, 0) + 1
    return max(sizes.values()) / len(parent) if parent else 0.0
