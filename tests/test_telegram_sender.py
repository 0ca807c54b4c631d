"""The outgoing path: 429 retry_after, 5xx and network retries, splitting; and the per-user executor."""

from __future__ import annotations

import threading
import time

import pytest
import requests
from telebot import apihelper

from tradebot.telegram.bot import SerialExecutor
from tradebot.telegram.sender import Sender, SendFailed


class FakeResponse:
    status_code = 502
    text = "bad gateway"
    reason = "Bad Gateway"


def api_error(code, retry_after=None):
    body = {"ok": False, "error_code": code, "description": f"error {code}"}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return apihelper.ApiTelegramException("sendMessage", FakeResponse(), body)


class ScriptedBot:
    def __init__(self, *failures):
        self.failures = list(failures)
        self.sent = []

    def send_message(self, chat_id, text, **kw):
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append((chat_id, text))
        return len(self.sent)


def make(bot):
    sleeps = []
    return Sender(bot, sleep=sleeps.append, base_delay=0.5), sleeps


def test_429_waits_retry_after_then_delivers():
    bot = ScriptedBot(api_error(429, retry_after=7))
    sender, sleeps = make(bot)
    sender.send(1, "hi")
    assert sleeps == [7.0] and bot.sent == [(1, "hi")]


def test_5xx_and_network_errors_back_off_and_retry():
    bot = ScriptedBot(
        api_error(502),
        requests.exceptions.ConnectionError("reset"),
        apihelper.ApiHTTPException("sendMessage", FakeResponse()),
        requests.exceptions.ReadTimeout(),
    )
    sender, sleeps = make(bot)
    sender.send(1, "hi")
    assert len(sleeps) == 4 and bot.sent == [(1, "hi")]
    assert sleeps[1] > sleeps[0] * 1.2  # exponential


def test_permanent_errors_and_giving_up():
    sender, sleeps = make(ScriptedBot(api_error(403)))
    with pytest.raises(SendFailed) as info:
        sender.send(1, "hi")
    assert info.value.permanent and sleeps == []
    sender, sleeps = make(ScriptedBot(*[api_error(500)] * 10))
    with pytest.raises(SendFailed) as info:
        sender.send(1, "hi")
    assert not info.value.permanent and len(sleeps) == sender.max_attempts - 1


def test_long_text_is_split():
    bot = ScriptedBot()
    sender, _ = make(bot)
    text = "\n".join(f"line {i} " + "x" * 50 for i in range(300))
    sender.send(1, text)
    assert len(bot.sent) >= 4
    assert all(len(t) <= 4096 for _, t in bot.sent)
    assert "".join(t for _, t in bot.sent).replace("\n", "") == text.replace("\n", "")


def test_serial_executor_keeps_per_user_order_and_runs_users_in_parallel():
    ex = SerialExecutor(4)
    seen = {1: [], 2: []}
    started2 = threading.Event()

    def task(user, i):
        if user == 2:
            started2.set()
        if user == 1 and i == 0:
            assert started2.wait(5), "user 2 was blocked behind user 1"
        time.sleep(0.001)
        seen[user].append(i)

    for i in range(50):
        ex.submit(1, task, 1, i)
        ex.submit(2, task, 2, i)
    ex.shutdown(wait=True)
    deadline = time.time() + 5
    while (len(seen[1]) < 50 or len(seen[2]) < 50) and time.time() < deadline:
        time.sleep(0.01)
    assert seen[1] == list(range(50)) and seen[2] == list(range(50))
