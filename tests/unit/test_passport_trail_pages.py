"""``evidence_trail`` against a real (in-memory SQLite) store: newest first, pages that neither
skip nor repeat an item, calibrated ratings from the rater biases, and only the learner's items."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from services.passport.projection import PassportProjection
from services.passport.trail import BadCursor, TrailItem, TrailPage, evidence_trail
from shared.events.envelope import new_event
from shared.events.payloads import EvidenceRecorded, Payload, RatersCalibrated
from shared.projection.fold import fold_events
from shared.store import Change
from shared.store.sqlite import SqliteStore

ML = "machine-learning"
DE = "data-engineering"
T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def item(n: int, learner: str = "ann", *, rater: str = "lenient", skill: str = ML) -> EvidenceRecorded:
    return EvidenceRecorded(
        evidence_id=f"ev-{learner}-{n:02d}",
        learner_id=learner,
        skill=skill,
        specialty="nlp" if n % 2 else None,
        session_id=f"s{n}",
        rater_id=rater,
        scores={"model-selection": 5, "deployment": 4},  # mean 4.5
        format="build" if n % 2 else None,
        occurred_at=T0 + timedelta(hours=n),
    )


async def store_of(payloads: Sequence[Payload]) -> SqliteStore:
    docs, _ = fold_events(PassportProjection(), [new_event(p, source="test", time=T0) for p in payloads])
    store = SqliteStore(":memory:")
    await store.write([Change(collection, key, doc) for (collection, key), doc in docs.items()])
    return store


async def all_pages(store: SqliteStore, learner: str, limit: int) -> list[TrailPage]:
    pages = [await evidence_trail(store, learner, limit=limit)]
    while pages[-1].next_before is not None:
        pages.append(await evidence_trail(store, learner, before=pages[-1].next_before, limit=limit))
    return pages


async def test_pages_run_newest_first_without_gaps_or_repeats() -> None:
    # ann's items arrive out of time order; bob ("ann-b" shares ann's first letters) must not leak in
    store = await store_of([item(n) for n in (3, 0, 6, 1, 5, 2, 4)] + [item(9, "ann-b"), item(7, "bob")])
    for limit in (1, 2, 3, 7, 50):
        pages = await all_pages(store, "ann", limit)
        ids = [i.evidence_id for p in pages for i in p.items]
        assert ids == [f"ev-ann-{n:02d}" for n in range(6, -1, -1)], limit
        assert all(len(p.items) == limit for p in pages[:-1]) and 1 <= len(pages[-1].items) <= limit
        assert pages[-1].next_before is None
    first = await evidence_trail(store, "ann", limit=3)
    assert first.next_before == "ann/2026-11-01T14:00:00.000000Z/ev-ann-04"  # the last key returned
    assert (await evidence_trail(store, "ann", limit=7)).next_before is None  # exactly full: no more
    await store.close()


async def test_items_carry_the_rating_and_its_calibrated_value() -> None:
    calibration = RatersCalibrated(
        skill=ML, version="v", digest="d", ratings=40, part=0, parts=1, bias={"lenient": 0.75}
    )
    store = await store_of([item(0), item(1, rater="unknown"), item(2, skill=DE), calibration])
    page = await evidence_trail(store, "ann")
    assert page.next_before is None
    assert page.items == [
        TrailItem("ev-ann-02", DE, None, None, T0 + timedelta(hours=2), 4.5, 4.5, False),  # other skill
        TrailItem("ev-ann-01", ML, "nlp", "build", T0 + timedelta(hours=1), 4.5, 4.5, False),
        TrailItem("ev-ann-00", ML, None, None, T0, 4.5, 3.75, True),
    ]
    assert page.items[0].occurred_at.tzinfo is not None
    await store.close()


async def test_an_unknown_learner_has_an_empty_trail_and_a_foreign_before_is_refused() -> None:
    store = await store_of([item(0), item(1, "bob")])
    assert await evidence_trail(store, "nobody") == TrailPage(items=[], next_before=None)
    bob_key = "bob/2026-11-01T11:00:00.000000Z/ev-bob-01"
    assert [i.evidence_id for i in (await evidence_trail(store, "bob")).items] == ["ev-bob-01"]
    with pytest.raises(BadCursor):
        await evidence_trail(store, "ann", before=bob_key)
    # a position past every item (a key of the learner's prefix) is just an empty page
    assert (await evidence_trail(store, "ann", before="ann/")).items == []
    await store.close()
