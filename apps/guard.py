"""Turn any failure inside a layout or callback into a message in the page.

``AppDataError`` messages are shown as they are; any other exception is logged with its
traceback on the server and shown as one line naming the exception type, so a bad file
never takes the server down and never shows a stack trace in the browser.
"""

from __future__ import annotations

import functools
import logging
from typing import Any, Callable

from .data import AppDataError

log = logging.getLogger("apps")


def message_of(exc: BaseException) -> str:
    if isinstance(exc, AppDataError):
        return str(exc)
    return f"internal error ({type(exc).__name__}: {str(exc)[:200]}); the server log has the details"


def report(exc: BaseException) -> str:
    """Log ``exc`` (with traceback unless it is an AppDataError) and return its page message."""
    if not isinstance(exc, AppDataError):
        log.error("error in a callback", exc_info=exc)
    return message_of(exc)


def guarded(on_error: Callable[[str], Any]) -> Callable:
    """Decorator: call ``on_error(message)`` instead of raising."""

    def deco(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the page must show a message, not a traceback
                if not isinstance(exc, AppDataError):
                    log.exception("error in %s", fn.__name__)
                return on_error(message_of(exc))

        return wrapper

    return deco
