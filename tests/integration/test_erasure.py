"""Erasure on a real broker and store: after ``DELETE /v1/learners/{id}`` no document of the
passport's store, no record of any topic (dead letters included) and no rebuild of the
passport from the log holds the learner's handle or display name; the passport says they are a
deleted learner, and the handle is free again. Before it, the learner can export their data."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from services.passport.app import bootstrap as passport_app
from shared.events import new_event
from shared.events.payloads import LearnerRegistered
from shared.events.registry import Topic
from tests.integration.test_replay import cli_env
from tests.integration.test_replay_write_models import auth, replay
from tests.support.apps import ops_headers, serving
from tests.support.kafka import Namespace, eventually, everything_in, publish_raw
from tests.support.stored import stored_text


async def test_erased_personal_data_is_in_no_store_no_topic_and_no_rebuild(
    private_kafka: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ns = private_kafka
    settings = ns.settings(state_dir=str(tmp_path))
    db = tmp_path / "data" / "passport.db"
    run = uuid.uuid4().hex[:8]
    ann, eve = f"ann-{run}", f"eve-{run}"
    handle, name = f"ann-handle-{run}", f"Annabel Secretname {run}"
    cli_env(monkeypatch, ns, tmp_path)
    async with serving(passport_app(settings)) as client:
        body = {"handle": handle, "display_name": name}
        assert (await client.post("/v1/learners", json=body, headers=auth(settings, ann))).status_code == 201
        claim = f"/v1/learners/{ann}/skills/machine-learning"
        assert (
            await client.put(claim, json={"self_level": "advanced"}, headers=auth(settings, ann))
        ).status_code == 200
        # a record that cannot be folded, keyed by the learner, lands in the dead letters
        await publish_raw(ns.bootstrap, ns.topic(Topic.PASSPORT), ann.encode(), b'{"broken": true}')

        # the export: what the passport holds of them, to them and to operators only
        export = f"/v1/learners/{ann}/export"
        assert (await client.get(export, headers=auth(settings, eve))).status_code == 403
        mine = (await client.get(export, headers=auth(settings, ann))).json()
        assert mine["learner"]["handle"] == handle and mine["learner"]["display_name"] == name
        assert mine["learner"]["claims"] == {"machine-learning": "advanced"}
        assert (await client.get(export, headers=ops_headers(settings))).status_code == 200

        # a learner registered before handles left the log: their handle is in it, in clear
        old, old_handle = f"old-{run}", f"old-handle-{run}"
        await ns.publish([new_event(LearnerRegistered(learner_id=old, handle=old_handle), source="passport")])

        async def shown() -> bool:
            answers = [await client.get(f"/v1/passports/{h}") for h in (handle, old_handle)]
            return all(a.status_code == 200 for a in answers)

        await eventually(shown)
        assert name.encode() not in b"".join(await everything_in(ns.bootstrap, [ns.topic(t) for t in Topic]))

        assert (await client.delete(f"/v1/learners/{ann}", headers=auth(settings, eve))).status_code == 403
        erased = await client.delete(f"/v1/learners/{ann}", headers=auth(settings, ann))
        assert erased.status_code == 200 and erased.json()["erased"] is True
        assert (await client.delete(f"/v1/learners/{old}", headers=ops_headers(settings))).status_code == 200
        again = await client.delete(f"/v1/learners/{ann}", headers=auth(settings, ann))
        assert again.status_code == 200 and again.json()["erased_at"] == erased.json()["erased_at"]

        gone = await client.get(f"/v1/passports/{ann}")
        assert gone.status_code == 410 and "deleted learner" in gone.json()["detail"]
        assert (await client.get(f"/v1/passports/{handle}")).status_code == 404  # the handle leads nowhere
        page = await client.get(f"/passports/{ann}")
        assert page.status_code == 410 and "Deleted learner" in page.text and name not in page.text
        assert (await client.get(export, headers=auth(settings, ann))).status_code == 410
        back = await client.post("/v1/learners", json=body, headers=auth(settings, ann))
        assert back.status_code == 410  # the erased account cannot be used again

        def nothing_personal(text: str) -> bool:
            return handle not in text and name not in text and old_handle not in text

        async def folded_erasure() -> bool:
            return stored_text(db).count('"erased": true') >= 4  # both learners' two documents

        await eventually(folded_erasure)
        assert nothing_personal(stored_text(db))
        records = b"".join(await everything_in(ns.bootstrap, [ns.topic(t) for t in Topic]))
        assert handle.encode() not in records and name.encode() not in records
        assert ann.encode() in records  # the learner's records are there, their id is pseudonymous
        assert old_handle.encode() in records  # written before handles left the log: see docs/security.md

        rebuilt = await replay("passport")
        assert rebuilt.exit_code == 0 and "version 2 is live" in rebuilt.output, rebuilt.output
        assert nothing_personal(stored_text(db))
        assert (await client.get(f"/v1/passports/{ann}")).status_code == 410
        assert (await client.get(f"/v1/passports/{old}")).status_code == 410
        assert (await client.get(f"/v1/passports/{old_handle}")).status_code == 404

        # the handle is free for someone else
        taken = await client.post(
            "/v1/learners", json={"handle": handle, "display_name": "Eve"}, headers=auth(settings, eve)
        )
        assert taken.status_code == 201, taken.text
