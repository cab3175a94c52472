"""Reading one's own writes across services, through the gateway, with consistency tokens.

A client completes a session and rates its partner, then at once asks matching for the next
partner and reads the partner's passport, each time passing back the token its write got: no
sleep, no retry. Matching answers as if it had folded the end of the session (202, not 409) and
the passport shows the rating (through evidence and sci). A token from nowhere, or malformed,
gets a stale mark or a 422.
"""

from __future__ import annotations

import base64
import json
import uuid

import httpx

from deploy.local.stack import StackConfig
from shared.consistency import AFTER_HEADER, STALE_HEADER, TOKEN_HEADER
from tests.e2e.test_learner_journey import SKILL, headers
from tests.support.lemma_api import SCORES, poll


async def test_complete_then_ask_for_a_partner_and_read_the_passport_with_no_sleep(
    stack: StackConfig,
) -> None:
    run = uuid.uuid4().hex[:8]
    ann, bob = f"ann-{run}", f"bob-{run}"
    async with httpx.AsyncClient(base_url=stack.gateway_url, timeout=30) as http:
        claimed: dict[str, str] = {}
        for learner in (ann, bob):
            r = await http.post(
                "/v1/learners",
                json={"handle": learner, "display_name": learner},
                headers=headers(stack, learner),
            )
            assert r.status_code == 201 and r.headers.get(TOKEN_HEADER), (r.status_code, dict(r.headers))
            r = await http.put(
                f"/v1/learners/{learner}/skills/{SKILL}",
                json={"self_level": "advanced"},
                headers={**headers(stack, learner), AFTER_HEADER: r.headers[TOKEN_HEADER]},
            )
            assert r.status_code == 200
            claimed[learner] = r.headers[TOKEN_HEADER]
        # matching reads each level from the claim it was told of
        tickets = []
        for learner in (ann, bob):
            r = await http.post(
                "/v1/match-requests",
                json={"skill": SKILL},
                headers={**headers(stack, learner), AFTER_HEADER: claimed[learner]},
            )
            assert r.status_code == 202 and STALE_HEADER not in r.headers, r.text
            assert r.json()["level"] >= 2.0, r.json()  # advanced, not the default
            tickets.append(r.json()["ticket_id"])
        matched = await http.get(
            f"/v1/match-requests/{tickets[0]}", params={"wait": 15}, headers=headers(stack, ann)
        )
        assert matched.json()["status"] == "matched", matched.text
        session = f"/v1/sessions/{matched.json()['session_id']}"
        await poll(
            lambda: http.get(session, headers=headers(stack, ann)),
            lambda r: r.status_code == 200,
            what="the session",
        )

        assert (await http.post(f"{session}/start", headers=headers(stack, ann))).status_code == 200
        completed = await http.post(f"{session}/complete", headers=headers(stack, bob))
        assert completed.status_code == 200
        confirmed = await http.post(f"{session}/confirm", headers=headers(stack, ann))  # so it counts
        assert confirmed.status_code == 200 and confirmed.json()["confirmation"]["state"] == "confirmed"
        rated = await http.post(
            f"{session}/ratings", json={"ratee_id": bob, "scores": SCORES}, headers=headers(stack, ann)
        )
        assert rated.status_code == 201
        done, rating = completed.headers[TOKEN_HEADER], rated.headers[TOKEN_HEADER]

        # at once, no sleep, no retry: the next partner...
        again = await http.post(
            "/v1/match-requests", json={"skill": SKILL}, headers={**headers(stack, ann), AFTER_HEADER: done}
        )
        assert again.status_code == 202, again.text  # not 409 "in a session which has not ended"
        assert STALE_HEADER not in again.headers
        # ...and the partner's passport with the rating in it
        passport = await http.get(f"/v1/passports/{bob}", headers={AFTER_HEADER: f"{done}, {rating}"})
        assert passport.status_code == 200 and STALE_HEADER not in passport.headers
        entry = next(s for s in passport.json()["skills"] if s["skill"] == SKILL)
        assert entry["sessions"] == 1 and entry["sci"] > 0 and entry["tier"] >= 2, entry
        await http.delete(f"/v1/match-requests/{again.json()['ticket_id']}", headers=headers(stack, ann))

        # a position no service will reach in time: answered anyway, marked possibly stale
        ahead = {f"lemma.sci.v1/{p}": 10**12 for p in range(3)}
        token = base64.urlsafe_b64encode(json.dumps(ahead).encode()).decode().rstrip("=")
        stale = await http.get(f"/v1/skills/{SKILL}", headers={AFTER_HEADER: token}, timeout=30)
        assert stale.status_code == 200 and stale.headers.get(STALE_HEADER) == "true"
        bad = await http.get(f"/v1/skills/{SKILL}", headers={AFTER_HEADER: "not a token!"})
        assert bad.status_code == 422 and bad.headers["content-type"].startswith("application/problem+json")
