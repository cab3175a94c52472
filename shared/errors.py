"""The errors pure domain code raises: ``Refused`` turns a command down, ``EventRefused`` an event.

``Refused`` carries the HTTP status it answers with, but imports nothing from the web stack, so
a domain module stays pure; ``shared.problems`` renders it as RFC 9457 problem details. A fold
raises ``EventRefused`` (or ``Refused``) for an event its rules cannot take: the event is
dead-lettered with the reason (``shared.projection.faults``).
"""

from __future__ import annotations


class Refused(Exception):
    """A command the rules turn down: 403 (not yours), 404 (no such thing), 409 (wrong state), 422."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class EventRefused(ValueError):
    """An event the domain rules cannot fold (a fact about the data): it is dead-lettered."""
