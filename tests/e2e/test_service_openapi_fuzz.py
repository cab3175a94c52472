"""Schemathesis against every service's OpenAPI document, fetched from the running stack.

The short version of ``bench.fuzz``: on the suite's stack, a scene is seeded through the
gateway (learners, claims, a match, two sessions, a rating), then each service is fuzzed with
a fixed seed and derandomized generation: its document's examples, the edges of every
parameter, random requests and stateful sequences, with tokens whose subject is the learner the
request names. Every response must be no 5xx, of a documented status and content type, and
true to its schema; every request answered. Afterwards the fuzzer's waiting tickets are
cancelled and every service has caught up with what it wrote, so later clients of this stack
are not paired with its learners. (The module's name sorts it after the other tests of the
stack, which it leaves as it found them all the same.)
"""

from __future__ import annotations

import json

import pytest

from bench.fuzz import fuzz_stack
from bench.fuzz_run import FuzzOptions
from deploy.local.stack import StackConfig

OPTIONS = FuzzOptions(max_examples=8, seed=3, max_steps=6)


@pytest.mark.timeout(600)
def test_every_service_answers_true_to_its_openapi_document(stack: StackConfig) -> None:
    result = fuzz_stack(stack, OPTIONS)
    figures = result.to_json()
    print("\n".join(result.tally.lines()))
    print(json.dumps(figures, indent=1))
    assert figures["failures_by_check"] == dict.fromkeys(figures["failures_by_check"], 0), figures["findings"]
    assert figures["checks"] == dict.fromkeys(figures["checks"], True), figures["checks"]
    # the tokens and the seeded names reach the happy paths, writes included
    assert figures["operations_with_2xx"] >= 0.75 * figures["operations"], result.tally.lines()
    happy = {name for name, op in result.tally.operations.items() if op.happy}
    assert "passport PUT /v1/learners/{learner_id}/skills/{skill}" in happy
    # a session's commands as a participant: which ones reach 2xx depends on the order the
    # fuzzer calls them in (an abandon first leaves complete nothing to do), one at least does
    commands = {
        f"sessions POST /v1/sessions/{{session_id}}/{c}" for c in ("start", "complete", "confirm", "abandon")
    }
    assert commands & happy, sorted(happy)
