"""The fuzz bench's pure parts: whose token a request carries, the long poll held short, the
consistency tokens merged, and when a run meets its targets."""

from __future__ import annotations

from bench.fuzz_auth import OPS_SUBJECT, credentials
from bench.fuzz_report import Finding, FuzzTally
from bench.fuzz_run import MAX_WAIT_S, short_wait
from bench.fuzz_scene import Scene, merged_token
from shared.consistency import decode_tokens, encode_token

SCENE = Scene(
    secret="s",
    learners=["ann", "bob", "cat"],
    handles=["ann", "bob", "cat"],
    skills=["machine-learning"],
    sessions={"s-1": ("ann", "bob")},
    tickets={"t-1": "cat"},
)


def test_operators_routes_get_an_operators_token_spread_over_a_few_operators() -> None:
    tokens = {
        credentials(SCENE, "POST", "/ops/projections/{name}/resume", {"name": n}, None) for n in "abcdefgh"
    }
    assert {role for _, role in tokens} == {"ops"} and len(tokens) > 1
    assert all(subject.startswith(OPS_SUBJECT) for subject, _ in tokens)
    assert credentials(SCENE, "GET", "/v1/matching/ownership", {}, None, {}, ["ops"])[1] == "ops"


def test_a_request_naming_a_learner_carries_that_learners_token() -> None:
    path = "/v1/learners/{learner_id}/skills/{skill}"
    assert credentials(SCENE, "PUT", path, {"learner_id": "dan", "skill": "x"}, {}) == ("dan", "learner")
    assert credentials(SCENE, "GET", "/v1/evidence", {}, None, {"learner_id": "dan"}) == ("dan", "learner")
    # a path value no token can carry (not a learner id) gets one of the scene's learners
    subject, _ = credentials(SCENE, "PUT", path, {"learner_id": "a/b", "skill": "x"}, {})
    assert subject in SCENE.learners


def test_a_session_command_carries_a_participants_token_the_partner_of_the_one_named() -> None:
    ratings = "/v1/sessions/{session_id}/ratings"
    assert credentials(SCENE, "POST", ratings, {"session_id": "s-1"}, {"ratee_id": "ann"})[0] == "bob"
    assert credentials(SCENE, "POST", ratings, {"session_id": "s-1"}, {"ratee_id": "bob"})[0] == "ann"
    abandon = "/v1/sessions/{session_id}/abandon"
    assert credentials(SCENE, "POST", abandon, {"session_id": "s-1"}, {"no_show": "ann"})[0] == "bob"
    assert credentials(SCENE, "POST", abandon, {"session_id": "s-1"}, "not a dict")[0] == "ann"


def test_a_ticket_is_cancelled_by_its_learner_and_a_registration_is_a_new_learner() -> None:
    assert (
        credentials(SCENE, "DELETE", "/v1/match-requests/{ticket_id}", {"ticket_id": "t-1"}, None)[0] == "cat"
    )
    assert credentials(SCENE, "POST", "/v1/learners", {}, {"handle": "zed"})[0] == "fz-zed"
    assert credentials(SCENE, "POST", "/v1/learners", {}, {"display_name": "no handle"})[0] in SCENE.learners


def test_the_same_request_always_carries_the_same_token() -> None:
    picks = {credentials(SCENE, "POST", "/v1/match-requests", {}, {"skill": f"s{n}"})[0] for n in range(30)}
    again = {credentials(SCENE, "POST", "/v1/match-requests", {}, {"skill": f"s{n}"})[0] for n in range(30)}
    assert picks == again and len(picks) > 1


def test_the_long_poll_is_held_short_and_refused_values_stay_as_they_were() -> None:
    assert [short_wait(v) for v in (0, 1, 30, "45", 60)] == [0, 1, MAX_WAIT_S, MAX_WAIT_S, MAX_WAIT_S]
    assert [short_wait(v) for v in (-1, 61, "x", None, True)] == [-1, 61, "x", None, True]


def test_consistency_tokens_merge_to_the_furthest_position() -> None:
    a = encode_token({("lemma.sci.v1", 0): 5, ("lemma.sci.v1", 1): 2})
    b = encode_token({("lemma.sci.v1", 0): 3, ("lemma.evidence.v1", 2): 9})
    merged = merged_token([a, "", b])
    assert merged is not None and decode_tokens(merged) == {
        ("lemma.sci.v1", 0): 5,
        ("lemma.sci.v1", 1): 2,
        ("lemma.evidence.v1", 2): 9,
    }
    assert merged_token(["", ""]) is None


def test_a_run_meets_its_targets_only_without_a_5xx_a_schema_violation_or_an_error() -> None:
    tally = FuzzTally(documented=2)
    tally.called("sci", "GET /v1/scores/{learner_id}", 200)
    tally.called("sci", "GET /v1/scores/{learner_id}", 422)
    assert not tally.verdicts()["every_operation_tested"]
    tally.called("sci", "GET /healthz", 200)
    tally.called("sci", "TRACE /healthz", 405, documented=False)
    assert all(tally.verdicts().values()) and tally.to_json()["examples_run"] == 4
    assert tally.to_json()["operations_tested"] == 2
    tally.findings.append(
        Finding("sci", "GET /healthz", "content_type_conformance", "Undocumented", "", "curl")
    )
    assert not tally.verdicts()["no_schema_violations"] and tally.verdicts()["no_5xx"]
    tally.findings.append(Finding("sci", "GET /healthz", "not_a_server_error", "Server error", "", "curl"))
    assert not tally.to_json()["meets_targets"] and tally.to_json()["unique_findings"] == 2
