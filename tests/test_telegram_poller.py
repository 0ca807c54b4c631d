"""The long-polling loop against the fake Bot API: a stop confirms exactly the updates it handled."""

from __future__ import annotations

import threading

import telebot

from tests.fakes.telegram import FakeTelegram
from tradebot.telegram.bot import Poller, configure_api_url

TOKEN = "123456:AApollertestpollertestpollertest0"


def _bot(fake):
    configure_api_url(fake.api_url)
    return telebot.TeleBot(TOKEN, threaded=False)


def test_a_stop_right_after_handling_a_batch_confirms_it_and_nothing_newer():
    fake = FakeTelegram(token=TOKEN).start()
    try:
        bot = _bot(fake)
        handled: list[str] = []
        poller = Poller(bot, poll_timeout=20, allowed_updates=["message"])
        stopped = threading.Event()

        def on_message(message):
            handled.append(message.text)
            # SIGTERM lands after this batch was handled, before the next getUpdates could confirm it
            poller.stopping.set()
            stopped.set()

        bot.register_message_handler(on_message, func=lambda m: True)
        fake.push_message(7, "/status")
        poller.start()
        assert stopped.wait(10)
        poller.stop()
        assert handled == ["/status"]
        assert fake.pending_updates() == 0  # confirmed: a restart does not answer it twice
        fake.push_message(7, "/help")  # after the stop: stays for the next start
        assert fake.pending_updates() == 1
        # the in-flight poll of a stop is not answered, and an idle stop sends no confirming call
        polls = len(fake.calls_of("getUpdates"))
        idle = Poller(bot, poll_timeout=20, allowed_updates=["message"])
        idle.sent_offset = bot.last_update_id + 1
        idle.stop()
        assert len(fake.calls_of("getUpdates")) == polls
        assert handled == ["/status"]
    finally:
        fake.stop()
