"""The flow of the system (DESIGN, section 2): which topics each service folds, the one domain
topic it writes, and the consumer groups it reads them in.

Pure data: consistency tokens follow it (``shared.consistency``) and the Kafka ACLs of each
service are derived from it (``deploy.kafka_acls``). ``tests/unit/test_consistency.py`` and
``tests/unit/test_kafka_acls.py`` check it against the services' own consumers and events.
"""

from __future__ import annotations

from shared.events.registry import Topic

#: What each service folds, and the topic it writes.
FOLDS: dict[str, tuple[Topic, ...]] = {
    "passport": (Topic.PASSPORT, Topic.EVIDENCE, Topic.SCI),
    "matching": (Topic.MATCHING, Topic.PASSPORT, Topic.SCI, Topic.SESSIONS),
    "sessions": (Topic.MATCHING, Topic.SESSIONS, Topic.PASSPORT),
    "evidence": (Topic.SESSIONS,),
    "sci": (Topic.EVIDENCE, Topic.SESSIONS, Topic.PASSPORT),
}
PRODUCES: dict[str, Topic] = {
    "passport": Topic.PASSPORT,
    "matching": Topic.MATCHING,
    "sessions": Topic.SESSIONS,
    "evidence": Topic.EVIDENCE,
    "sci": Topic.SCI,
}
#: The topics every service writes besides its own: dead letters of its projection
#: (``lemma.dlq.v1``) and its operators' actions (``lemma.ops.v1``), both through its outbox.
SHARED_WRITES: tuple[Topic, ...] = (Topic.DLQ, Topic.OPS)
#: The consumer groups each service's consumers join (before the settings' prefix): its
#: projection's, named after the service, and matching's engine (``services.matching.matcher``).
GROUPS: dict[str, tuple[str, ...]] = {
    "passport": ("passport",),
    "matching": ("matching", "matching-engine"),
    "sessions": ("sessions",),
    "evidence": ("evidence",),
    "sci": ("sci",),
}
#: How far from the reader a chain of causes is followed (hops through other services).
MAX_HOPS = 3


def distances(service: str) -> dict[Topic, int]:
    """How many services away each topic's events are from ``service``'s folds (0: it folds it)."""
    far = {topic: 0 for topic in FOLDS[service]}
    changed = True
    while changed:
        changed = False
        for other, folded in FOLDS.items():
            out = PRODUCES[other]
            if other == service or out not in far:
                continue
            for topic in folded:
                if topic != out and far.get(topic, MAX_HOPS + 1) > far[out] + 1:
                    far[topic] = far[out] + 1
                    changed = True
    return far
