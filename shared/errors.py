"""The one error pure domain code raises to turn a command down.

It carries the HTTP status it answers with, but imports nothing from the web stack, so a
domain module stays pure; ``shared.problems`` renders it as RFC 9457 problem details.
"""

from __future__ import annotations


class Refused(Exception):
    """A command the rules turn down: 403 (not yours), 404 (no such thing), 409 (wrong state), 422."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
