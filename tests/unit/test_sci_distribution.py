"""The SCI distribution gauge (``lemma_sci_learners``): the ranges' edges, and a refresh over a real
(in-memory SQLite) store counting each learner in the range of the SCI the read API shows, as
Freshness decays and as new evidence comes, whatever it kept from the last refresh."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from services.sci.distribution import RANGES, SciDistribution, counts_by_range, sci_range
from services.sci.documents import current_score, visible
from services.sci.domain import UNCALIBRATED, Correction
from services.sci.projection import CALIBRATIONS, SCORES, SciProjection
from shared.catalog import get_catalog
from shared.events import new_event
from shared.events.envelope import CloudEvent
from shared.events.payloads import EvidenceRecorded, SessionAbandoned, SkillClaimed
from shared.projection import fold_events
from shared.projection.fold import Doc, DocRef
from shared.store.base import Change
from shared.store.sqlite import SqliteStore

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
SKILLS = [s.id for s in get_catalog().skills]
ML, OTHER = SKILLS[0], SKILLS[1]
RUBRIC = {s.id: sorted(s.rubric_ids) for s in get_catalog().skills}


@pytest.mark.parametrize(
    ("sci", "expected"),
    [
        (0.0, "0-10"),
        (9.99, "0-10"),
        (10.0, "10-20"),
        (55.5, "50-60"),
        (89.99, "80-90"),
        (90.0, "90-100"),
        (99.99, "90-100"),
        (100.0, "90-100"),
    ],
)
def test_each_sci_falls_in_one_range_and_100_in_the_last(sci: float, expected: str) -> None:
    assert sci_range(sci) == expected


def test_the_ranges_are_the_ten_tenths_of_the_scale() -> None:
    assert RANGES == (
        "0-10",
        "10-20",
        "20-30",
        "30-40",
        "40-50",
        "50-60",
        "60-70",
        "70-80",
        "80-90",
        "90-100",
    )


def test_counts_hold_every_range_of_every_skill_zeros_included() -> None:
    counts = counts_by_range({"a": [5.0, 7.5, 100.0], "b": []})
    assert len(counts) == 20 and sum(counts.values()) == 3
    assert counts[("a", "0-10")] == 2 and counts[("a", "90-100")] == 1 and counts[("b", "50-60")] == 0


def ev(payload: EvidenceRecorded | SkillClaimed | SessionAbandoned, at: datetime) -> CloudEvent:
    return new_event(payload, source="test", time=at)


def population(seed: int, learners: int = 60) -> list[CloudEvent]:
    """Learners rated in two skills over 90 days, one claim without evidence, one no-show alone."""
    rng = random.Random(seed)
    events: list[CloudEvent] = []
    for n in range(learners):
        skill = ML if n % 3 else OTHER
        strength = rng.randint(1, 5)
        for k in range(rng.randint(1, 12)):
            at = T0 + timedelta(days=rng.uniform(0, 90))
            scores = {d: min(5, max(1, strength + rng.choice((-1, 0, 0, 1)))) for d in RUBRIC[skill]}
            payload = EvidenceRecorded(
                evidence_id=f"e-{n}-{k}",
                learner_id=f"l{n}",
                skill=skill,
                specialty=None,
                session_id=f"s-{n}-{k}",
                rater_id=f"r{rng.randint(0, 15)}",
                scores=scores,
                format="build",
                occurred_at=at,
            )
            events.append(ev(payload, at))
    events.append(ev(SkillClaimed(learner_id="claims-only", skill=ML, self_level="beginner"), T0))
    return sorted(events, key=lambda e: e.time)


async def stored(docs: dict[DocRef, Doc]) -> SqliteStore:
    store = SqliteStore(":memory:")
    await store.write([Change(c, k, d) for (c, k), d in docs.items()])
    return store


def expected(docs: dict[DocRef, Doc], at: datetime) -> Counter[tuple[str, str]]:
    """What the read API shows, counted: each visible score's SCI at ``at``, in its range."""
    return Counter(
        (doc["skill"], sci_range(current_score(doc, UNCALIBRATED, at).sci))
        for (collection, _), doc in docs.items()
        if collection == SCORES and visible(doc)
    )


def nonzero(counts: dict[tuple[str, str], int]) -> Counter[tuple[str, str]]:
    return Counter({k: v for k, v in counts.items() if v})


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_refresh_counts_each_learner_in_the_range_the_api_shows(seed: int) -> None:
    docs, _ = fold_events(SciProjection(SKILLS), population(seed))
    store = await stored(docs)
    now = T0 + timedelta(days=100)
    gauge = SciDistribution(store, SKILLS, service="sci-test", clock=lambda: now)
    counts = await gauge.refresh()
    assert nonzero(counts) == expected(docs, now)
    assert sum(counts.values()) == 61  # every learner once, the claim included
    assert len(counts) == len(SKILLS) * 10  # every skill's every range, zeros included
    sample = REGISTRY.get_sample_value(
        "lemma_sci_learners", {"service": "sci-test", "skill": ML, "range": "0-10"}
    )
    assert sample == counts[(ML, "0-10")] >= 1  # the claim without evidence scores 0


async def test_a_later_refresh_follows_freshness_and_new_evidence() -> None:
    events = population(7)
    docs, _ = fold_events(SciProjection(SKILLS), events)
    store = await stored(docs)
    clock = [T0 + timedelta(days=91)]
    gauge = SciDistribution(store, SKILLS, clock=lambda: clock[0])
    first = await gauge.refresh()
    assert nonzero(first) == expected(docs, clock[0])

    assert gauge.read == 61
    clock[0] = T0 + timedelta(days=400)  # Freshness has all but gone: scores fall
    decayed = await gauge.refresh()
    assert nonzero(decayed) == expected(docs, clock[0]) and decayed != first
    assert gauge.read == 0  # nothing changed in the store: nothing read again

    # one learner is rated again, well: only that document changed
    more = [
        ev(
            EvidenceRecorded(
                evidence_id=f"late-{k}",
                learner_id="l1",
                skill=ML,
                session_id=f"late-{k}",
                rater_id=f"r{20 + k}",
                scores=dict.fromkeys(RUBRIC[ML], 5),
                occurred_at=clock[0],
            ),
            clock[0],
        )
        for k in range(8)
    ]
    docs, _ = fold_events(SciProjection(SKILLS), more, docs)
    await store.write([Change(c, k, d) for (c, k), d in docs.items() if k.startswith("l1/")])
    moved = await gauge.refresh()
    assert nonzero(moved) == expected(docs, clock[0]) and moved != decayed
    assert gauge.read == 1


async def test_a_new_calibration_rescores_its_skill() -> None:
    docs, _ = fold_events(SciProjection(SKILLS), population(11))
    store = await stored(docs)
    now = T0 + timedelta(days=91)
    gauge = SciDistribution(store, SKILLS, clock=lambda: now)
    await gauge.refresh()
    # every rater of the skill found 1.5 points lenient: the skill's scores fall under it
    lenient = Correction(bias={f"r{n}": 1.5 for n in range(16)}, ratings=500, version="v", digest="d")
    await store.write([Change(CALIBRATIONS, ML, lenient.to_doc())])
    after = await gauge.refresh()
    in_skill = sum(1 for (c, k), d in docs.items() if c == SCORES and d["skill"] == ML and visible(d))
    assert gauge.read == in_skill  # that skill's scores only
    shown = Counter(
        (
            doc["skill"],
            sci_range(current_score(doc, lenient if doc["skill"] == ML else UNCALIBRATED, now).sci),
        )
        for (collection, _), doc in docs.items()
        if collection == SCORES and visible(doc)
    )
    assert nonzero(after) == shown != expected(docs, now)
