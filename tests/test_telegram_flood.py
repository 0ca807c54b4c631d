"""Strangers flooding the bot cannot stall it: the real `run_forever` (telebot polling, worker pool, log
scrubber) against the fake Bot API, with 100 unregistered users sending 25 long /connect messages each."""

from __future__ import annotations

import threading
import time

import pytest

from tests.fakes.telegram import FakeTelegram
from tradebot import logging_setup

pytestmark = pytest.mark.slow

ADMIN = 900
# Ordinary words of six letters or more: the old scrubber registered every /connect argument, so these
# became *** in every later log line.
COMMON = ["market", "profit", "wallet", "bitcoin", "trading", "orders", "binance", "balance", "exchange", "session"]


def _flood_text(user: int, n: int) -> str:
    # 140 words, all distinct across messages (each a new "secret" for a scrubber that registers them)
    words = [f"{COMMON[i % len(COMMON)][:4]}{user}x{n}y{i}" for i in range(130)] + COMMON
    text = "/connect binance " + " ".join(words)
    return text[:1000]


@pytest.fixture
def running_bot(tmp_path):
    from tradebot.app import run_forever
    from tradebot.config import load_config
    from tradebot.vault import generate_key_file

    fake = FakeTelegram().start()
    (tmp_path / "config.toml").write_text(
        f"""
data_dir = "{tmp_path}"
[telegram]
token = "{fake.token}"
api_url = "{fake.api_url}"
admin_ids = [{ADMIN}]
access = "allowlist"
poll_timeout = 1
workers = 4
[trading]
default_interval_seconds = 86400
"""
    )
    cfg = load_config(tmp_path / "config.toml", env={})
    generate_key_file(cfg.key_file)
    stop = threading.Event()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", run_forever(cfg, stop)), daemon=True)
    thread.start()
    fake.wait_for(lambda: fake.calls_of("getUpdates"), timeout=30)
    yield fake, cfg
    stop.set()
    thread.join(30)
    fake.stop()
    assert not thread.is_alive() and result.get("rc") == 0


def test_a_flood_of_strangers_leaves_the_admin_answered_and_the_log_readable(running_bot):
    fake, cfg = running_bot
    fake.push_message(ADMIN, "/start")
    assert "Welcome" in fake.wait_for_replies(ADMIN, 1, timeout=15)[0]
    for n in range(25):
        for user in range(5000, 5100):
            fake.push_message(user, _flood_text(user, n))
    # the admin asks while the flood is still being worked off
    since = len(fake.replies(ADMIN))
    asked = time.monotonic()
    fake.push_message(ADMIN, "/help")
    reply = fake.wait_for_replies(ADMIN, 1, timeout=60, since=since)
    latency = time.monotonic() - asked
    assert "/addpair" in reply[0]
    # Generous for a loaded test machine, yet far below what a stall costs (the old code: minutes).
    assert latency < 1.0, f"admin waited {latency:.2f}s behind the flood"

    # Strangers got short refusals only: nothing registered with the scrubber, no word masked.
    fake.wait_for(lambda: not fake.pending_updates(), timeout=60)
    sample = _flood_text(5042, 7)
    assert logging_setup.scrub(sample) == sample
    for word in COMMON:
        assert logging_setup.scrub(f"the {word} is open") == f"the {word} is open"
    fake.wait_for(lambda: fake.replies(5000), timeout=30)
    refusals = fake.replies(5000)
    assert refusals and all("private" in r for r in refusals)
    assert not fake.calls_of("deleteMessage")  # in a private chat a stranger's message is left alone


def test_the_rate_limiter_forgets_quiet_senders():
    from tradebot.telegram.handlers import RateLimiter

    now = [0.0]
    limiter = RateLimiter(5, clock=lambda: now[0])
    for user in range(3 * RateLimiter.PRUNE_MIN):
        limiter.check(user)
        now[0] += 0.01  # 300 s in all: most of them have been quiet for a minute
    assert len(limiter._hits) <= 2 * RateLimiter.PRUNE_MIN
    assert limiter.check(3 * RateLimiter.PRUNE_MIN - 1)[0]
