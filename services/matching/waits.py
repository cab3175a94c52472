"""How many long-polls each caller holds open on this process, so one client cannot tie up
hundreds of connections (and their store reads) by opening waits it never needs."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from fastapi import HTTPException
from prometheus_client import Counter as Metric

WAITS_REFUSED = Metric(
    "lemma_long_polls_refused_total",
    "Long-polls answered 429 because their caller already held as many as one may",
    ["service"],
)


class WaitSlots:
    """At most ``per_caller`` long-polls of one caller at a time; one more answers 429."""

    def __init__(self, service: str, per_caller: int) -> None:
        self.service = service
        self.per_caller = per_caller
        self._held: Counter[str] = Counter()

    def holding(self, caller: str) -> int:
        return self._held[caller]

    @contextlib.contextmanager
    def held(self, caller: str) -> Iterator[None]:
        if self._held[caller] >= self.per_caller:
            WAITS_REFUSED.labels(self.service).inc()
            raise HTTPException(
                429,
                f"this caller already holds {self.per_caller} long-polls; "
                "wait on one ticket at a time, or poll without wait",
                headers={"Retry-After": "1"},
            )
        self._held[caller] += 1
        try:
            yield
        finally:
            self._held[caller] -= 1
            if not self._held[caller]:
                del self._held[caller]
