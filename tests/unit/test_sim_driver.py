"""When the HTTP driver may stop waiting for the tickets of a round: no pair the rules allow is left."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from services.matching.engine import Rules
from sim.http_driver import could_pair

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RULES = Rules()  # windows 0.25 from 0 s, 0.5 from 10 s, 1.0 from 30 s, ...


def ticket(learner: str, level: float, waited_s: float = 0.0) -> dict[str, Any]:
    at = NOW - timedelta(seconds=waited_s)
    return {"learner_id": learner, "level": level, "requested_at": at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def test_a_close_pair_can_still_be_made() -> None:
    assert could_pair([ticket("a", 2.0), ticket("b", 2.2)], RULES, NOW + timedelta(seconds=5))


def test_a_gap_only_a_later_window_allows_cannot_be_paired_by_the_deadline() -> None:
    far = [ticket("a", 1.0), ticket("b", 2.0), ticket("c", 3.0), ticket("d", 4.0)]
    assert not could_pair(far, RULES, NOW + timedelta(seconds=15))
    assert could_pair(far, RULES, NOW + timedelta(seconds=40))  # the 30 s window is 1.0 wide


def test_the_longer_waiting_ticket_lends_its_window() -> None:
    pair = [ticket("a", 2.0, waited_s=20), ticket("b", 2.45)]
    assert could_pair(pair, RULES, NOW + timedelta(seconds=1))
    assert not could_pair([ticket("a", 2.0), ticket("b", 2.45)], RULES, NOW + timedelta(seconds=1))


def test_recent_partners_and_one_learner_never_pair() -> None:
    recent = {("a", "b"), ("b", "a")}
    assert not could_pair(
        [ticket("a", 2.0), ticket("b", 2.1)], RULES, NOW, recent=lambda x, y: (x, y) in recent
    )
    assert not could_pair([ticket("a", 2.0), ticket("a", 2.0)], RULES, NOW)
    assert could_pair(
        [ticket("a", 2.0), ticket("b", 2.1), ticket("c", 2.2)],
        RULES,
        NOW,
        recent=lambda x, y: (x, y) in recent,
    )


def test_nothing_to_pair_alone() -> None:
    assert not could_pair([ticket("a", 2.0)], RULES, NOW)
    assert not could_pair([], RULES, NOW)
