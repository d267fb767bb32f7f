"""The service's logging with people's identifiers and names masked (doudi/masking.py): a filter that every
handler of the service's loggers carries, so that an access log line, an error message or a traceback never
writes a person's number or name to disk. `doudi serve` hands uvicorn a logging configuration with the
filter on its handlers; `create_app` adds it to whatever handlers are there when the app is built (another
server, tests), and SQLAlchemy's errors leave out their parameters (`hide_parameters` in api/app.py).
"""

from __future__ import annotations

import copy
import functools
import http
import logging
from typing import Any

from uvicorn.logging import AccessFormatter as UvicornAccessFormatter

from doudi.masking import scrub

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


class MaskingFilter(logging.Filter):
    """Masks identifiers and names in a record's message, arguments, traceback and stack. Never drops one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.args:
            if isinstance(record.msg, str):
                record.msg = scrub(record.msg)
        else:
            # The message is a template: its arguments are masked one by one, keeping their places (uvicorn's
            # access formatter unpacks them), and the template is left alone (its "%s" must stay).
            if isinstance(record.args, tuple):
                record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
            elif isinstance(record.args, dict):
                record.args = {k: scrub(v) if isinstance(v, str) else v for k, v in record.args.items()}
            if record.name != "uvicorn.access":
                # An identifier split between the template and an argument ("person_id=%s") shows only once
                # they are put together.
                self._join(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True

    @staticmethod
    def _join(record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a broken template: the handler reports it as it always does
            return
        masked = scrub(message)
        if masked != message:
            record.msg, record.args = masked, None


def install() -> None:
    """Put the filter on every handler of the root logger and uvicorn's loggers (once)."""
    for logger in (logging.getLogger(), *map(logging.getLogger, _UVICORN_LOGGERS)):
        for handler in logger.handlers:
            if not any(isinstance(f, MaskingFilter) for f in handler.filters):
                handler.addFilter(MaskingFilter())


class AccessFormatter(UvicornAccessFormatter):
    """uvicorn's access line as uvicorn writes it, at a fraction of the cost when it is not coloured (a file,
    a pipe, a journal): uvicorn's formatter copies each record and looks its status phrase up anew, about a
    third of a line's cost and some 4 % of the event loop's time per settlement under 16 desks."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        if self.use_colors or not isinstance(record.args, tuple) or len(record.args) != 5:
            return super().formatMessage(record)
        client_addr, method, full_path, http_version, status_code = record.args
        # On the record itself rather than a copy: what is added is only read by formatters, and the message
        # and its arguments stay as they were for any other handler.
        record.levelprefix = record.levelname + ":" + " " * (8 - len(record.levelname))
        record.client_addr = client_addr
        record.request_line = f"{method} {full_path} HTTP/{http_version}"
        record.status_code = _status_and_phrase(int(status_code))  # type: ignore[call-overload]
        return self._style.format(record)


@functools.lru_cache(maxsize=128)
def _status_and_phrase(status_code: int) -> str:
    try:
        return f"{status_code} {http.HTTPStatus(status_code).phrase}"
    except ValueError:
        return f"{status_code} "


def uvicorn_config() -> dict[str, Any]:
    """uvicorn's own logging configuration with the filter on each of its handlers, and its access lines
    written by `AccessFormatter`."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["access"]["()"] = f"{__name__}.AccessFormatter"
    config.setdefault("filters", {})["mask_identifiers"] = {"()": MaskingFilter}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("mask_identifiers")
    return config
