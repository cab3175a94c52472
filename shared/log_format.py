"""How a service process logs: one JSON object per line (production), or plain text for reading
the local stack by eye (``LEMMA_LOG_FORMAT=text``).

Every line has ``time`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message``,
``service`` and ``instance``; while an event is folded, ``event_id``, ``event_type`` and
``correlation_id``; while an HTTP request is handled, ``correlation_id`` and ``request_id`` (the
client's ``X-Request-ID``, when it sent one). Fields a call passes with ``extra=`` come after,
and ``exception`` holds the traceback of a line logged with one. The context comes from
``shared.log_context``.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from shared.log_context import EVENT, ORIGIN, REQUEST

LogFormat = Literal["json", "text"]

#: The attributes every ``LogRecord`` has: anything else on a record came with ``extra=``.
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


def context_fields(default_service: str, default_instance: str) -> dict[str, Any]:
    """The fields the context gives a line written now (``service`` and ``instance`` first)."""
    origin = ORIGIN.get()
    fields: dict[str, Any] = {
        "service": origin.service if origin else default_service,
        "instance": origin.instance if origin else default_instance,
    }
    request = REQUEST.get()
    if request is not None:
        fields["correlation_id"] = request.correlation_id
        if request.request_id is not None:
            fields["request_id"] = request.request_id
    event = EVENT.get()
    if event is not None:  # a fold under a request (none today) is about the event
        fields["event_id"] = event.id
        fields["event_type"] = event.type
        fields["correlation_id"] = event.correlationid
    return fields


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def __init__(self, service: str, instance: str) -> None:
        super().__init__()
        self.service = service
        self.instance = instance

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **context_fields(self.service, self.instance),
        }
        for key, value in extra_fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """The development line: ``time service level logger: message [correlation event]``."""

    def __init__(self, service: str, instance: str) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.service = service
        self.instance = instance

    def format(self, record: logging.LogRecord) -> str:
        fields = context_fields(self.service, self.instance)
        text = f"{fields['service']} {super().format(record)}"
        tags = [f"corr={fields['correlation_id']}"] if "correlation_id" in fields else []
        if "event_type" in fields:
            tags.append(f"event={fields['event_type'].split('.')[-2]}:{fields['event_id']}")
        if "request_id" in fields:
            tags.append(f"req={fields['request_id']}")
        if not tags:
            return text
        head, newline, rest = text.partition("\n")  # a traceback stays below the tagged line
        return f"{head} [{' '.join(tags)}]{newline}{rest}"


def configure_logging(
    service: str,
    instance: str,
    *,
    fmt: str = "json",
    level: str | int = "INFO",
    levels: str = "",
    stream: TextIO | None = None,
) -> logging.Handler:
    """Send every logger's lines, the libraries' included, through one handler on the root.

    ``level``: the root's; ``levels``: per logger, ``name=LEVEL`` comma separated
    (``lemma.folds=WARNING`` drops the line per event folded, ``aiokafka=WARNING`` the
    consumer group's chatter).

    Uvicorn is run without its own logging config (``log_config=None``), so its lines come here;
    FastStream's loggers keep their own coloured handlers unless told, so they are cleared and
    made to propagate."""
    if fmt not in ("json", "text"):
        raise ValueError(f"LEMMA_LOG_FORMAT must be json or text, not {fmt!r}")
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter(service, instance) if fmt == "json" else TextFormatter(service, instance)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for name in ("faststream", "faststream.access.kafka", "uvicorn", "uvicorn.error", "uvicorn.access"):
        library = logging.getLogger(name)
        for old in list(library.handlers):
            library.removeHandler(old)
        library.propagate = True
    for name, named_level in parse_levels(levels).items():
        logging.getLogger(name).setLevel(named_level)
    return handler


def parse_levels(levels: str) -> dict[str, str]:
    """``"lemma.folds=WARNING, aiokafka=ERROR"`` -> {logger: level}; refuses what is not that."""
    out: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in levels.split(","))):
        name, _, named_level = item.partition("=")
        named_level = named_level.strip().upper()
        if not name.strip() or named_level not in logging.getLevelNamesMapping():
            raise ValueError(f"LEMMA_LOG_LEVELS takes logger=LEVEL pairs, not {item!r}")
        out[name.strip()] = named_level
    return out
