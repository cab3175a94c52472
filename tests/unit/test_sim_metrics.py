"""The bench's own statistics (no scipy): ranks with ties averaged, Spearman, components."""

from __future__ import annotations

import pytest

from sim.metrics import largest_component_share, mae, ranks, spearman


def test_ranks_average_ties() -> None:
    assert ranks([10.0, 20.0, 20.0, 5.0]) == [2.0, 3.5, 3.5, 1.0]


def test_spearman() -> None:
    assert spearman([1.0, 2.0, 3.0], [10.0, 20.0, 30.0]) == pytest.approx(1.0)
    assert spearman([1.0, 2.0, 3.0], [3.0, 2.0, 1.0]) == pytest.approx(-1.0)
    assert spearman([1.0, 2.0, 3.0, 4.0, 5.0], [5.0, 6.0, 7.0, 8.0, 7.0]) == pytest.approx(0.8207826816681233)


def test_mae() -> None:
    assert mae([0.0, 1.0], [0.5, 0.5]) == 0.5


def test_largest_component_share() -> None:
    nodes = ["a", "b", "c", "d", "e"]
    assert largest_component_share(nodes, [("a", "b"), ("b", "c"), ("d", "e")]) == pytest.approx(0.6)
    assert largest_component_share(nodes, []) == pytest.approx(0.2)
