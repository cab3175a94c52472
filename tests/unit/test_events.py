"""The event contract: envelopes round-trip, malformed records are refused with a reason,
and the committed JSON Schemas stay backward compatible."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events import REGISTRY, decode, encode, new_event, payloads
from shared.events.payloads import MatchedTicket, MatchFound, RatersCalibrated, RatingSubmitted, TierChanged
from shared.events.schemas import committed_schemas, compatibility_problems, current_schemas

SCORES = {"a": 1, "b": 5}


def rating(**overrides: object) -> RatingSubmitted:
    fields: dict[str, object] = dict(
        rating_id="r1",
        session_id="s1",
        rater_id="ann",
        ratee_id="bob",
        skill="machine-learning",
        scores=SCORES,
    )
    fields.update(overrides)
    return RatingSubmitted.model_validate(fields)


def test_envelope_is_cloudevents_with_versioned_type_and_key() -> None:
    event = new_event(rating(), source="sessions")
    assert event.type == "lemma.sessions.RatingSubmitted.v1"
    assert event.specversion == "1.0" and event.datacontenttype == "application/json"
    assert event.subject == "s1" and event.topic == "lemma.sessions.v1"
    assert event.dataschema.endswith("lemma.sessions.RatingSubmitted.v1.json")
    assert event.correlationid == event.id and event.causationid is None


def test_caused_event_inherits_correlation() -> None:
    cause = new_event(rating(), source="sessions")
    effect = new_event(rating(rating_id="r2"), source="evidence", cause=cause)
    assert effect.correlationid == cause.correlationid and effect.causationid == cause.id


@given(st.text(min_size=1, max_size=20), st.integers(1, 5), st.integers(1, 5))
def test_round_trip(session_id: str, a: int, b: int) -> None:
    event = new_event(rating(session_id=session_id, scores={"x": a, "y": b}), source="t")
    again = decode(encode(event))
    assert again == event


def test_tier_changed_uses_from_and_to_on_the_wire() -> None:
    event = new_event(
        TierChanged.model_validate(
            {"learner_id": "a", "skill": "s", "from": 1, "to": 2, "as_of": datetime.now(UTC)}
        ),
        source="sci",
    )
    assert b'"from":1' in encode(event) and decode(encode(event)).data == event.data


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: d.update(type="lemma.sessions.Nope.v1"), "unknown event type"),
        (lambda d: d.update(specversion="0.3"), "specversion"),
        (lambda d: d["data"]["scores"].update(a=9), "less than or equal to 5"),
        (lambda d: d.update(subject="other"), "does not match"),
        (lambda d: d.pop("id"), "Field required"),
    ],
)
def test_malformed_records_are_refused_with_a_reason(
    mutate: Callable[[dict[str, Any]], object], reason: str
) -> None:
    import json

    raw = json.loads(encode(new_event(rating(), source="t")))
    mutate(raw)
    with pytest.raises(ValueError, match=reason):
        decode(json.dumps(raw))


def test_a_reader_ignores_fields_it_does_not_know() -> None:
    """Tolerant reader: a newer producer's optional field or a CloudEvents extension is skipped."""
    import json

    raw = json.loads(encode(new_event(rating(), source="t")))
    raw["data"]["added_later"] = "x"
    raw["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    event = decode(json.dumps(raw))
    assert event.data == rating() and "added_later" not in event.data.model_dump()


def test_not_json_is_refused() -> None:
    with pytest.raises(ValueError):
        decode(b"{nope")


def test_match_found_carries_two_tickets() -> None:
    t = MatchedTicket(ticket_id="t", learner_id="l", level=1.0)
    with pytest.raises(ValueError):
        MatchFound(match_id="m", skill="s", tickets=(t,), level_gap=0, waited_ms=0)


def test_raters_calibrated_is_keyed_by_skill_and_names_one_of_its_parts() -> None:
    payload = RatersCalibrated(
        skill="machine-learning", version="v", digest="d", ratings=40, part=1, parts=2, bias={"r": 0.4}
    )
    event = new_event(payload, source="sci")
    assert event.type == "lemma.sci.RatersCalibrated.v1" and event.topic == "lemma.sci.v1"
    assert event.subject == "machine-learning" and decode(encode(event)) == event
    with pytest.raises(ValueError, match="not one of 2 parts"):
        RatersCalibrated(skill="s", version="v", digest="d", ratings=1, part=2, parts=2, bias={})


def test_every_payload_is_registered_once() -> None:
    names = [spec.name for spec in REGISTRY.values()]
    defined = {
        name
        for name, value in vars(payloads).items()
        if isinstance(value, type) and issubclass(value, payloads.Payload) and value is not payloads.Payload
    }
    assert len(names) == len(set(names)) == 24
    assert defined - set(names) == {"MatchedTicket"}  # a part of MatchFound, never an event alone


def test_committed_schemas_match_the_code() -> None:
    """Run `make schemas` after an intended, compatible change to the payloads."""
    assert committed_schemas() == current_schemas()


def test_committed_schemas_stay_backward_compatible() -> None:
    assert compatibility_problems(committed_schemas(), current_schemas()) == []


def test_compatibility_check_catches_breaking_changes() -> None:
    old = current_schemas()
    t = "lemma.sessions.RatingSubmitted.v1"
    removed = copy.deepcopy(old)
    del removed[t]["properties"]["comment"]
    assert any("removed" in p for p in compatibility_problems(old, removed))
    required = copy.deepcopy(old)
    required[t]["required"].append("comment")
    assert any("became required" in p for p in compatibility_problems(old, required))
    retyped = copy.deepcopy(old)
    retyped[t]["properties"]["rater_id"] = {"type": "integer"}
    assert any("changed" in p for p in compatibility_problems(old, retyped))
    gone = {k: v for k, v in old.items() if k != t}
    assert any("event type removed" in p for p in compatibility_problems(old, gone))
    added = copy.deepcopy(old)
    added[t]["properties"]["extra"] = {"type": "string", "default": ""}
    assert compatibility_problems(old, added) == []


@given(st.lists(st.text(), min_size=1, max_size=4))
def test_deterministic_ids_are_rfc_4122_name_based_uuids(parts: list[str]) -> None:
    from shared.events.envelope import _NAMESPACE, deterministic_id

    assert deterministic_id(*parts) == str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


def test_a_rater_bias_must_be_a_finite_number() -> None:
    import math

    import pytest
    from pydantic import ValidationError

    from shared.events.payloads import RatersCalibrated

    for bad in (math.nan, math.inf):
        with pytest.raises(ValidationError):
            RatersCalibrated(skill="s", version="v", digest="d", ratings=1, part=0, parts=1, bias={"r": bad})
