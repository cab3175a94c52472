"""In-process mode: a population's events folded straight through the sci domain code (fast, for evaluation).

Each rating becomes the EvidenceRecorded the evidence service would publish, each no-show a
SessionAbandoned naming the learner; the sci rules then score every learner from their items.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.sci import domain
from shared.events.payloads import EvidenceRecorded, SessionAbandoned
from sim.population import SKILL, Population


def evidence_events(population: Population) -> list[EvidenceRecorded]:
    return [
        EvidenceRecorded(
            evidence_id=r.rating_id,
            learner_id=r.ratee_id,
            skill=SKILL,
            specialty=r.specialty,
            session_id=r.session_id,
            rater_id=r.rater_id,
            scores=r.scores,
            occurred_at=r.occurred_at,
        )
        for r in population.ratings
    ]


def no_show_events(population: Population) -> list[SessionAbandoned]:
    return [
        SessionAbandoned(session_id=s.session_id, abandoned_by=s.no_show, reason="no-show", no_show=s.no_show)
        for s in population.sessions
        if s.no_show is not None
    ]


@dataclass(frozen=True)
class Folded:
    """Per learner: their evidence items (ratings received) and their no-show sessions."""

    items: dict[str, list[domain.EvidenceItem]]
    no_shows: dict[str, list[str]]
    as_of: datetime


def fold(population: Population) -> Folded:
    items: dict[str, list[domain.EvidenceItem]] = {i: [] for i in population.learners}
    for event in evidence_events(population):
        items[event.learner_id].append(domain.EvidenceItem.from_event(event))
    no_shows: dict[str, list[str]] = {i: [] for i in population.learners}
    for abandoned in no_show_events(population):
        assert abandoned.no_show is not None
        no_shows[abandoned.no_show].append(abandoned.session_id)
    return Folded(items=items, no_shows=no_shows, as_of=population.end)


def stats(folded: Folded, correction: domain.Correction = domain.UNCALIBRATED) -> dict[str, domain.Stats]:
    """Each learner's score inputs, with ``correction`` as the rater calibration (and its prior)."""
    return {
        learner_id: domain.summarize(domain.facts_of(items, folded.no_shows[learner_id]), correction)
        for learner_id, items in folded.items.items()
    }


def scores(folded: Folded, correction: domain.Correction = domain.UNCALIBRATED) -> dict[str, domain.Score]:
    """Each learner's SCI, parts and tier at the end of the simulated period."""
    return {i: domain.score_from_stats(s, folded.as_of) for i, s in stats(folded, correction).items()}
