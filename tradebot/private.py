"""Files the bot writes are private to its user: database (with its WAL/SHM), logs, key, backups.

A umask of 077 makes every file created later 0600 (directories 0700), whatever the mode of the data
directory (a container volume is often 0755). Files that already exist keep their mode, so the known ones
are tightened explicitly."""

from __future__ import annotations

import os
from pathlib import Path

UMASK = 0o077


def restrict_umask() -> None:
    os.umask(UMASK)


def make_private(*paths: Path | str) -> None:
    for path in paths:
        try:
            if os.path.isfile(path):
                os.chmod(path, 0o600)
        except OSError:  # not ours, or gone meanwhile: nothing to tighten
            pass


def restrict_sqlite_files(database_url: str) -> None:
    """The SQLite database file and its -wal/-shm/-journal companions (no-op for PostgreSQL)."""
    from .db import parse_url

    try:
        parsed = parse_url(database_url)
    except ValueError:
        return
    if not parsed.is_sqlite or parsed.path in (None, ":memory:"):
        return
    make_private(*(parsed.path + suffix for suffix in ("", "-wal", "-shm", "-journal")))
