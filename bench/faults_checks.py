"""What must hold after the faults run, once the stack has caught up.

- every rating answered 201 is in its ratee's evidence trail exactly once
  (``bench.load_checks.check_evidence``) and counted once in the SCI (``sessions`` of the
  score: one rating per ratee per session, so it counts the ratings received);
- every ticket ended at most once on the log (one MatchFound, MatchExpired or MatchCancelled,
  counted by event id since a relay killed between sending and marking sends again), every
  ticket a client saw matched ended exactly once, and one that did not end still waits;
- every projection equals a clean rebuild from the log (``lemma replay P --verify``);
- no answer was a 5xx other than 503.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition

from bench.faults_traffic import Outcomes
from bench.load_checks import CheckResult, check_evidence
from bench.load_setup import Api
from shared.events import decode
from shared.events.payloads import MatchCancelled, MatchExpired, MatchFound
from shared.kafka_connection import KafkaConnection
from shared.log_records import partitions_of
from shared.log_window import read, window

PROJECTIONS = ("passport", "matching", "sessions", "evidence", "sci")
SETTLE_S = 90.0
#: How long sci's calibration job may take to count the last ratings (a minute, and its interval).
CALIBRATION_SETTLE_S = 90.0
#: ``lemma replay --verify``: 0 the same, 1 they differ, 4 the live one never stood still.
NOT_COMPARED = 4


@dataclass
class FaultChecks:
    evidence: CheckResult = field(default_factory=CheckResult)
    sci_wrong: list[dict[str, Any]] = field(default_factory=list)
    tickets: int = 0
    ended_twice: list[str] = field(default_factory=list)
    matched_not_ended: list[str] = field(default_factory=list)
    unended_not_waiting: list[str] = field(default_factory=list)
    still_waiting: int = 0
    events_sent_again: int = 0  # records of one event id on the log more than once
    replays: dict[str, int] = field(default_factory=dict)  # projection -> exit status
    server_errors: Counter[int] = field(default_factory=Counter)
    seconds: dict[str, float] = field(default_factory=dict)  # per check, how long it took

    @property
    def verdicts(self) -> dict[str, bool]:
        return {
            "every_rating_once_in_evidence": self.evidence.evidence_exact,
            "every_rating_once_in_sci": not self.sci_wrong,
            "every_ticket_ended_once": not (
                self.ended_twice or self.matched_not_ended or self.unended_not_waiting
            ),
            "projections_equal_rebuilds": all(code == 0 for code in self.replays.values()),
            "no_5xx_but_503": set(self.server_errors) <= {503},
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "ratings_accepted": self.evidence.ratings,
            "ratings_unanswered_kept": self.evidence.unanswered_kept,
            "evidence_missing": self.evidence.missing,
            "evidence_duplicated": self.evidence.duplicated,
            "evidence_unexpected": self.evidence.unexpected,
            "sci_wrong": self.sci_wrong[:10],
            "tickets": self.tickets,
            "tickets_ended_twice": self.ended_twice[:10],
            "tickets_matched_not_ended": self.matched_not_ended[:10],
            "tickets_unended_not_waiting": self.unended_not_waiting[:10],
            "tickets_still_waiting": self.still_waiting,
            "events_sent_again": self.events_sent_again,
            "replay_verify_exit": self.replays,
            "server_errors": {str(k): v for k, v in sorted(self.server_errors.items())},
            "check_seconds": self.seconds,
            "checks": self.verdicts,
        }


async def check_sci(api: Api, out: Outcomes, result: FaultChecks) -> None:
    """Each ratee's score counts each accepted rating once (unanswered ones at most once)."""
    least: Counter[tuple[str, str]] = Counter((r[2], r[3]) for r in out.accepted)
    maybe: Counter[tuple[str, str]] = Counter((r[2], r[3]) for r in out.unanswered)
    deadline = time.monotonic() + SETTLE_S
    todo = set(least) | set(maybe)
    wrong: dict[tuple[str, str], dict[str, Any]] = {}
    while todo:
        wrong = {}
        for ratee, skill in sorted(todo):
            r = await api.call("GET /v1/scores (check)", "GET", f"/v1/scores/{ratee}/{skill}")
            shown = r.json()["sessions"] if r is not None and r.status == 200 else None
            low, high = least[(ratee, skill)], least[(ratee, skill)] + maybe[(ratee, skill)]
            if shown is None or not low <= shown <= high:
                wrong[(ratee, skill)] = {
                    "learner": ratee,
                    "skill": skill,
                    "shown": shown,
                    "expected": [low, high],
                }
        # too few may still be on their way; too many never goes away
        if not any(w["shown"] is None or w["shown"] < w["expected"][0] for w in wrong.values()):
            break
        if time.monotonic() > deadline:
            break
        todo = set(wrong)
        await asyncio.sleep(2.0)
    result.sci_wrong = list(wrong.values())


async def check_tickets(api: Api, bootstrap: str, topic: str, out: Outcomes, result: FaultChecks) -> None:
    ends: dict[str, set[str]] = {}
    seen: Counter[str] = Counter()
    kafka = KafkaConnection(bootstrap)  # the bench's local broker: plaintext
    span = await window(kafka, [TopicPartition(topic, p) for p in await partitions_of(kafka, topic)], None)
    async for batch in read(kafka, span):
        for record in batch:
            try:
                event = decode(record.value or b"")
            except ValueError:
                continue
            seen[event.id] += 1
            data = event.data
            if isinstance(data, MatchFound):
                tickets = [t.ticket_id for t in data.tickets]
            elif isinstance(data, MatchCancelled | MatchExpired):
                tickets = [data.ticket_id]
            else:
                continue
            for ticket in tickets:
                ends.setdefault(ticket, set()).add(event.id)
    result.tickets = len(out.tickets)
    result.events_sent_again = sum(n - 1 for n in seen.values() if n > 1)
    result.ended_twice = sorted(t for t in out.tickets if len(ends.get(t, ())) > 1)
    result.matched_not_ended = sorted(t for t in out.matched if len(ends.get(t, ())) != 1)
    for ticket in sorted(t for t in out.tickets if not ends.get(t)):
        path = f"/v1/match-requests/{ticket}"
        r = await api.call("GET /v1/match-requests (check)", "GET", path, actor=out.tickets[ticket])
        if r is not None and r.status == 200 and r.json()["status"] == "waiting":
            result.still_waiting += 1
        else:
            result.unended_not_waiting.append(ticket)


def replay_verify(
    state_dir: Path, projection: str, tries: int = 3, settle_s: float = CALIBRATION_SETTLE_S
) -> int:
    """``lemma replay PROJECTION --verify`` against the stack; its exit status.

    sci's rater calibrations are not folded from the log but computed by a periodic job (due
    once a skill's ratings grew 2% or its calibration is a minute old), so right after the load
    the live one may count fewer ratings than the rebuild's. While calibrations are the only
    documents that differ, the comparison is made again until ``settle_s`` passed."""
    lemma = Path(sys.executable).with_name("lemma")
    argv = [str(lemma), "replay", projection, "--verify", "--by", "faults", "--state-dir", str(state_dir)]
    deadline = time.monotonic() + settle_s
    not_compared = 0
    while True:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
        drift = [line.strip() for line in done.stdout.splitlines() if line.strip().startswith("drift ")]
        only_calibrations = bool(drift) and all(d.startswith("drift calibrations/") for d in drift)
        if done.returncode == NOT_COMPARED and not_compared < tries:
            not_compared += 1
        elif done.returncode == 1 and only_calibrations and time.monotonic() < deadline:
            time.sleep(10.0)
        else:
            if done.returncode != 0:
                print(done.stdout[-3000:], done.stderr[-2000:], sep="\n", flush=True)
            return done.returncode


async def run_fault_checks(
    api: Api, out: Outcomes, *, bootstrap: str, matching_topic: str, state_dir: Path
) -> FaultChecks:
    result = FaultChecks()
    for _, _, status in out.server_errors:
        result.server_errors[status] += 1
    started = time.monotonic()

    def lap(name: str) -> None:
        nonlocal started
        result.seconds[name] = round(time.monotonic() - started, 1)
        started = time.monotonic()

    await check_evidence(api, out.accepted, out.unanswered, result.evidence)
    lap("evidence")
    await check_sci(api, out, result)
    lap("sci")
    await check_tickets(api, bootstrap, matching_topic, out, result)
    lap("tickets")
    for projection in PROJECTIONS:
        result.replays[projection] = await asyncio.to_thread(replay_verify, state_dir, projection)
        lap(f"replay {projection}")
    return result
