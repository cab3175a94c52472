"""How a rebuild splits its log among processes (``shared.rebuild_workers.plan``)."""

from __future__ import annotations

import os

from aiokafka import TopicPartition

from services.evidence.projection import EvidenceProjection
from services.sci.projection import RECEIVED, SCORES, SciProjection
from shared.catalog import get_catalog
from shared.rebuild_workers import Phase, plan
from shared.settings import Settings

SETTINGS = Settings(kafka_prefix="t.", rebuild_workers=3)
SCI = SciProjection(s.id for s in get_catalog().skills)
THREE = [0, 1, 2]
SCI_TOPICS = {"t.lemma.evidence.v1": THREE, "t.lemma.sessions.v1": THREE, "t.lemma.passport.v1": THREE}


def names(phase: Phase) -> list[list[str]]:
    return [sorted(f"{tp.topic.split('.')[2]}[{tp.partition}]" for tp in share) for share in phase.shares]


def test_evidence_folds_each_sessions_partition_in_a_process_of_its_own() -> None:
    phases = plan(EvidenceProjection(get_catalog()), {"t.lemma.sessions.v1": THREE}, SETTINGS, parallel=True)
    assert [names(p) for p in phases] == [[["sessions[0]"], ["sessions[1]"], ["sessions[2]"]]]
    assert phases[0].defer == {}


def test_sci_folds_each_partition_number_apart_and_sets_no_shows_aside() -> None:
    (phase,) = plan(SCI, SCI_TOPICS, SETTINGS, parallel=True)
    assert names(phase) == [
        [f"{topic}[{n}]" for topic in ("evidence", "passport", "sessions")] for n in THREE
    ]
    assert phase.defer == {"t.lemma.sessions.v1": frozenset({SCORES, RECEIVED})}


def test_topics_partitioned_differently_are_folded_in_one_process_and_nothing_is_set_aside() -> None:
    topics = {**SCI_TOPICS, "t.lemma.evidence.v1": [0, 1, 2, 3]}
    (phase,) = plan(SCI, topics, SETTINGS, parallel=True)
    assert len(phase.shares) == 1 and len(phase.shares[0]) == 10 and phase.defer == {}


def test_fewer_workers_share_the_partition_numbers_and_one_folds_in_one_pass() -> None:
    (two,) = plan(SCI, SCI_TOPICS, Settings(kafka_prefix="t.", rebuild_workers=2), parallel=True)
    assert [len(share) for share in two.shares] == [6, 3]
    assert {tp.partition for tp in two.shares[0]} == {0, 2}
    (one,) = plan(SCI, SCI_TOPICS, Settings(kafka_prefix="t.", rebuild_workers=1), parallel=True)
    assert len(one.shares) == 1 and one.defer == {}
    (auto,) = plan(SCI, SCI_TOPICS, Settings(kafka_prefix="t.", rebuild_workers=0), parallel=True)
    assert len(auto.shares) == min(3, 2 * (os.cpu_count() or 1))  # up to two processes a core
    (whole,) = plan(SCI, SCI_TOPICS, SETTINGS, parallel=False)
    assert len(whole.shares) == 1 and len(whole.shares[0]) == 9


def test_topics_no_phase_names_come_last_in_one_process() -> None:
    topics = {"t.lemma.sessions.v1": THREE, "t.lemma.ops.v1": [0]}
    phases = plan(EvidenceProjection(get_catalog()), topics, SETTINGS, parallel=True)
    assert [len(p.shares) for p in phases] == [3, 1]
    assert phases[1].shares == [[TopicPartition("t.lemma.ops.v1", 0)]]
