"""The Bot API HTTP session: one connection-pool key per origin, not a CA-bundle stat per call."""

from __future__ import annotations

import requests.adapters

from tests.fakes.telegram import FakeTelegram
from tradebot.telegram.bot import _http_session

TOKEN = "123456:AAhttptesthttptesthttptesthttptes0"


def test_the_pool_key_is_built_once_per_origin(monkeypatch, tmp_path):
    fake = FakeTelegram(token=TOKEN).start()
    try:
        bundle = tmp_path / "ca.pem"
        bundle.write_text("")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        session = _http_session(fake.api_url)
        assert session.verify == str(bundle)
        stats = []
        real = requests.adapters.os.path.isdir
        monkeypatch.setattr(requests.adapters.os.path, "isdir", lambda p: stats.append(p) or real(p))
        url = f"{fake.api_url}/bot{TOKEN}/getMe"
        for _ in range(5):
            assert session.get(url, timeout=5).json()["ok"] is True
        assert stats == [str(bundle)]  # requests alone: one stat per call
    finally:
        fake.stop()


def _bot_through_transport(fake, monkeypatch):
    """A TeleBot wired as `tradebot run` wires it; every call that falls back to requests is recorded."""
    import telebot
    from telebot import apihelper

    from tradebot.telegram.bot import configure_api_url

    monkeypatch.setattr(apihelper, "API_URL", apihelper.API_URL)
    monkeypatch.setattr(apihelper, "FILE_URL", apihelper.FILE_URL)
    monkeypatch.setattr(apihelper, "session", apihelper.session)
    monkeypatch.setattr(apihelper, "CUSTOM_REQUEST_SENDER", apihelper.CUSTOM_REQUEST_SENDER)
    configure_api_url(fake.api_url)
    fallbacks = []
    real = apihelper.session.request
    monkeypatch.setattr(apihelper.session, "request", lambda *a, **k: fallbacks.append(a[1]) or real(*a, **k))
    return telebot.TeleBot(TOKEN, threaded=False), fallbacks


def test_replies_go_through_the_lean_transport_intact(monkeypatch):
    from telebot import types

    from tradebot.telegram.sender import Sender

    fake = FakeTelegram(token=TOKEN).start()
    try:
        bot, fallbacks = _bot_through_transport(fake, monkeypatch)
        sender = Sender(bot)
        text = "<b>BTC/USDT</b> +1.5 % & 'quotes' ü 🚀 a+b=c?x=1#frag"
        markup = types.InlineKeyboardMarkup()
        markup.add(types.InlineKeyboardButton("Refresh", callback_data="st:1"))
        for _ in range(3):  # the same kept-alive connection each time
            sent = sender.send(42, text, reply_markup=markup)
            assert sent[0].text == text
        assert fake.replies(42) == [text] * 3
        call = fake.calls_of("sendMessage")[-1]
        assert call.params["parse_mode"] == "HTML"
        assert call.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "st:1"
        sender.send_document(42, "trades.csv", b"a,b\n1,2\n")  # an upload: through requests
        assert fallbacks == [f"{fake.api_url}/bot{TOKEN}/sendDocument"]
    finally:
        fake.stop()


def test_transport_errors_keep_the_sender_retrying(monkeypatch):
    from tradebot.telegram.sender import Sender, SendFailed

    fake = FakeTelegram(token=TOKEN).start()
    try:
        bot, _ = _bot_through_transport(fake, monkeypatch)
        waits = []
        sender = Sender(bot, sleep=waits.append)
        fake.inject_status("sendMessage", 429, retry_after=3)
        fake.inject_drop("sendMessage")  # the connection closed without an answer
        fake.inject_status("sendMessage", 502)
        sender.send(7, "hello")
        assert fake.replies(7) == ["hello"]
        assert waits[0] == 3 and len(waits) == 3
        fake.inject_status("sendMessage", 403)
        try:
            sender.send(7, "blocked")
            raise AssertionError("a 403 must not be retried")
        except SendFailed as exc:
            assert exc.permanent
    finally:
        fake.stop()
    # the server is gone (a fresh transport: the kept-alive connection may outlive the fake's listener)
    bot, _ = _bot_through_transport(fake, monkeypatch)
    sender = Sender(bot, sleep=waits.append)
    waits.clear()
    try:
        sender.send(7, "nobody there")
        raise AssertionError("sending to a stopped server must fail")
    except SendFailed as exc:
        assert "ConnectionError" in str(exc) and not exc.permanent
    assert len(waits) == sender.max_attempts - 1


def test_a_keep_alive_connection_closed_by_the_server_is_replaced_not_failed():
    """The Bot API may close an idle kept-alive connection; the next call must open a new one, not fail."""
    import socket
    import threading
    import time

    import requests

    from tradebot.telegram.transport import BotApiTransport

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    connections = []

    def serve():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            connections.append(conn)
            conn.recv(65536)
            body = b'{"ok": true, "result": true}'
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            conn.close()  # ...and closes the "kept-alive" connection right after the answer

    threading.Thread(target=serve, daemon=True).start()
    base = f"http://127.0.0.1:{port}"
    session = requests.Session()
    session.trust_env = False
    transport = BotApiTransport(base, session)
    try:
        for _ in range(3):
            resp = transport("post", f"{base}/bot{TOKEN}/sendMessage", params={"chat_id": 1, "text": "hi"},
                             timeout=(5, 5))
            assert resp.status_code == 200 and resp.json()["result"] is True
            time.sleep(0.05)  # the server's close has arrived before the next call
        assert len(connections) == 3
    finally:
        listener.close()


def test_parameters_are_encoded_as_requests_encodes_them():
    import requests

    from tradebot.telegram.transport import BotApiTransport

    fake = FakeTelegram(token=TOKEN).start()
    try:
        transport = BotApiTransport(fake.api_url, requests.Session())
        resp = transport("get", f"{fake.api_url}/bot{TOKEN}/sendMessage",
                         params={"chat_id": 5, "text": "a&b=c ü", "message_thread_id": None}, timeout=(5, 5))
        assert resp.json()["ok"] is True
        call = fake.calls_of("sendMessage")[-1]
        assert call.params["text"] == "a&b=c ü" and "message_thread_id" not in call.params
    finally:
        fake.stop()
