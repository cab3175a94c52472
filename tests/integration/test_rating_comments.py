"""Rating comments on a real broker and store: the comment reaches the ratee (and operators),
never the log; when the ratee erases their data the comment is deleted from the store."""

from __future__ import annotations

import uuid
from pathlib import Path

from services.sessions.app import bootstrap
from shared.auth import mint_token
from shared.events import new_event
from shared.events.payloads import LearnerErased
from shared.events.registry import Topic
from tests.integration.test_sessions_service import SCORES, match
from tests.support.apps import ops_headers, serving
from tests.support.kafka import Namespace, eventually, everything_in
from tests.support.stored import stored_text


async def test_a_comment_is_for_the_ratee_never_in_the_log_and_gone_with_their_erasure(
    private_kafka: Namespace, tmp_path: Path
) -> None:
    ns = private_kafka
    cfg = ns.settings(state_dir=str(tmp_path))
    run = uuid.uuid4().hex[:8]
    sid, ann, bob = f"m-{run}", f"ann-{run}", f"bob-{run}"
    comment = f"Bob explained regularisation very clearly {run}"
    auth = {who: {"Authorization": f"Bearer {mint_token(cfg, who)}"} for who in (ann, bob)}
    await ns.publish(match(sid, ann, bob))
    async with serving(bootstrap(cfg)) as client:
        path = f"/v1/sessions/{sid}"

        async def scheduled() -> bool:
            return (await client.get(path, headers=auth[ann])).status_code == 200

        await eventually(scheduled, timeout=30)
        for step, who in (("start", ann), ("complete", ann), ("confirm", bob)):
            assert (await client.post(f"{path}/{step}", headers=auth[who])).status_code == 200, step
        rated = await client.post(
            f"{path}/ratings", json={"ratee_id": bob, "scores": SCORES, "comment": comment}, headers=auth[ann]
        )
        assert rated.status_code == 201 and rated.json()["comment"] == comment

        def comments(view: dict[str, object]) -> list[object]:
            return [r["comment"] for r in view["ratings"]]  # type: ignore[attr-defined]

        assert comments((await client.get(path, headers=auth[bob])).json()) == [comment]
        assert comments((await client.get(path, headers=ops_headers(cfg))).json()) == [comment]
        assert comments((await client.get(path, headers=auth[ann])).json()) == [
            None
        ]  # the rater's is for bob
        log = b"".join(await everything_in(ns.bootstrap, [ns.topic(t) for t in Topic]))
        assert sid.encode() in log and comment.encode() not in log

        db = tmp_path / "data" / "sessions.db"
        assert comment in stored_text(db)
        await ns.publish([new_event(LearnerErased(learner_id=bob), source="passport")])

        def purged() -> bool:
            return comment not in stored_text(db) and '"purged": true' in stored_text(db)

        await eventually(purged, timeout=30)
        assert comments((await client.get(path, headers=ops_headers(cfg))).json()) == [None]
        late = await client.post(
            f"{path}/ratings", json={"ratee_id": ann, "scores": SCORES}, headers=auth[bob]
        )
        assert late.status_code == 410  # an erased learner rates no more
