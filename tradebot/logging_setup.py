"""Logging to stderr and a rotated file, with every known secret scrubbed from every record."""

from __future__ import annotations

import logging
import logging.handlers
import re
import threading
from pathlib import Path

_secrets: set[str] = set()
_lock = threading.Lock()
_pattern: re.Pattern | None = None
# Bot tokens look like 123456789:AA...; scrub them even before they are registered.
_TOKEN_RE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{20,}\b")
MASK = "***"
MIN_SECRET_LEN = 6  # shorter strings would scrub ordinary words


def register_secret(value: str | None) -> None:
    global _pattern
    if not value or len(value) < MIN_SECRET_LEN:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets.add(value)
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def scrub(text: str) -> str:
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    return _TOKEN_RE.sub(MASK, text)


class SecretFilter(logging.Filter):
    """Renders the message (and any traceback) and replaces secrets before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not kill logging
            message = str(record.msg)
        record.msg = scrub(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


FORMAT = "%(asctime)s %(levelname)s %(name)s [%(threadName)s] %(message)s"


def setup_logging(level: str = "INFO", log_file: Path | None = None, max_bytes: int = 10 << 20,
                  backups: int = 5) -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_tradebot", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
        )
    for handler in handlers:
        handler._tradebot = True
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(SecretFilter())
        root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # At DEBUG these log full requests, i.e. users' messages and signed URLs.
    for noisy in ("telebot", "urllib3", "ccxt", "apscheduler"):
        logger = logging.getLogger(noisy)
        logger.setLevel(max(logging.INFO, root.level))
