"""Deterministic bursts of realistic session events for tests and benchmarks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from shared.catalog import get_catalog
from shared.events import CloudEvent, new_event
from shared.events.payloads import (
    RatingSubmitted,
    SessionCompleted,
    SessionConfirmed,
    SessionScheduled,
    SessionStarted,
)

START = datetime(2026, 9, 1, tzinfo=UTC)


def session_burst(sessions: int, learners: int = 100, seed: int = 7) -> list[CloudEvent]:
    """Each session: scheduled, started, completed by one participant, confirmed by the other
    (so it counts at once), and one rating each way (6 events)."""
    rng = random.Random(seed)
    skill = get_catalog().get("machine-learning")
    assert skill is not None
    people = [f"learner-{i:04d}" for i in range(learners)]
    events: list[CloudEvent] = []
    for n in range(sessions):
        a, b = rng.sample(people, 2)
        sid = f"session-{seed}-{n:06d}"
        specialty = rng.choice(sorted(skill.specialty_ids))
        fmt = rng.choice(sorted(skill.format_ids))
        t = START + timedelta(minutes=17 * n)
        events.append(
            new_event(
                SessionScheduled(
                    session_id=sid,
                    match_id=sid,
                    skill=skill.id,
                    specialty=specialty,
                    format=fmt,
                    participants=(a, b),
                ),
                source="test",
                time=t,
            )
        )
        events.append(new_event(SessionStarted(session_id=sid, started_by=a), source="test", time=t))
        done = t + timedelta(minutes=30)
        events.append(
            new_event(
                SessionCompleted(
                    session_id=sid, completed_by=b, duration_s=1800, confirm_by=done + timedelta(hours=48)
                ),
                source="test",
                time=done,
            )
        )
        events.append(new_event(SessionConfirmed(session_id=sid, confirmed_by=a), source="test", time=done))
        for rater, ratee in ((a, b), (b, a)):
            scores = {d: rng.randint(1, 5) for d in sorted(skill.rubric_ids)}
            events.append(
                new_event(
                    RatingSubmitted(
                        rating_id=f"{sid}-{rater}",
                        session_id=sid,
                        rater_id=rater,
                        ratee_id=ratee,
                        skill=skill.id,
                        specialty=specialty,
                        scores=scores,
                    ),
                    source="test",
                    time=t + timedelta(minutes=31),
                )
            )
    return events
