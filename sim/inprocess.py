"""In-process mode: a population's events folded straight through the sci domain code (fast, for evaluation).

Each rating becomes the EvidenceRecorded the evidence service would publish (every session here
is confirmed by both participants), each no-show the NoShowUpheld the sessions service logs once
the absent learner has let the claim's window pass uncontested; the sci rules then score every
learner from their items.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.sci import domain
from shared.events.payloads import EvidenceRecorded, NoShowUpheld
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


def no_show_events(population: Population) -> list[NoShowUpheld]:
    return [
        NoShowUpheld(
            session_id=s.session_id, no_show=s.no_show, claimed_by=_partner(s.participants, s.no_show)
        )
        for s in population.sessions
        if s.no_show is not None
    ]


def _partner(pair: tuple[str, str], learner: str) -> str:
    return pair[1] if pair[0] == learner else pair[0]


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
    for upheld in no_show_events(population):
        no_shows[upheld.no_show].append(upheld.session_id)
    return Folded(items=items, no_shows=no_shows, as_of=population.end)


def stats(folded: Folded, correction: domain.Correction = domain.UNCALIBRATED) -> dict[str, domain.Stats]:
    """Each learner's score inputs, with ``correction`` as the rater calibration (and its prior)."""
    return {
        learner_id: domain.summarize(
            domain.facts_of(items, folded.no_shows[learner_id]), correction, learner_id
        )
        for learner_id, items in folded.items.items()
    }


def scores(folded: Folded, correction: domain.Correction = domain.UNCALIBRATED) -> dict[str, domain.Score]:
    """Each learner's SCI, parts and tier at the end of the simulated period."""
    return {i: domain.score_from_stats(s, folded.as_of) for i, s in stats(folded, correction).items()}
