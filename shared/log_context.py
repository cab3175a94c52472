"""What a log line is about: the service and replica writing it, and the event or HTTP request in
hand. Context variables, so a line written anywhere below a fold or a route (the store, the
domain, a library) carries them without anything being passed along (``shared.log_format``
writes them out).

A request starts a correlation id; the events its command publishes carry it on
(``ServiceContext.event``), and every event published in reaction to those inherits it
(``shared.events.envelope.new_event``), so one id follows a rating from the HTTP request through
every service that folds what came of it. A command that continues an older chain (a session's
command keeps the session's id) moves the request's id over to the chain's when it publishes
(``note_published``), so the request's lines and its events' lines share one id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass

from shared.events.envelope import CloudEvent


@dataclass(frozen=True, slots=True)
class Origin:
    """The service and replica a line comes from (several run in one process in tests)."""

    service: str
    instance: str


@dataclass(slots=True)
class RequestScope:
    """The HTTP request in hand; mutable: a command may move it onto its events' correlation id."""

    correlation_id: str
    request_id: str | None = None


ORIGIN: ContextVar[Origin | None] = ContextVar("lemma_log_origin", default=None)
REQUEST: ContextVar[RequestScope | None] = ContextVar("lemma_log_request", default=None)
#: the event being folded
EVENT: ContextVar[CloudEvent | None] = ContextVar("lemma_log_event", default=None)

#: What a client's ``X-Request-ID`` may be to be logged: an id, not free text.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def request_scope(request_id: str | None) -> RequestScope:
    """A new request's scope: a fresh correlation id; the client's request id if it looks like one."""
    kept = request_id if request_id is not None and _REQUEST_ID.match(request_id) else None
    return RequestScope(correlation_id=str(uuid.uuid4()), request_id=kept)


def request_correlation() -> str | None:
    """The correlation id of the HTTP request in hand, if any."""
    scope = REQUEST.get()
    return scope.correlation_id if scope is not None else None


def note_published(events: Sequence[CloudEvent]) -> None:
    """A request's command published ``events``: its lines carry their correlation id from now on."""
    scope = REQUEST.get()
    if scope is not None and events:
        scope.correlation_id = events[0].correlationid
