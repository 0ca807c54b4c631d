"""A fake Telegram Bot API server on 127.0.0.1 for end-to-end tests.

Speaks the real wire protocol (enough of it for telebot): /bot<token>/<method> with parameters in the
query string, a form body (urlencoded or multipart) or JSON. Records every call, keeps the messages of
each chat, serves getUpdates with long polling, and can inject faults (429 with retry_after, 5xx,
dropped connections).

    fake = FakeTelegram(); fake.start()
    telebot.apihelper.API_URL = fake.api_url + "/bot{0}/{1}"
    fake.push_message(42, "/start", username="alice")
    replies = fake.wait_for_replies(42, 1, timeout=5)
"""

from __future__ import annotations

import email.parser
import email.policy
import itertools
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

BOT_ID = 999000


@dataclass
class Call:
    method: str
    params: dict
    at: float
    status: int = 200


@dataclass
class Sent:
    """A message the bot sent (or edited)."""

    chat_id: int
    message_id: int
    text: str
    reply_markup: dict | None
    at: float
    parse_mode: str | None = None
    reply_to: int | None = None  # reply_parameters.message_id: the user's message it answers
    deleted: bool = False
    edits: list[str] = field(default_factory=list)
    photo: bytes | None = None  # sendPhoto / editMessageMedia: the uploaded bytes
    document: bytes | None = None  # sendDocument
    filename: str | None = None
    media_edits: int = 0


@dataclass
class Fault:
    method: str  # "*" = any method
    kind: str  # "status" | "drop"
    status: int = 500
    retry_after: int | None = None
    remaining: int = 1


class FakeTelegram:
    def __init__(
        self, token: str = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz", username: str = "tradebot_test_bot"
    ):
        self.token = token
        self.username = username
        self.latency_ms = 0.0  # added to every Bot API call but getUpdates (benches model a network RTT)
        self.calls: list[Call] = []
        self.sent: list[Sent] = []  # every sendMessage / sendPhoto, in order
        self._sent_by_chat: dict[int, list[Sent]] = {}  # the same, per chat (benches wait on busy fakes)
        self.incoming: dict[tuple[int, int], dict] = {}  # (chat_id, message_id) -> user message
        self.deleted: list[tuple[int, int]] = []
        self.commands: list[dict] = []
        self.callback_answers: list[dict] = []
        self._updates: list[dict] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count] = {}
        self._faults: list[Fault] = []
        self.no_delete_rights: set[int] = set()  # group chats where the bot cannot delete messages
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ lifecycle

    def start(self) -> FakeTelegram:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def setup(self):
                super().setup()
                # headers and body go out as two writes: without NODELAY, Nagle + the client's delayed ACK
                # added ~40 ms to every Bot API call on loopback (set `latency_ms` to model a real RTT)
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_GET(self):
                fake._serve(self)

            def do_POST(self):
                fake._serve(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-telegram", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._cond:
            self._cond.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def api_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # ------------------------------------------------------------ test API: feeding updates

    def _next_message_id(self, chat_id: int) -> int:
        counter = self._message_ids.setdefault(chat_id, itertools.count(1))
        return next(counter)

    def push_message(
        self,
        user_id: int,
        text: str,
        chat_type: str = "private",
        username: str | None = None,
        first_name: str | None = None,
        chat_id: int | None = None,
    ) -> int:
        """Queues a user's text message; returns its message_id."""
        chat_id = user_id if chat_id is None else chat_id
        with self._cond:
            message_id = self._next_message_id(chat_id)
            chat = {"id": chat_id, "type": chat_type}
            if chat_type != "private":
                chat["title"] = "Test group"
            sender = {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}"}
            if username:
                sender["username"] = username
            message = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": chat,
                "from": sender,
                "text": text,
            }
            if text.startswith("/"):
                length = len(text.split()[0])
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
            self.incoming[(chat_id, message_id)] = message
            self._updates.append({"update_id": next(self._update_ids), "message": message})
            self._cond.notify_all()
            return message_id

    def push_callback(
        self,
        user_id: int,
        data: str,
        message_id: int | None = None,
        chat_id: int | None = None,
        username=None,
    ) -> str:
        """Simulates a press on an inline button of the bot's message `message_id` (default: the last one)."""
        chat_id = user_id if chat_id is None else chat_id
        with self._cond:
            if message_id is None:
                mine = self._sent_by_chat.get(chat_id, [])
                message_id = mine[-1].message_id if mine else 1
            original = next(
                (s for s in self._sent_by_chat.get(chat_id, []) if s.message_id == message_id), None
            )
            sender = {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"}
            if username:
                sender["username"] = username
            callback_id = f"cb{next(self._update_ids)}"
            message = {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private"},
                "from": {"id": BOT_ID, "is_bot": True, "first_name": "Bot", "username": self.username},
                "text": original.text if original else "",
            }
            self._updates.append(
                {
                    "update_id": next(self._update_ids),
                    "callback_query": {
                        "id": callback_id,
                        "from": sender,
                        "message": message,
                        "chat_instance": str(chat_id),
                        "data": data,
                    },
                }
            )
            self._cond.notify_all()
            return callback_id

    # ------------------------------------------------------------ test API: faults

    def inject_status(self, method: str, status: int, count: int = 1, retry_after: int | None = None) -> None:
        """The next `count` calls of `method` ("*" = any) answer with `status` (429 carries retry_after)."""
        with self._cond:
            self._faults.append(Fault(method, "status", status, retry_after, count))

    def inject_drop(self, method: str, count: int = 1) -> None:
        """The next `count` calls of `method` get their connection closed without an answer."""
        with self._cond:
            self._faults.append(Fault(method, "drop", remaining=count))

    def _take_fault(self, method: str) -> Fault | None:
        with self._cond:
            for fault in self._faults:
                if fault.remaining > 0 and fault.method in ("*", method):
                    fault.remaining -= 1
                    return fault
        return None

    # ------------------------------------------------------------ test API: observing

    def replies(self, chat_id: int) -> list[str]:
        with self._cond:
            return [s.text for s in self._sent_by_chat.get(chat_id, [])]

    def sent_to(self, chat_id: int) -> list[Sent]:
        with self._cond:
            return list(self._sent_by_chat.get(chat_id, []))

    def wait_for_replies(self, chat_id: int, n: int, timeout: float = 10.0, since: int = 0) -> list[str]:
        """Waits until chat `chat_id` has at least `since + n` bot messages; returns the ones after `since`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                texts = [s.text for s in self._sent_by_chat.get(chat_id, [])]
                if len(texts) >= since + n:
                    return texts[since:]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"chat {chat_id}: expected {since + n} replies, got {len(texts)}: {texts}"
                    )
                self._cond.wait(left)

    def wait_for(self, predicate, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                result = predicate()
                if result:
                    return result
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("condition not met")
                self._cond.wait(min(left, 0.2))

    def calls_of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def pending_updates(self) -> int:
        with self._cond:
            return len(self._updates)

    # ------------------------------------------------------------ HTTP

    def _params(self, handler: BaseHTTPRequestHandler) -> dict:
        parts = urlsplit(handler.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        ctype = handler.headers.get("Content-Type") or ""
        if body:
            if ctype.startswith("application/json"):
                data = json.loads(body.decode("utf-8"))
                if isinstance(data, dict):
                    params.update(data)
            elif ctype.startswith("application/x-www-form-urlencoded"):
                params.update(dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True)))
            elif ctype.startswith("multipart/form-data"):
                msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                    b"Content-Type: " + ctype.encode() + b"\r\n\r\n" + body
                )
                for part in msg.iter_parts():
                    name = part.get_param("name", header="content-disposition")
                    if part.get_filename():
                        data = part.get_payload(decode=True)
                        params[name] = {"filename": part.get_filename(), "size": len(data), "data": data}
                    else:
                        params[name] = part.get_payload(decode=True).decode("utf-8", "replace")
        for key in ("reply_markup", "commands", "allowed_updates", "scope", "media", "reply_parameters"):
            if isinstance(params.get(key), str):
                try:
                    params[key] = json.loads(params[key])
                except ValueError:
                    pass
        return params

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = urlsplit(handler.path).path
        try:
            _, bot_part, method = path.split("/", 2)
        except ValueError:
            return self._reply(handler, 404, {"ok": False, "error_code": 404, "description": "Not Found"})
        params = self._params(handler)
        if bot_part != f"bot{self.token}":
            return self._reply(handler, 401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        call = Call(method, params, time.monotonic())
        with self._cond:
            self.calls.append(call)
        if self.latency_ms and method != "getUpdates":
            time.sleep(self.latency_ms / 1000)
        fault = self._take_fault(method)
        if fault is not None:
            if fault.kind == "drop":
                call.status = 0
                handler.close_connection = True
                try:
                    handler.connection.shutdown(2)
                except OSError:
                    pass
                return None
            call.status = fault.status
            body = {"ok": False, "error_code": fault.status, "description": f"Injected {fault.status}"}
            if fault.status == 429:
                body["description"] = f"Too Many Requests: retry after {fault.retry_after or 1}"
                body["parameters"] = {"retry_after": fault.retry_after or 1}
            if fault.status >= 500 and fault.retry_after == -1:
                return self._reply_raw(handler, fault.status, b"<html>Bad Gateway</html>", "text/html")
            return self._reply(handler, fault.status, body)
        func = getattr(self, "_api_" + method, None)
        if func is None:
            return self._reply(
                handler, 404, {"ok": False, "error_code": 404, "description": "Not Found: method"}
            )
        try:
            result = func(params)
        except _ApiError as exc:
            call.status = exc.code
            return self._reply(
                handler, exc.code, {"ok": False, "error_code": exc.code, "description": exc.text}
            )
        return self._reply(handler, 200, {"ok": True, "result": result})

    def _reply(self, handler, status: int, body: dict) -> None:
        self._reply_raw(handler, status, json.dumps(body).encode(), "application/json")

    def _reply_raw(self, handler, status: int, data: bytes, ctype: str) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
        except OSError:
            pass

    # ------------------------------------------------------------ methods

    def _bot_user(self) -> dict:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Trade Bot", "username": self.username}

    def _api_getMe(self, params):
        return self._bot_user()

    def _api_getUpdates(self, params):
        offset = int(params.get("offset") or 0)
        timeout = float(params.get("timeout") or 0)
        limit = int(params.get("limit") or 100)
        deadline = time.monotonic() + timeout
        with self._cond:
            if offset:
                self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates:
                left = deadline - time.monotonic()
                if left <= 0 or self._server is None:
                    break
                self._cond.wait(left)
            return list(self._updates[:limit])

    def _message(self, chat_id: int, text: str, params: dict) -> dict:
        message_id = self._next_message_id(chat_id)
        sent = Sent(
            chat_id=chat_id,
            message_id=message_id,
            text=text,
            reply_markup=params.get("reply_markup") if isinstance(params.get("reply_markup"), dict) else None,
            at=time.monotonic(),
            parse_mode=params.get("parse_mode"),
            reply_to=(params.get("reply_parameters") or {}).get("message_id")
            if isinstance(params.get("reply_parameters"), dict) else None,
        )
        self.sent.append(sent)
        self._sent_by_chat.setdefault(chat_id, []).append(sent)
        self._cond.notify_all()
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": self._bot_user(),
            "text": text,
        }

    def _chat_id(self, params) -> int:
        try:
            return int(params["chat_id"])
        except (KeyError, ValueError):
            raise _ApiError(400, "Bad Request: chat_id is empty") from None

    def _api_sendMessage(self, params):
        chat_id = self._chat_id(params)
        text = params.get("text")
        if not text:
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        with self._cond:
            return self._message(chat_id, text, params)

    def _upload(self, params, name: str) -> dict:
        """A file sent as a multipart part (a file_id or URL string is not what the bot sends here)."""
        part = params.get(name)
        if not isinstance(part, dict) or not part.get("data"):
            raise _ApiError(400, f"Bad Request: there is no {name} in the request")
        return part

    def _api_sendPhoto(self, params):
        chat_id = self._chat_id(params)
        part = self._upload(params, "photo")
        width, height = png_size(part["data"])  # Telegram refuses what is not an image
        if len(params.get("caption") or "") > 1024:
            raise _ApiError(400, "Bad Request: message caption is too long")
        with self._cond:
            result = self._message(chat_id, params.get("caption") or "[photo]", params)
            self.sent[-1].photo = part["data"]
            result["photo"] = [{"file_id": f"photo{result['message_id']}", "file_unique_id": "p1",
                                "width": width, "height": height}]
            return result

    def _api_sendDocument(self, params):
        chat_id = self._chat_id(params)
        part = self._upload(params, "document")
        with self._cond:
            result = self._message(chat_id, params.get("caption") or "[document]", params)
            self.sent[-1].document = part["data"]
            self.sent[-1].filename = part["filename"]
            result["document"] = {"file_id": f"doc{result['message_id']}", "file_unique_id": "d1",
                                  "file_name": part["filename"], "file_size": part["size"]}
            return result

    def _api_editMessageMedia(self, params):
        chat_id = self._chat_id(params)
        message_id = int(params.get("message_id") or 0)
        media = params.get("media")
        if not isinstance(media, dict) or not str(media.get("media", "")).startswith("attach://"):
            raise _ApiError(400, "Bad Request: can't parse InputMedia")
        part = self._upload(params, media["media"][len("attach://"):])
        png_size(part["data"])
        with self._cond:
            for sent in self.sent:
                if sent.chat_id == chat_id and sent.message_id == message_id and sent.photo is not None:
                    if sent.photo == part["data"] and sent.reply_markup == params.get("reply_markup"):
                        raise _ApiError(400, "Bad Request: message is not modified")
                    sent.photo = part["data"]
                    sent.text = media.get("caption") or sent.text
                    sent.media_edits += 1
                    sent.reply_markup = (
                        params.get("reply_markup") if isinstance(params.get("reply_markup"), dict) else None
                    )
                    self._cond.notify_all()
                    return {"message_id": message_id, "date": int(time.time()),
                            "chat": {"id": chat_id, "type": "private"}, "photo": []}
        raise _ApiError(400, "Bad Request: message to edit not found")

    def _api_editMessageText(self, params):
        chat_id = self._chat_id(params)
        message_id = int(params.get("message_id") or 0)
        text = params.get("text") or ""
        with self._cond:
            for sent in self.sent:
                if sent.chat_id == chat_id and sent.message_id == message_id:
                    if sent.text == text and sent.reply_markup == params.get("reply_markup"):
                        raise _ApiError(400, "Bad Request: message is not modified")
                    sent.edits.append(sent.text)
                    sent.text = text
                    sent.reply_markup = (
                        params.get("reply_markup") if isinstance(params.get("reply_markup"), dict) else None
                    )
                    self._cond.notify_all()
                    return {
                        "message_id": message_id,
                        "date": int(time.time()),
                        "chat": {"id": chat_id, "type": "private"},
                        "text": text,
                    }
        raise _ApiError(400, "Bad Request: message to edit not found")

    def _api_deleteMessage(self, params):
        chat_id = self._chat_id(params)
        message_id = int(params.get("message_id") or 0)
        with self._cond:
            if (chat_id, message_id) in self.incoming:
                message = self.incoming.pop((chat_id, message_id))
                if message["chat"]["type"] != "private" and chat_id in self.no_delete_rights:
                    self.incoming[(chat_id, message_id)] = message
                    raise _ApiError(400, "Bad Request: message can't be deleted")
                self.deleted.append((chat_id, message_id))
                self._cond.notify_all()
                return True
            for sent in self.sent:
                if sent.chat_id == chat_id and sent.message_id == message_id and not sent.deleted:
                    sent.deleted = True
                    self.deleted.append((chat_id, message_id))
                    return True
        raise _ApiError(400, "Bad Request: message to delete not found")

    def _api_answerCallbackQuery(self, params):
        with self._cond:
            self.callback_answers.append(params)
            self._cond.notify_all()
        return True

    def _api_setMyCommands(self, params):
        with self._cond:
            self.commands.append(params)
        return True

    def incoming_exists(self, chat_id: int, message_id: int) -> bool:
        with self._cond:
            return (chat_id, message_id) in self.incoming


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's signature and IHDR chunk; _ApiError if it is not a PNG."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise _ApiError(400, "Bad Request: IMAGE_PROCESS_FAILED")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


class _ApiError(Exception):
    def __init__(self, code: int, text: str):
        super().__init__(text)
        self.code = code
        self.text = text
