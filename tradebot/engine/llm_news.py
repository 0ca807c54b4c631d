"""News headlines for the LLM prompt from the RSS 2.0 / Atom feeds the operator lists (`[llm] news_feeds`).

Fetched at most every `refresh_seconds` (in a background thread: a cycle never waits for a feed), each feed
with a timeout; headlines are deduplicated by normalized title, kept only from the last `hours`, newest
first, with source and time. A feed that fails is logged once (until it works again) and skipped.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import re
import threading
import time
import urllib.request
import xml.etree.ElementTree as ET
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

ATOM = "{http://www.w3.org/2005/Atom}"
MAX_HEADLINES = 12
MAX_BYTES = 2_000_000


def _when(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    text = text.strip()
    try:
        d = email.utils.parsedate_to_datetime(text)  # RSS: RFC 822
    except (TypeError, ValueError):
        try:
            d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))  # Atom: RFC 3339
        except ValueError:
            return None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return d.astimezone(dt.UTC)


def parse_feed(data: bytes, source: str) -> list[tuple[dt.datetime, str, str]]:
    """(time UTC, source, title) of every dated item of an RSS or Atom document."""
    root = ET.fromstring(data)
    out = []
    if root.tag == f"{ATOM}feed":
        title = root.findtext(f"{ATOM}title") or source
        for e in root.iter(f"{ATOM}entry"):
            when = _when(e.findtext(f"{ATOM}updated") or e.findtext(f"{ATOM}published"))
            head = (e.findtext(f"{ATOM}title") or "").strip()
            if when and head:
                out.append((when, title.strip(), head))
        return out
    channel = root.find("channel")
    title = (channel.findtext("title") if channel is not None else None) or source
    for item in root.iter("item"):
        when = _when(item.findtext("pubDate") or item.findtext("{http://purl.org/dc/elements/1.1/}date"))
        head = (item.findtext("title") or "").strip()
        if when and head:
            out.append((when, title.strip(), head))
    return out


class NewsFeeds:
    def __init__(self, urls, hours: int = 6, refresh_seconds: int = 900, timeout: float = 5.0, clock=time.time):
        self.urls = list(urls)
        self.hours = hours
        self.refresh_seconds = refresh_seconds
        self.timeout = timeout
        self.clock = clock
        self._items: list[tuple[dt.datetime, str, str]] = []
        self._fetched_at: float | None = None
        self._lock = threading.Lock()
        self._refreshing = False
        self._dead: set[str] = set()

    def text(self) -> str:
        """The current headlines; starts a refresh in the background when they are due."""
        due = self._fetched_at is None or self.clock() - self._fetched_at >= self.refresh_seconds
        if due:
            with self._lock:
                start = not self._refreshing
                self._refreshing = True
            if start:
                threading.Thread(target=self._refresh_safely, name="llm-news", daemon=True).start()
        return self.render()

    def render(self) -> str:
        cutoff = dt.datetime.fromtimestamp(self.clock(), dt.UTC) - dt.timedelta(hours=self.hours)
        with self._lock:
            items = [i for i in self._items if i[0] >= cutoff]
        return "\n".join(f"{w:%Y-%m-%d %H:%M} [{src[:40]}] {title[:200]}" for w, src, title in items[:MAX_HEADLINES])

    def _refresh_safely(self) -> None:
        try:
            self.refresh()
        finally:
            with self._lock:
                self._refreshing = False

    def refresh(self) -> int:
        """Fetch every feed now; returns the number of headlines kept."""
        found = []
        for url in self.urls:
            host = urlsplit(url).hostname or url
            try:
                req = urllib.request.Request(url, headers={"User-Agent": "tradebot news"})
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    data = resp.read(MAX_BYTES)
                found += parse_feed(data, host)
            except Exception as exc:  # noqa: BLE001 - a dead feed is skipped
                if url not in self._dead:
                    self._dead.add(url)
                    log.warning("news feed %s skipped: %s", host, str(exc)[:200])
                continue
            self._dead.discard(url)
        seen, items = set(), []
        for when, src, title in sorted(found, key=lambda i: i[0], reverse=True):
            norm = re.sub(r"\W+", " ", title.lower()).strip()
            if norm not in seen:
                seen.add(norm)
                items.append((when, src, title))
        with self._lock:
            self._items = items
            self._fetched_at = self.clock()
        return len(items)
