"""Schemathesis against each service's OpenAPI document, fetched from the running service.

For each service: its document is loaded from ``<service>/openapi.json``; Schemathesis runs its
phases (the document's examples, coverage of each parameter's edges, random fuzzing, and
stateful sequences that follow the links it finds) with a fixed seed and derandomized
generation, one request at a time, and every response goes through ``fuzz_report.CHECKS``.
Requests carry tokens that reach the happy path (``bench.fuzz_auth``), and the parameters that
name things (a learner, a skill, a session, a ticket, a projection, a record of the log) are
drawn half the time from what exists (``bench.fuzz_scene``), the other half generated.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import schemathesis
from schemathesis.core.transport import Response
from schemathesis.engine import Status, events, from_schema
from schemathesis.hooks import HookContext

from bench.fuzz_auth import token_provider
from bench.fuzz_report import CHECKS, Finding, FuzzTally, RunError
from bench.fuzz_scene import Scene
from shared.catalog import get_catalog
from shared.consistency import TOKEN_HEADER
from shared.events.registry import Topic
from shared.settings import Settings

#: the long poll (``GET /v1/match-requests/{id}?wait=``) is held at most this long when fuzzed
MAX_WAIT_S = 1
#: the most a route lets a client wait (matching's ``MAX_WAIT_S``): anything above is a 422
ROUTE_MAX_WAIT_S = 60
#: how often a parameter that names something gets a value that exists
REAL = 0.5


@dataclass(frozen=True)
class FuzzOptions:
    max_examples: int = 10
    seed: int = 1
    phases: tuple[str, ...] = ("examples", "coverage", "fuzzing", "stateful")
    #: the most requests of one stateful scenario
    max_steps: int = 6
    request_timeout_s: float = 30.0


def dictionaries(scene: Scene, service: str) -> dict[str, dict[str, list[Any]]]:
    catalog = get_catalog().skills
    topics = [Settings().topic(topic) for topic in Topic]

    def values(items: list[Any]) -> dict[str, list[Any]]:
        return {"values": items or ["none"]}

    return {
        "learners": values(scene.learners),
        "erasable": values(scene.erasable),
        "who": values(sorted({*scene.learners, *scene.handles})),
        "skills": values(scene.skills),
        "specialties": values(sorted({s.id for skill in catalog for s in skill.specialties})),
        "formats": values(sorted({f.id for skill in catalog for f in skill.formats})),
        "sessions": values(sorted(scene.sessions)),
        "tickets": values(sorted(scene.tickets)),
        "projections": values(scene.projections.get(service, [])),
        "topics": values(topics),
        "partitions": values([0, 1, 2]),
        "offsets": values([0, 1, 2, 3]),
    }


#: parameter (location.name) -> the dictionary its real values come from
BINDINGS = {
    "path.learner_id": "learners",
    "query.learner_id": "learners",
    "body.ratee_id": "learners",
    "body.no_show": "learners",
    "path.who": "who",
    "path.skill": "skills",
    "query.skill": "skills",
    "body.skill": "skills",
    "query.specialty": "specialties",
    "body.specialty": "specialties",
    "body.format": "formats",
    "path.session_id": "sessions",
    "path.ticket_id": "tickets",
    "path.name": "projections",
    "body.records[*].topic": "topics",
    "body.records[*].partition": "partitions",
    "body.records[*].offset": "offsets",
}


def project_config(url: str, scene: Scene, service: str, options: FuzzOptions) -> dict[str, Any]:
    """The Schemathesis configuration of one service's run (as its TOML file would hold it)."""
    return {
        "base-url": url,
        "cache": {"enabled": False},  # no failure of an earlier run is replayed: one seed, one run
        "seed": options.seed,
        "workers": 1,
        "continue-on-failure": True,
        "request-timeout": options.request_timeout_s,
        "generation": {
            "max-examples": options.max_examples,
            "deterministic": True,
            "database": "none",
            "no-shrink": True,
        },
        "checks": {"enabled": False, **{check: {"enabled": True} for check in CHECKS}},
        "phases": {
            "examples": {"enabled": "examples" in options.phases, "fill-missing": True},
            "coverage": {"enabled": "coverage" in options.phases},
            "fuzzing": {"enabled": "fuzzing" in options.phases},
            "stateful": {"enabled": "stateful" in options.phases, "max-steps": options.max_steps},
        },
        "dictionaries": dictionaries(scene, service),
        "parameters": {key: {"dictionary": name, "probability": REAL} for key, name in BINDINGS.items()},
        # only the learners seeded to be erased are erased: the others stay for every other route
        "operations": [
            {
                "include-path": "/v1/learners/{learner_id}",
                "include-method": "DELETE",
                "parameters": {"path.learner_id": {"dictionary": "erasable", "probability": REAL}},
            }
        ],
    }


def short_wait(value: Any) -> Any:
    """A ``wait`` the route accepts, held to ``MAX_WAIT_S``; any other value as it was (the
    route refuses it at once)."""
    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return value
    return MAX_WAIT_S if MAX_WAIT_S < seconds <= ROUTE_MAX_WAIT_S and not isinstance(value, bool) else value


class Learned:
    """What the fuzzer's own requests made (tickets, sessions) and the consistency tokens they
    were answered with; the scene learns of the tickets and sessions as they come."""

    def __init__(self, scene: Scene) -> None:
        self.scene = scene
        self.tickets: set[str] = set()
        self.tokens: list[str] = []

    def answer(self, response: Response) -> None:
        if token := response.headers.get(TOKEN_HEADER.lower(), [None])[0]:
            self.tokens.append(token)
        if response.status_code >= 300:
            return
        try:
            body = response.json()
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        if isinstance(body.get("ticket_id"), str) and isinstance(body.get("learner_id"), str):
            self.tickets.add(body["ticket_id"])
            self.scene.tickets.setdefault(body["ticket_id"], body["learner_id"])
        participants = body.get("participants")
        if (
            isinstance(body.get("session_id"), str)
            and isinstance(participants, list)
            and len(participants) == 2
        ):
            self.scene.sessions.setdefault(body["session_id"], (str(participants[0]), str(participants[1])))


def fuzz_service(
    service: str, url: str, scene: Scene, options: FuzzOptions, tally: FuzzTally, learned: Learned
) -> None:
    """Run Schemathesis against one running service; what it found goes into ``tally``."""
    config = schemathesis.Config.from_dict(project_config(url, scene, service, options))
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config)
    tally.documented += schema.statistic.operations.total
    schema.auth(refresh_interval=None)(token_provider(scene))

    @schema.hook
    def map_case(context: HookContext, case: schemathesis.Case[Any]) -> schemathesis.Case[Any]:
        if case.query and "wait" in case.query:
            case.query["wait"] = short_wait(case.query["wait"])
        return case

    phase = "probing"

    @schema.hook
    def after_call(context: HookContext, case: schemathesis.Case[Any], response: Response) -> None:
        documented = case.method.upper() == case.operation.method.upper()
        operation = f"{case.method.upper()} {case.path}"
        tally.called(service, operation, response.status_code, phase, documented, response.elapsed)
        learned.answer(response)

    started = time.monotonic()
    phase_started = started
    for event in from_schema(schema).execute():
        if isinstance(event, events.PhaseStarted):
            phase, phase_started = event.phase.name.value, time.monotonic()
            if isinstance(event.payload, events.StatefulPhasePayload):
                tally.links[service] = event.payload.transitions_total
        elif isinstance(event, events.PhaseFinished):
            name = event.phase.name.value
            tally.phase_seconds[name] = tally.phase_seconds.get(name, 0.0) + time.monotonic() - phase_started
        elif isinstance(event, events.ScenarioFinished):
            _findings(service, event, tally)
        elif isinstance(event, events.NonFatalError):
            tally.errors.append(RunError(service, event.label, event.info.title, event.info.message))
        elif isinstance(event, events.FatalError):
            raise RuntimeError(f"Schemathesis stopped on {service}") from event.exception
        elif isinstance(event, events.Interrupted):  # Ctrl-C or SIGTERM: the engine took it
            raise KeyboardInterrupt
    tally.seconds[service] = time.monotonic() - started


def _findings(service: str, event: events.ScenarioFinished, tally: FuzzTally) -> None:
    recorder = event.recorder
    for case_id, nodes in recorder.checks.items():
        for node in nodes:
            if node.status != Status.FAILURE or node.failure_info is None:
                continue
            case = recorder.cases[case_id].value
            failure = node.failure_info.failure
            tally.findings.append(
                Finding(
                    service=service,
                    operation=f"{case.method.upper()} {case.path}",
                    check=node.name,
                    title=failure.title,
                    message=failure.message,
                    reproduce=node.failure_info.code_sample,
                )
            )


def fuzz_services(
    service_urls: dict[str, str], scene: Scene, options: FuzzOptions
) -> tuple[FuzzTally, Learned]:
    """Every service in turn."""
    tally, learned = FuzzTally(), Learned(scene)
    for service, url in service_urls.items():
        fuzz_service(service, url, scene, options, tally, learned)
    return tally, learned
