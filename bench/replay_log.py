"""The event log ``bench.replay`` rebuilds from: a simulated population's life, as the services log it.

The population (``sim.population``: true skill, rater leniency and noise, no-show rates) has
its rounds spread over the catalog's skills as the HTTP simulator spreads them
(``sim.plan.build_plan``), so every skill gets sessions and, past 100 ratings, a calibration.
Each learner registers and claims their skills (``lemma.passport.v1``); each session is
scheduled, started, completed by one participant and confirmed by the other, with a rating each
way after, or abandoned because one learner did not show, a claim upheld once its window passed
uncontested (``lemma.sessions.v1``); each rating becomes the ``EvidenceRecorded`` the evidence
rules make of it (``lemma.evidence.v1``, with the id and causation the evidence service gives
it). ``legacy=True`` logs the sessions as the service did before confirmations: one
participant's completion, and a no-show claim that stood at once. The events are in time order
and cut at the number asked for; everything follows from the seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.evidence.domain import SessionFacts, evidence_from_rating
from shared.catalog import Catalog, get_catalog
from shared.events.envelope import CloudEvent, deterministic_id, encode, new_event
from shared.events.payloads import (
    LearnerRegistered,
    NoShowUpheld,
    Payload,
    RatingSubmitted,
    SessionAbandoned,
    SessionCompleted,
    SessionConfirmed,
    SessionScheduled,
    SessionStarted,
    SkillClaimed,
)
from sim.plan import _scores, build_plan
from sim.population import START, Population, Settings, simulate

#: Log events per learner with 16 sessions each: registration, claims, ~8 per session (~7 legacy).
EVENTS_PER_LEARNER = 66
LEGACY_EVENTS_PER_LEARNER = 58
SESSIONS_PER_LEARNER = 16
#: How long a partner may dispute, or an accused contest, in the logged sessions (the default).
WINDOW = timedelta(hours=48)


@dataclass(frozen=True)
class LogRecord:
    """One record as it sits on its topic (partitioned by key)."""

    topic: str
    key: bytes
    value: bytes


def population_for(events: int, seed: int, *, legacy: bool = False) -> Population:
    """A population big enough to log ``events`` events."""
    per_learner = LEGACY_EVENTS_PER_LEARNER if legacy else EVENTS_PER_LEARNER
    learners = max(40, math.ceil(events / per_learner * 1.05))
    return simulate(Settings(learners=learners, sessions_per_learner=SESSIONS_PER_LEARNER), seed)


def log_events(
    events: int, seed: int, catalog: Catalog | None = None, *, legacy: bool = False
) -> list[CloudEvent]:
    """``events`` events of the population drawn from ``seed``, in time order (``legacy``: the
    sessions as logged before confirmations)."""
    catalog = catalog or get_catalog()
    population = population_for(events, seed, legacy=legacy)
    plan = build_plan(population, run_id=f"r{seed}", catalog=catalog)
    timed: list[tuple[datetime, int, Payload, str]] = []  # (time, order, payload, source)

    def at(moment: datetime, payload: Payload, source: str) -> None:
        timed.append((moment, len(timed), payload, source))

    for n, learner in enumerate(plan.learners):
        joined = START - timedelta(days=1) + timedelta(seconds=n)
        at(joined, LearnerRegistered(learner_id=learner.learner_id, handle=learner.handle), "passport")
        for claimed, level in learner.claims.items():
            claim = SkillClaimed.model_validate(
                {"learner_id": learner.learner_id, "skill": claimed, "self_level": level}
            )
            at(joined, claim, "passport")
    drawn = {s.session_id: s for s in population.sessions}
    ratings = {(r.session_id, r.rater_id): r for r in population.ratings}
    for planned in plan.sessions:
        session = drawn[planned.key]
        catalog_skill = catalog.get(planned.skill)
        assert catalog_skill is not None
        sid = f"{planned.key}-{planned.skill}"
        first, second = planned.first, planned.second
        t = session.occurred_at
        at(
            t,
            SessionScheduled(
                session_id=sid,
                match_id=f"m-{sid}",
                skill=planned.skill,
                specialty=planned.specialty,
                format=planned.format,
                participants=(first, second),
            ),
            "sessions",
        )
        if session.no_show is not None:
            absent = first if plan.sim_ids[first] == session.no_show else second
            present = second if absent == first else first
            left_at = t + timedelta(minutes=15)
            contest_by = None if legacy else left_at + WINDOW
            abandoned = SessionAbandoned(
                session_id=sid,
                abandoned_by=present,
                reason="partner-absent",
                no_show=absent,
                contest_by=contest_by,
            )
            at(left_at, abandoned, "sessions")
            if contest_by is not None:  # the absent learner does not contest: the sweep upholds it
                at(contest_by, NoShowUpheld(session_id=sid, no_show=absent, claimed_by=present), "sessions")
            continue
        at(t, SessionStarted(session_id=sid, started_by=first), "sessions")
        done = t + timedelta(minutes=45)
        confirm_by = None if legacy else done + WINDOW
        at(
            done,
            SessionCompleted(session_id=sid, completed_by=second, duration_s=2700, confirm_by=confirm_by),
            "sessions",
        )
        if not legacy:  # the partner confirms at once, as a client does: the ratings count as they come
            at(done + timedelta(seconds=20), SessionConfirmed(session_id=sid, confirmed_by=first), "sessions")
        for k, (rater, ratee) in enumerate(((first, second), (second, first))):
            drawn_rating = ratings[(planned.key, plan.sim_ids[rater])]
            rating = RatingSubmitted(
                rating_id=f"{sid}-{rater}",
                session_id=sid,
                rater_id=rater,
                ratee_id=ratee,
                skill=planned.skill,
                specialty=planned.specialty,
                scores=_scores(catalog_skill, drawn_rating.scores),
            )
            at(t + timedelta(minutes=50 + k), rating, "sessions")
    timed.sort(key=lambda x: (x[0], x[1]))
    out: list[CloudEvent] = []
    sessions: dict[str, SessionFacts] = {}
    for moment, order, payload, source in timed:
        if len(out) >= events:
            break
        event = new_event(
            payload, source=source, time=moment, id=deterministic_id("bench-log", str(seed), str(order))
        )
        out.append(event)
        if isinstance(payload, SessionScheduled):
            sessions[payload.session_id] = SessionFacts(
                payload.skill, payload.specialty, payload.format, payload.participants, "completed"
            )
        elif isinstance(payload, RatingSubmitted) and len(out) < events:
            evidence = evidence_from_rating(sessions[payload.session_id], payload, moment, catalog)
            out.append(
                new_event(
                    evidence,
                    source="evidence",
                    time=moment,
                    id=deterministic_id("evidence", event.id, "0"),
                    cause=event,
                )
            )
    return out


def log_records(events: list[CloudEvent], prefix: str = "") -> Iterator[LogRecord]:
    """Each event as the record its service's outbox relay would produce."""
    for event in events:
        yield LogRecord(prefix + event.topic, event.key.encode(), encode(event))
