"""Logging for every flares command: JSON lines or text, request ids, secrets scrubbed."""

from __future__ import annotations

import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterable
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, TextIO
from urllib.parse import quote, quote_plus

import orjson

LogFormat = Literal["auto", "json", "text"]
REDACTED = "***"
# Attributes every LogRecord has; whatever else a record carries came in through `extra=`
# (but for uvicorn's copy of its message with terminal colours, which a log has no use for).
STANDARD = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    "color_message",
}
# The attributes of a record that are scrubbed: its extra fields and the request id.
SCRUBBED = STANDARD - {"request_id"}
# How long the writer lets lines gather after the first: a busy server logs a line a request.
GATHER_SECONDS = 0.05
# Loggers that say too much at INFO: httpx logs every request URL (some networks take their
# token in the query), APScheduler every tick.
QUIET = ("httpx", "httpcore", "apscheduler")


@dataclass(frozen=True)
class RequestContext:
    """The request being handled: its id, and the client addresses no record may show."""

    id: str
    addresses: tuple[str, ...] = ()


# Set by the request middleware for the handling of one request; a task inherits its value.
current_request: ContextVar[RequestContext | None] = ContextVar("flares_request", default=None)


def secret_forms(secrets: Iterable[str]) -> list[str]:
    """Each secret raw and URL-encoded (path and form style), longest first, empty ones out."""
    forms = {f for s in secrets if s for f in (s, quote(s, safe=""), quote_plus(s))}
    return sorted(forms, key=len, reverse=True)


def redact(text: str, forms: Iterable[str]) -> str:
    """The text with every occurrence of each form replaced."""
    for form in forms:
        if form in text:
            text = text.replace(form, REDACTED)
    return text


class RequestIdFilter(logging.Filter):
    """Puts the id of the request being handled (None outside one) on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_request.get()
        record.request_id = context.id if context is not None else None
        return True


class ScrubSecrets(logging.Filter):
    """The last line of defence: removes every secret, and the client addresses of the request
    being handled, from a record's message, arguments, traceback and extra fields."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self._forms = secret_forms(secrets)
        self._traceback = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_request.get()
        forms = [*self._forms, *(context.addresses if context is not None else ())]
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A call whose arguments do not fit its format: log what there is, not a crash.
            message = f"{record.msg!s} {record.args!r}"
        record.msg, record.args = redact(message, forms), None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._traceback.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, forms)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, forms)
        for name in vars(record).keys() - SCRUBBED:
            if isinstance(value := getattr(record, name), str):
                setattr(record, name, redact(value, forms))
        return True


def extras(record: logging.LogRecord) -> dict[str, object]:
    """The fields a record was given through `extra=`."""
    return {k: v for k, v in vars(record).items() if k not in STANDARD}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC), level, logger, message, request id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if (request_id := getattr(record, "request_id", None)) is not None:
            line["request_id"] = request_id
        line.update(extras(record))
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["error"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """For a person at a terminal: time, level, logger, [request id], message."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        request_id = getattr(record, "request_id", None)
        where = f"{record.name} [{request_id}]" if request_id else record.name
        return f"{self.formatTime(record)} {record.levelname} {where}: {record.message}"


class LineHandler(logging.Handler):
    """Formats each record where it is logged (the request's context is there) and queues the
    line for a LineWriter; without QueueHandler's copy of every record."""

    def __init__(self, lines: queue.SimpleQueue[str | None]) -> None:
        super().__init__()
        self._lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.put(self.format(record))
        except Exception:
            self.handleError(record)


class LineWriter:
    """A thread that writes the queued lines to a stream, so that a slow stream never blocks
    the event loop: a batch at a time, one write and flush each, where a thread woken for every
    line cost a busy server a wakeup, a switch of the GIL and a system call per request."""

    def __init__(self, lines: queue.SimpleQueue[str | None], stream: TextIO) -> None:
        self._lines, self._stream = lines, stream
        self._thread = threading.Thread(target=self._run, name="flares-log-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Write every line queued so far, then end the thread."""
        self._lines.put(None)
        self._thread.join()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [self._lines.get()]
            if batch[0] is not None:
                time.sleep(GATHER_SECONDS)
            with suppress(queue.Empty):
                while batch[-1] is not None:
                    batch.append(self._lines.get_nowait())
            stopping = batch[-1] is None
            self._write([line for line in batch if line is not None])

    def _write(self, batch: list[str]) -> None:
        try:
            self._stream.write("".join(f"{line}\n" for line in batch))
            self._stream.flush()
        except (OSError, ValueError):
            # A closed or broken stream loses these lines, as it would with logging's own
            # StreamHandler; the thread goes on, so that the queue never grows unread.
            pass


def wants_json(log_format: LogFormat, stream: TextIO) -> bool:
    """JSON unless told otherwise or writing to a terminal."""
    if log_format != "auto":
        return log_format == "json"
    isatty = getattr(stream, "isatty", None)
    return not (callable(isatty) and isatty())


def configure(
    log_format: LogFormat, secrets: Iterable[str], stream: TextIO | None = None
) -> Callable[[], None]:
    """Send every record at INFO and up to `stream` (stderr) in the format asked for; returns
    what writes out the records still queued and puts the previous handlers back."""
    out = stream or sys.stderr
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
    handler = LineHandler(lines)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(ScrubSecrets(secrets))
    handler.setFormatter(JsonFormatter() if wants_json(log_format, out) else TextFormatter())
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    writer = LineWriter(lines, out)
    writer.start()

    def restore() -> None:
        root.handlers = handlers
        root.setLevel(level)
        writer.stop()

    return restore
