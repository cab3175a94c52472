"""The services' log lines: one JSON object per line with the service, the replica and the event or
request in hand; the development text format; the request line of each HTTP request; one line
per event a live fold folds, under the event's correlation id."""

from __future__ import annotations

import io
import json
import logging
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from shared.events import new_event
from shared.events.payloads import SkillClaimed
from shared.log_context import EVENT, ORIGIN, REQUEST, Origin, RequestScope, note_published, request_scope
from shared.log_format import JsonFormatter, TextFormatter, configure_logging, parse_levels
from shared.request_log import CORRELATION_HEADER, request_log_middleware

T0 = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def claim(correlationid: str | None = None) -> Any:
    payload = SkillClaimed(learner_id="ann", skill="machine-learning", self_level="beginner")
    return new_event(payload, source="passport", time=T0, correlationid=correlationid)


def record(message: str = "hello %s", *args: object, **extra: Any) -> logging.LogRecord:
    return logging.getLogger("lemma.test").makeRecord(
        "lemma.test", logging.INFO, __file__, 1, message, args or ("world",), None, extra=extra or None
    )


def line(rec: logging.LogRecord) -> dict[str, Any]:
    text = JsonFormatter("sci", "2").format(rec)
    assert "\n" not in text  # one object per line, whatever the message holds
    parsed: dict[str, Any] = json.loads(text)
    return parsed


def test_a_line_outside_any_event_or_request_has_the_fixed_fields_only() -> None:
    out = line(record())
    assert set(out) == {"time", "level", "logger", "message", "service", "instance"}
    assert out["message"] == "hello world" and out["level"] == "INFO" and out["logger"] == "lemma.test"
    assert (out["service"], out["instance"]) == ("sci", "2")
    assert datetime.fromisoformat(out["time"]).tzinfo is not None


def test_a_line_written_while_an_event_is_folded_names_it_and_its_correlation_id() -> None:
    event = claim("chain-1")
    token = EVENT.set(event)
    try:
        out = line(record())
    finally:
        EVENT.reset(token)
    assert out["event_id"] == event.id and out["event_type"] == "lemma.passport.SkillClaimed.v1"
    assert out["correlation_id"] == "chain-1"
    assert "event_id" not in line(record())  # the context ends with the fold


def test_a_line_written_while_a_request_is_handled_names_its_correlation_and_request_ids() -> None:
    origin, scope = ORIGIN.set(Origin("sessions", "3")), REQUEST.set(RequestScope("c-9", "req-1"))
    try:
        out = line(record())
    finally:
        REQUEST.reset(scope)
        ORIGIN.reset(origin)
    assert (out["service"], out["instance"]) == ("sessions", "3")  # the app in hand, not the process's
    assert out["correlation_id"] == "c-9" and out["request_id"] == "req-1"


def test_extra_fields_are_kept_and_cannot_overwrite_the_fixed_ones() -> None:
    out = line(record(route="/v1/x", status=201, service="forged"))
    assert out["route"] == "/v1/x" and out["status"] == 201 and out["service"] == "sci"


def test_an_exception_goes_into_the_same_line() -> None:
    try:
        raise ValueError('bad "thing"\non two lines')
    except ValueError:
        rec = logging.getLogger("x").makeRecord("x", logging.ERROR, __file__, 1, "failed", (), sys.exc_info())
    out = line(rec)
    assert out["level"] == "ERROR" and "ValueError" in out["exception"] and "two lines" in out["exception"]


def test_the_text_format_tags_the_line_with_the_chain() -> None:
    token = EVENT.set(claim("chain-7"))
    try:
        text = TextFormatter("evidence", "1").format(record())
    finally:
        EVENT.reset(token)
    assert text.startswith("evidence ") and text.endswith("]")
    assert "hello world" in text and "corr=chain-7" in text and "event=SkillClaimed:" in text
    assert "[" not in TextFormatter("evidence", "1").format(record())


def test_a_request_id_is_kept_only_when_it_looks_like_an_id() -> None:
    assert request_scope("abc-123_x.y:z").request_id == "abc-123_x.y:z"
    assert request_scope("two words").request_id is None
    assert request_scope("x" * 129).request_id is None
    assert request_scope(None).request_id is None
    assert request_scope(None).correlation_id != request_scope(None).correlation_id


def test_a_command_that_continues_a_chain_moves_the_request_onto_it() -> None:
    scope = request_scope(None)
    token = REQUEST.set(scope)
    try:
        note_published([claim("session-chain")])
    finally:
        REQUEST.reset(token)
    assert scope.correlation_id == "session-chain"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger's lines as ``configure_logging`` writes them, put back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging("passport", "1", fmt="json", level="INFO", stream=stream)
    try:
        yield stream
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(text) for text in stream.getvalue().splitlines()]


def test_configured_logging_sends_library_lines_through_the_json_handler(captured: io.StringIO) -> None:
    logging.getLogger("faststream").error("from the broker library")
    logging.getLogger("uvicorn.error").error("from the server")
    out = lines(captured)
    assert [o["message"] for o in out] == ["from the broker library", "from the server"]
    assert all(o["service"] == "passport" for o in out)


def test_configure_logging_refuses_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="json or text"):
        configure_logging("x", "1", fmt="yaml")


async def test_each_request_is_one_line_with_the_correlation_id_it_answers_with(
    captured: io.StringIO,
) -> None:
    app = FastAPI()
    seen: list[str | None] = []

    @app.post("/v1/things/{thing_id}")
    async def make(thing_id: str) -> dict[str, str]:
        logging.getLogger("lemma.test").info("making %s", thing_id)
        scope = REQUEST.get()
        seen.append(scope.correlation_id if scope else None)
        return {"ok": thing_id}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {}

    app.middleware("http")(request_log_middleware("passport", "2"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        answer = await client.post("/v1/things/secret-handle", headers={"X-Request-ID": "r-1"})
        await client.get("/healthz")  # a probe: DEBUG only
    out = [o for o in lines(captured) if o["logger"].startswith("lemma.")]  # not the client's own
    assert [o["logger"] for o in out] == ["lemma.test", "lemma.access"]
    handler_line, access = out
    correlation = answer.headers[CORRELATION_HEADER]
    assert seen == [correlation] and handler_line["correlation_id"] == correlation
    assert access["correlation_id"] == correlation and access["request_id"] == "r-1"
    assert (access["method"], access["route"], access["status"]) == ("POST", "/v1/things/{thing_id}", 200)
    assert access["instance"] == "2" and "secret-handle" not in json.dumps(access)  # the template only


def test_levels_per_logger_are_pairs_and_anything_else_is_refused() -> None:
    assert parse_levels(" lemma.folds=warning, aiokafka=ERROR ,") == {
        "lemma.folds": "WARNING",
        "aiokafka": "ERROR",
    }
    assert parse_levels("") == {}
    for bad in ("lemma.folds", "=INFO", "x=LOUD"):
        with pytest.raises(ValueError, match="logger=LEVEL"):
            parse_levels(bad)


def test_a_logger_given_its_own_level_is_quieted_alone(captured: io.StringIO) -> None:
    configure_logging("passport", "1", levels="lemma.folds=WARNING", stream=captured)
    logging.getLogger("lemma.folds").info("a fold")
    logging.getLogger("lemma.other").info("kept")
    assert [o["message"] for o in lines(captured)] == ["kept"]
    logging.getLogger("lemma.folds").setLevel(logging.NOTSET)
