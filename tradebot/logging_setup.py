"""Logging to stderr and a rotated file, with every known secret scrubbed from every record.

The scrubber is a bounded LRU set of secrets. A log line is split into tokens of the characters API keys,
secrets and tokens are made of, and each token is looked up in the set: O(length of the line) per line and
O(1) per added secret, whatever the number of secrets (a single regex over all of them was rebuilt on every
addition and scanned every line once per secret). Only strings shaped like credentials are accepted, so an
ordinary word can never be made to disappear from the log.
"""

from __future__ import annotations

import collections
import logging
import logging.handlers
import os
import re
import threading
from pathlib import Path

# Characters of exchange API keys/secrets and LLM API keys; a secret is matched as a whole token of these.
_TOKEN_CHARS = r"A-Za-z0-9_\-"
_CANDIDATE_RE = re.compile(rf"[{_TOKEN_CHARS}]+")
# Bot tokens look like 123456789:AA...; scrub them even before they are registered.
_BOT_TOKEN_RE = re.compile(r"(?<!\d)\d{5,}:[A-Za-z0-9_-]{20,}")  # also inside URLs: /bot123:AA...
MASK = "***"
MIN_SECRET_LEN = 10  # shorter strings are no credentials and would scrub ordinary text
MAX_SECRET_LEN = 512
MAX_SECRETS = 20_000  # least recently used ones are forgotten beyond this (a few MB at most)
# Letters only in one case (or Capitalized): a word or an identifier, never a random key.
_WORDLIKE_RE = re.compile(r"[a-z_\-]+|[A-Z][a-z_\-]*|[A-Z_\-]+|[0-9_\-]+")

_secrets: collections.OrderedDict[str, None] = collections.OrderedDict()
_lock = threading.Lock()


def secret_shaped(value: str) -> bool:
    """True for strings that look like a credential: long enough, key characters only, not a word."""
    return (
        MIN_SECRET_LEN <= len(value) <= MAX_SECRET_LEN
        and _CANDIDATE_RE.fullmatch(value) is not None
        and _WORDLIKE_RE.fullmatch(value) is None
    )


def register_secret(value: str | None) -> None:
    """Scrub `value` from every later log line. A value with other characters (a base64 secret with '/',
    '+' or '=') is registered as its credential-shaped pieces, which is how it shows up in tokenized lines."""
    if not value:
        return
    pieces = [value] if secret_shaped(value) else [p for p in _CANDIDATE_RE.findall(value) if secret_shaped(p)]
    if not pieces:
        return
    with _lock:
        for piece in pieces:
            if piece in _secrets:
                _secrets.move_to_end(piece)
                continue
            _secrets[piece] = None
            if len(_secrets) > MAX_SECRETS:
                _secrets.popitem(last=False)


def secret_count() -> int:
    return len(_secrets)


# Maximal runs of key characters long enough to be a secret (shorter runs never reach the callback).
_LONG_TOKEN_RE = re.compile(rf"[{_TOKEN_CHARS}]{{{MIN_SECRET_LEN},}}")


def _mask_token(match: re.Match) -> str:
    token = match.group()
    return MASK if token in _secrets else token


def scrub(text: str) -> str:
    if _secrets:
        text = _LONG_TOKEN_RE.sub(_mask_token, text)
    return _BOT_TOKEN_RE.sub(MASK, text)


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
        # Logs name users and pairs: owner-only, also when they were created earlier with a looser mode
        # (new files get 0600 from the process umask, see tradebot.private).
        for path in [log_file, *log_file.parent.glob(log_file.name + ".*")]:
            try:
                os.chmod(path, 0o600)
            except OSError:
                pass
    for handler in handlers:
        handler._tradebot = True
        handler.setFormatter(logging.Formatter(FORMAT))
        handler.addFilter(SecretFilter())
        root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # At DEBUG these log full requests, i.e. users' messages and signed URLs.
    for noisy in ("telebot", "urllib3", "ccxt"):
        logger = logging.getLogger(noisy)
        logger.setLevel(max(logging.INFO, root.level))
    # "Running job ... executed successfully" for every cycle of every pair drowns the operator's lines.
    logging.getLogger("apscheduler").setLevel(max(logging.WARNING, root.level))
