"""Log throttling: a failure that repeats every tick is logged once per interval, not ten times a second."""

from __future__ import annotations

import logging
import math
import threading
import time

REPEAT_INTERVAL = 30.0
"""Seconds before the same message is logged again."""

_MAX_REMEMBERED = 1000
_last_logged: dict[str, float] = {}
_lock = threading.Lock()


def log_throttled(logger: logging.Logger, level: int, message: str, *args: object, exc_info: bool = False) -> None:
    """Log ``message % args`` unless the same text was logged in the last :data:`REPEAT_INTERVAL` seconds."""
    text = message % args if args else message
    now = time.monotonic()
    with _lock:
        if now - _last_logged.get(text, -math.inf) < REPEAT_INTERVAL:
            return
        if len(_last_logged) >= _MAX_REMEMBERED:
            _last_logged.clear()
        _last_logged[text] = now
    logger.log(level, "%s (repeats are not logged for %.0fs)", text, REPEAT_INTERVAL, exc_info=exc_info)
