"""Three replicas of evidence and three of sci on one store each and one consumer group, on the
real broker, folding a burst of sessions while one replica of each leaves half-way (a clean
stop: the group gives its partitions to the other two, whose claims fence it).

Afterwards evidence's documents are exactly a clean fold of the burst, every rating was
recorded once on the evidence topic (one EvidenceRecorded per rating, no id twice), and sci
counts every rating once: each learner's score shows the sessions they were rated in.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from pathlib import Path

import httpx

from services.evidence.app import bootstrap as evidence_app
from services.evidence.projection import EvidenceProjection
from services.sci.app import bootstrap as sci_app
from shared.catalog import get_catalog
from shared.events import decode
from shared.events.payloads import RatingSubmitted
from shared.events.registry import Topic
from tests.integration.test_crash_safety import as_json_keys, clean_fold, docs, folded_records
from tests.support.apps import serving
from tests.support.kafka import Namespace, eventually
from tests.support.population import session_burst

SESSIONS = 240  # x5 events


async def test_three_replicas_each_fold_a_burst_once_while_one_leaves(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    ns = private_kafka
    # dynamic members: the one that stops leaves its group at once (a static one would be waited for)
    cfg = [
        ns.settings(state_dir=str(tmp_path), instance=str(n), consumer_static_membership=False)
        for n in (1, 2, 3)
    ]
    burst = session_burst(SESSIONS, learners=60, seed=31)
    ratings = [e.data for e in burst if isinstance(e.data, RatingSubmitted)]
    db = tmp_path / "data" / "evidence.db"
    async with contextlib.AsyncExitStack() as stack:
        clients: list[httpx.AsyncClient] = []
        leaving = contextlib.AsyncExitStack()
        for n, settings in enumerate(cfg):
            on = leaving if n == 2 else stack
            clients.append(await on.enter_async_context(serving(evidence_app(settings))))
            clients.append(await on.enter_async_context(serving(sci_app(settings))))
        half = len(burst) // 2
        await ns.publish(burst[:half])
        await eventually(lambda: folded_records(db, "evidence") >= half // 3, timeout=60)
        await leaving.aclose()  # the third replica of each stops mid-burst
        await ns.publish(burst[half:])
        await eventually(lambda: folded_records(db, "evidence") == len(burst), timeout=90)

        collections = {"sessions", "evidence", "evidence_by_skill", "evidence_ids"}
        assert as_json_keys(docs(db, collections)) == clean_fold(EvidenceProjection(get_catalog()), burst)

        recorded = await ns.read_until(Topic.EVIDENCE, lambda rs: len(rs) >= len(ratings), timeout=60)
        await asyncio.sleep(1.0)  # a second copy from another relay would be there by now
        recorded = await ns.read_until(Topic.EVIDENCE, lambda rs: len(rs) >= len(recorded), timeout=5)
        ids = Counter(decode(r.value).id for r in recorded)
        assert len(ids) == len(ratings) and set(ids.values()) == {1}, ids.most_common(3)

        expected = Counter((r.ratee_id, r.session_id) for r in ratings)
        per_learner = Counter(ratee for ratee, _ in expected)
        sci = clients[1]  # any live replica answers the same once it has folded as far

        async def all_counted() -> bool:
            for learner, sessions in per_learner.items():
                answer = await sci.get(f"/v1/scores/{learner}/machine-learning")
                if answer.status_code != 200 or answer.json()["sessions"] != sessions:
                    return False
            return True

        await eventually(all_counted, timeout=60, interval=1.0)
        for learner in list(per_learner)[:5]:  # both live replicas answer the same (as_of: the read's time)
            views = [
                (await c.get(f"/v1/scores/{learner}/machine-learning")).json()
                for c in (clients[1], clients[3])
            ]
            assert [{k: v for k, v in view.items() if k != "as_of"} for view in views] == [
                {k: v for k, v in views[0].items() if k != "as_of"}
            ] * 2
