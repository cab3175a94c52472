"""How a rebuild splits its log among processes (``shared.rebuild_workers.plan``)."""

from __future__ import annotations

from aiokafka import TopicPartition

from services.evidence.projection import EvidenceProjection
from services.sci.projection import SciProjection
from shared.catalog import get_catalog
from shared.rebuild_workers import plan
from shared.settings import Settings

SETTINGS = Settings(kafka_prefix="t.", rebuild_workers=0)
SCI = SciProjection(s.id for s in get_catalog().skills)
THREE = [0, 1, 2]


def names(shares: list[list[TopicPartition]]) -> list[list[str]]:
    return [sorted(f"{tp.topic.split('.')[2]}[{tp.partition}]" for tp in share) for share in shares]


def test_evidence_folds_each_sessions_partition_in_a_process_of_its_own() -> None:
    phases = plan(EvidenceProjection(get_catalog()), {"t.lemma.sessions.v1": THREE}, SETTINGS, parallel=True)
    assert [names(p) for p in phases] == [[["sessions[0]"], ["sessions[1]"], ["sessions[2]"]]]


def test_sci_folds_learner_keyed_topics_apart_then_the_sessions_topic_in_one_process() -> None:
    topics = {"t.lemma.evidence.v1": THREE, "t.lemma.sessions.v1": THREE, "t.lemma.passport.v1": THREE}
    phases = plan(SCI, topics, SETTINGS, parallel=True)
    assert [names(p) for p in phases] == [
        [
            ["evidence[0]", "passport[0]"],
            ["evidence[1]", "passport[1]"],
            ["evidence[2]", "passport[2]"],
        ],
        [["sessions[0]", "sessions[1]", "sessions[2]"]],
    ]


def test_topics_keyed_alike_but_partitioned_differently_are_not_folded_apart() -> None:
    topics = {"t.lemma.evidence.v1": [0, 1, 2, 3], "t.lemma.sessions.v1": THREE, "t.lemma.passport.v1": THREE}
    phases = plan(SCI, topics, SETTINGS, parallel=True)
    assert [len(p) for p in phases] == [1, 1]  # one learner's records may sit on other numbers


def test_fewer_workers_share_the_partition_numbers_and_one_or_none_folds_in_one_pass() -> None:
    topics = {"t.lemma.evidence.v1": THREE, "t.lemma.sessions.v1": THREE, "t.lemma.passport.v1": THREE}
    two = plan(SCI, topics, Settings(kafka_prefix="t.", rebuild_workers=2), parallel=True)
    assert names(two[0]) == [
        ["evidence[0]", "evidence[2]", "passport[0]", "passport[2]"],
        ["evidence[1]", "passport[1]"],
    ]
    assert [
        len(p) for p in plan(SCI, topics, Settings(kafka_prefix="t.", rebuild_workers=1), parallel=True)
    ] == [1, 1]
    whole = plan(SCI, topics, SETTINGS, parallel=False)
    assert [len(p) for p in whole] == [1] and len(whole[0][0]) == 9
