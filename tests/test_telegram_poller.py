"""The long-polling loop through the inbox against the fake Bot API: a stop (or a leader change) neither
drops nor repeats an update; a new leader finishes what the previous one left."""

from __future__ import annotations

import telebot

from tests.fakes.telegram import FakeTelegram
from tradebot.models import TelegramUpdate
from tradebot.telegram.bot import configure_api_url
from tradebot.telegram.inbox import Inbox
from tradebot.telegram.polling import InboxPoller
from tradebot.telegram.sender import Sender

TOKEN = "123456:AApollertestpollertestpollertest0"


class PlainVault:
    def seal(self, text):
        return "x" + text

    def unseal(self, token):
        return token[1:]


def _poller(fake, holder, handled):
    configure_api_url(fake.api_url)
    bot = telebot.TeleBot(TOKEN, threaded=False)

    def submit(user_id, fn, arg):
        fn(arg)  # in line: the test sees the work done when the batch is
        return True

    return InboxPoller(bot, Inbox(PlainVault(), holder), submit, lambda u: handled.append(u.message.text),
                       Sender(bot, sleep=lambda s: None), poll_timeout=1, allowed_updates=["message"])


def test_a_restart_handles_every_update_once_from_the_stored_offset(database):
    fake = FakeTelegram(token=TOKEN).start()
    try:
        handled: list[str] = []
        first = _poller(fake, "a", handled)
        for i in range(5):
            fake.push_message(7, f"/n{i}")
        first.start()
        fake.wait_for(lambda: len(handled) == 5, timeout=10)
        first.stop()
        fake.push_message(7, "/after-stop")  # arrives while no one polls
        second = _poller(fake, "b", handled)
        second.start()
        fake.wait_for(lambda: len(handled) == 6, timeout=10)
        second.stop()
        assert handled == [f"/n{i}" for i in range(5)] + ["/after-stop"]
        offsets = [int(c.params.get("offset") or 0) for c in fake.calls_of("getUpdates")]
        assert 7 in offsets  # the second poller asked from the stored offset (6 updates so far)
        assert TelegramUpdate.select().where(TelegramUpdate.handled_at.is_null()).count() == 0
    finally:
        fake.stop()


def test_updates_fetched_but_not_recorded_are_fetched_again(database):
    """A leader killed between getUpdates and the inbox write: Telegram was never told (no higher offset
    was sent), so the next leader gets them again."""
    fake = FakeTelegram(token=TOKEN).start()
    try:
        configure_api_url(fake.api_url)
        fake.push_message(7, "/lost?")
        assert len(telebot.TeleBot(TOKEN, threaded=False).get_updates(offset=None, timeout=1)) == 1  # the dead leader
        handled: list[str] = []
        poller = _poller(fake, "b", handled)
        poller.start()
        fake.wait_for(lambda: handled, timeout=10)
        poller.stop()
        assert handled == ["/lost?"]
    finally:
        fake.stop()


def test_a_new_leader_handles_what_was_left_and_tells_about_the_interrupted_one(database):
    fake = FakeTelegram(token=TOKEN).start()
    try:
        dead = Inbox(PlainVault(), "dead")
        update = {"update_id": 40, "message": {"message_id": 1, "date": 1700000000,
                                               "chat": {"id": 7, "type": "private"},
                                               "from": {"id": 7, "is_bot": False, "first_name": "A"},
                                               "text": "/addpair BTC 100"}}
        queued = {**update, "update_id": 41, "message": {**update["message"], "message_id": 2, "text": "/status"}}
        dead.record([update, queued])
        assert dead.start(40)  # the dead leader was handling it
        handled: list[str] = []
        poller = _poller(fake, "new", handled)
        poller.start()
        fake.wait_for(lambda: handled and fake.replies(7), timeout=10)
        poller.stop()
        assert handled == ["/status"]  # the queued one is handled, the interrupted one is not run again
        [notice] = fake.replies(7)
        assert fake.sent_to(7)[0].reply_to == 1  # it quotes the interrupted message
        assert "restarted while it was handling your /addpair command" in notice and "BTC" not in notice
        assert TelegramUpdate.select().where(TelegramUpdate.handled_at.is_null()).count() == 0
        assert int(fake.calls_of("getUpdates")[0].params["offset"]) == 42
    finally:
        fake.stop()
