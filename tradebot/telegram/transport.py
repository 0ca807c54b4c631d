"""A lean HTTP transport for the Bot API calls of chat replies (telebot's CUSTOM_REQUEST_SENDER).

Profiling a burst of chat replies showed requests + urllib3 as the largest share of a reply's CPU: preparing
the request, merging settings, the pool manager, and percent-encoding the message text a second time as it
sits in the query string. Twenty replies at once compete for one interpreter, so that CPU was latency.
Here every thread keeps one keep-alive `http.client` connection to the Bot API and sends the parameters
as a JSON body (as the Bot API accepts). Uploads (files) and proxied setups go through the requests
session as before. Errors are raised as requests' exception types, so the Sender's retries are unchanged.
"""

from __future__ import annotations

import http.client
import json
import os
import select
import socket
import ssl
import threading
from urllib.parse import urlencode, urlsplit

import requests


class _Response:
    """What telebot reads of a response: status_code, reason, text, json()."""

    __slots__ = ("status_code", "reason", "content")

    def __init__(self, status_code: int, reason: str, content: bytes):
        self.status_code = status_code
        self.reason = reason
        self.content = content

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content)


def _body(params) -> tuple[bytes, str]:
    """The parameters as a JSON object (None values left out), which the Bot API accepts like a form:
    json.dumps runs in C, while percent-encoding a reply's text byte by byte in Python was a tenth of a
    /help reply's CPU. Values JSON cannot hold fall back to the form encoding requests would use."""
    if not params:
        return b"", "application/x-www-form-urlencoded"
    values = {k: v for k, v in params.items() if v is not None}
    try:
        return json.dumps(values, ensure_ascii=False).encode(), "application/json"
    except (TypeError, ValueError):
        return urlencode(values, doseq=True).encode(), "application/x-www-form-urlencoded"


class BotApiTransport:
    """Callable as telebot's CUSTOM_REQUEST_SENDER(method, url, params=, files=, timeout=, proxies=)."""

    def __init__(self, base: str, session: requests.Session):
        self.session = session  # uploads, proxies and other origins
        parts = urlsplit(base)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.direct = parts.scheme in ("http", "https") and not session.proxies
        self._ssl = None
        if self.https and self.direct:
            verify = session.verify
            if verify is False:
                self._ssl = ssl._create_unverified_context()  # noqa: S323 - the operator turned checks off
            elif isinstance(verify, str) and os.path.isdir(verify):
                self._ssl = ssl.create_default_context(capath=verify)
            elif isinstance(verify, str):
                self._ssl = ssl.create_default_context(cafile=verify)
            else:
                self._ssl = ssl.create_default_context()
        self._local = threading.local()

    def __call__(self, method, url, params=None, files=None, timeout=None, proxies=None):
        if files or proxies or not self.direct or not url.startswith(self.origin + "/"):
            return self.session.request(method, url, params=params, files=files, timeout=timeout, proxies=proxies)
        connect_timeout, read_timeout = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        body, ctype = _body(params)
        headers = {"Content-Type": ctype, "Content-Length": str(len(body))}
        path = url[len(self.origin):]
        conn = self._connection(connect_timeout)
        try:
            if conn.sock is None:
                conn.connect()
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # no 40 ms Nagle stalls
            conn.sock.settimeout(read_timeout)
            conn.request("POST", path, body, headers)
            resp = conn.getresponse()
            content = resp.read()
        except TimeoutError as exc:
            self._drop()
            raise requests.exceptions.ReadTimeout(str(exc)) from None
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            raise requests.exceptions.ConnectionError(f"{type(exc).__name__}: {exc}") from None
        if resp.will_close:
            self._drop()
        return _Response(resp.status, resp.reason, content)

    def _connection(self, connect_timeout) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is not None and conn.sock is not None:
            # a kept-alive connection the server has closed meanwhile reads as ready (EOF): open a new one
            # instead of failing the call
            try:
                poller = select.poll()  # not select(): it fails on descriptors above 1023
                poller.register(conn.sock, select.POLLIN)
                readable = bool(poller.poll(0))
            except (OSError, ValueError):
                readable = True
            if readable:
                self._drop()
                conn = None
        if conn is None:
            if self.https:
                conn = http.client.HTTPSConnection(self.host, self.port, timeout=connect_timeout, context=self._ssl)
            else:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=connect_timeout)
            self._local.conn = conn
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            conn.close()
