"""What a fuzz run counts, and whether it meets its targets (pure: no I/O).

Per operation: the requests sent and the statuses they got. Findings: each failed check on a
request (a 5xx, an undocumented status, an undocumented content type, a body that breaks the
response's schema) with the request to reproduce it. Errors: requests that got no answer in
time, or an operation Schemathesis could not test. The targets: no 5xx, no response breaking its
own document, no error; and every operation tested.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: the checks every response goes through: no 5xx, and a response true to its document
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
#: the checks that say a response breaks its own document
SCHEMA_CHECKS = CHECKS[1:]
#: how many of the slowest answers a run reports
SLOWEST = 5


@dataclass(frozen=True)
class Finding:
    service: str
    operation: str  # "GET /v1/passports/{who}"
    check: str
    title: str
    message: str
    reproduce: str  # a curl command


@dataclass(frozen=True)
class RunError:
    service: str
    label: str
    title: str
    message: str


@dataclass
class Operation:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def happy(self) -> bool:
        """Whether some request got a 2xx (the route's happy path was reached)."""
        return any(200 <= status < 300 for status in self.statuses)


@dataclass
class FuzzTally:
    operations: dict[str, Operation] = field(default_factory=dict)  # "service GET /path" -> its figures
    findings: list[Finding] = field(default_factory=list)
    errors: list[RunError] = field(default_factory=list)
    documented: int = 0  # operations the services' documents list
    seconds: dict[str, float] = field(default_factory=dict)  # per service
    phase_seconds: dict[str, float] = field(default_factory=dict)
    phase_requests: Counter[str] = field(default_factory=Counter)
    #: requests with a method the path does not document (each should get a 405)
    other_methods: Counter[int] = field(default_factory=Counter)
    #: per service, the links between operations the stateful phase followed (declared or inferred)
    links: dict[str, int] = field(default_factory=dict)
    #: the slowest answers: (seconds, "service METHOD /path -> status")
    slowest: list[tuple[float, str]] = field(default_factory=list)

    def called(
        self,
        service: str,
        operation: str,
        status: int,
        phase: str = "",
        documented: bool = True,
        seconds: float = 0.0,
    ) -> None:
        self.phase_requests[phase] += 1
        answer = (seconds, f"{service} {operation} -> {status}")
        self.slowest = sorted([*self.slowest, answer], reverse=True)[:SLOWEST]
        if not documented:
            self.other_methods[status] += 1
            return
        entry = self.operations.setdefault(f"{service} {operation}", Operation())
        entry.requests += 1
        entry.statuses[status] += 1

    @property
    def requests(self) -> int:
        return sum(op.requests for op in self.operations.values()) + sum(self.other_methods.values())

    def failures_by_check(self) -> dict[str, int]:
        counted = Counter(f.check for f in self.findings)
        return {check: counted.get(check, 0) for check in CHECKS}

    def unique_findings(self) -> list[tuple[str, str, str, str]]:
        """(service, operation, check, title) of each distinct finding."""
        return sorted({(f.service, f.operation, f.check, f.title) for f in self.findings})

    def statuses(self) -> dict[str, int]:
        total: Counter[int] = Counter()
        for op in self.operations.values():
            total.update(op.statuses)
        return {str(status): count for status, count in sorted(total.items())}

    def verdicts(self) -> dict[str, bool]:
        by_check = self.failures_by_check()
        return {
            "no_5xx": by_check["not_a_server_error"] == 0,
            "no_schema_violations": all(by_check[check] == 0 for check in SCHEMA_CHECKS),
            "no_errors": not self.errors,
            "every_operation_tested": self.documented > 0 and len(self.operations) >= self.documented,
        }

    def to_json(self) -> dict[str, Any]:
        verdicts = self.verdicts()
        return {
            "operations": self.documented,
            "operations_tested": len(self.operations),
            "operations_with_2xx": sum(1 for op in self.operations.values() if op.happy),
            "examples_run": self.requests,
            "statuses": self.statuses(),
            "undocumented_methods": {str(s): n for s, n in sorted(self.other_methods.items())},
            "requests_by_phase": dict(sorted(self.phase_requests.items())),
            "stateful_links": self.links,
            "seconds_by_phase": {p: round(s, 1) for p, s in sorted(self.phase_seconds.items())},
            "slowest_answers": [f"{what} in {s:.2f} s" for s, what in self.slowest],
            "failures_by_check": self.failures_by_check(),
            "unique_findings": len(self.unique_findings()),
            "errors": len(self.errors),
            "seconds": {service: round(s, 1) for service, s in self.seconds.items()},
            "targets": {"5xx": 0, "schema_violations": 0, "errors": 0},
            "checks": verdicts,
            "meets_targets": all(verdicts.values()),
        }

    def lines(self) -> list[str]:
        """The figures for a person: each operation, then each finding and error."""
        out = []
        for name, op in sorted(self.operations.items()):
            statuses = " ".join(f"{s}x{n}" for s, n in sorted(op.statuses.items()))
            out.append(f"{name:<62} {op.requests:>5} requests  {statuses}")
        for service, operation, check, title in self.unique_findings():
            count = sum(
                1
                for f in self.findings
                if (f.service, f.operation, f.check, f.title) == (service, operation, check, title)
            )
            example = next(
                f for f in self.findings if (f.service, f.operation, f.check) == (service, operation, check)
            )
            out.append(f"FINDING {service} {operation}: {check} ({title}) x{count}")
            out.append(f"    {example.message.strip().splitlines()[0] if example.message.strip() else ''}")
            out.append(f"    {example.reproduce}")
        for error in self.errors:
            out.append(f"ERROR {error.service} {error.label}: {error.title}: {error.message[:300]}")
        return out
