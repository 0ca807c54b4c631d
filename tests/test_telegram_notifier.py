"""The outbox drain: at-least-once, in order, /notify respected, permanent failures not retried forever."""

from __future__ import annotations

import pytest

from tests.fixtures_telegram import RecordingSender
from tradebot import db as dbmod
from tradebot import events
from tradebot.models import Notification, User
from tradebot.telegram.notifier import MAX_ATTEMPTS, deliver_pending
from tradebot.telegram.sender import SendFailed


class FlakySender(RecordingSender):
    def __init__(self, failures):
        super().__init__()
        self.failures = list(failures)

    def send(self, chat_id, text, reply_markup=None, parse_mode="HTML"):
        if self.failures:
            raise self.failures.pop(0)
        return super().send(chat_id, text, reply_markup, parse_mode)


def test_in_order_and_marked_sent(database):
    u = User.create(telegram_id=42)
    for i in range(3):
        events.emit(u.id, "pair_error", {"symbol": f"S{i}/USDT", "message": "m", "needs_action": False})
    sender = RecordingSender()
    assert deliver_pending(sender) == 3
    assert [t.split("\n")[0] for t in sender.texts(42)] == [
        f"⚠️ <b>Problem with S{i}/USDT</b>" for i in range(3)
    ]
    assert Notification.select().where(Notification.sent_at.is_null()).count() == 0
    assert deliver_pending(sender) == 0


def test_transient_failure_keeps_the_event_and_the_order(database):
    u = User.create(telegram_id=42)
    first = events.emit(u.id, "breaker_reset", {"scope": "pair", "symbol": "A/B"})
    events.emit(u.id, "breaker_reset", {"scope": "pair", "symbol": "C/D"})
    sender = FlakySender([SendFailed("gave up", permanent=False)])
    assert deliver_pending(sender) == 0
    assert sender.texts(42) == []
    assert Notification.get_by_id(first.id).sent_at is None and Notification.get_by_id(first.id).attempts == 1
    assert deliver_pending(sender) == 2
    assert ["A/B" in sender.texts(42)[0], "C/D" in sender.texts(42)[1]] == [True, True]


def test_permanent_failure_and_blocked_or_muted_users(database):
    gone = User.create(telegram_id=1)
    muted = User.create(telegram_id=2, notify=False)
    blocked = User.create(telegram_id=3, status="blocked")
    events.emit(gone.id, "trade_opened", {"symbol": "A/B"})
    events.emit(muted.id, "trade_opened", {"symbol": "A/B"})
    events.emit(muted.id, "breaker_tripped", {"scope": "pair", "symbol": "A/B", "reason": "r", "until": "u"})
    events.emit(blocked.id, "pair_error", {"symbol": "A/B", "message": "m"})
    sender = FlakySender([SendFailed("403 bot was blocked by the user", permanent=True)])
    assert deliver_pending(sender) == 3
    assert len(sender.texts(2)) == 1 and "Circuit breaker" in sender.texts(2)[0]
    assert sender.texts(3) == []
    assert Notification.select().where(Notification.sent_at.is_null()).count() == 0
    assert MAX_ATTEMPTS > 1


def test_a_stop_does_not_wait_for_the_rest_of_a_batch(database):
    import threading

    u = User.create(telegram_id=42)
    for i in range(100):
        events.emit(u.id, "breaker_reset", {"scope": "pair", "symbol": f"S{i}/USDT"})
    stop = threading.Event()

    class SlowSender(RecordingSender):
        def send(self, chat_id, text, reply_markup=None, parse_mode="HTML"):
            out = super().send(chat_id, text, reply_markup, parse_mode)
            if len(self.texts(42)) == 3:
                stop.set()  # the stop lands while the first batch of 100 is being sent
            return out

    sender = SlowSender()
    done = deliver_pending(sender, should_stop=stop.is_set)
    assert done == 3 and len(sender.texts(42)) == 3
    assert Notification.select().where(Notification.sent_at.is_null()).count() == 97  # kept for later


# ---------------------------------------------------------------- issue 17: claims between leaders


class ClaimStealingSender(RecordingSender):
    """While leader A sends its first row, leader B runs a whole pass (two leaders at once)."""

    def __init__(self, during_first_send):
        super().__init__()
        self.during_first_send = during_first_send

    def send(self, chat_id, text, reply_markup=None, parse_mode="HTML"):
        hook, self.during_first_send = self.during_first_send, None
        if hook is not None:
            hook()
        return super().send(chat_id, text, reply_markup, parse_mode)


def test_two_leaders_never_send_one_row_and_a_dead_leaders_claim_expires(database):
    import datetime as dt

    from tradebot.models import utcnow
    from tradebot.telegram.notifier import CLAIM_SECONDS

    u = User.create(telegram_id=42)
    for i in range(3):
        events.emit(u.id, "breaker_reset", {"scope": "pair", "symbol": f"S{i}/USDT"})
    b = RecordingSender()
    a = ClaimStealingSender(lambda: deliver_pending(b, holder="leader-b"))
    deliver_pending(a, holder="leader-a")
    sent = a.texts(42) + b.texts(42)
    assert len(sent) == 3 and len(set(sent)) == 3  # each row once, by one of them
    assert len(a.texts(42)) == 1 and len(b.texts(42)) == 2  # A's row was claimed: B skipped it

    # a leader that claimed a row and died before sending it: after CLAIM_SECONDS another sends it
    row = events.emit(u.id, "breaker_reset", {"scope": "pair", "symbol": "LATE/USDT"})
    Notification.update(claimed_by="dead", claimed_at=utcnow()).where(Notification.id == row.id).execute()
    c = RecordingSender()
    assert deliver_pending(c, holder="leader-c") == 0 and c.texts(42) == []
    Notification.update(claimed_at=utcnow() - dt.timedelta(seconds=CLAIM_SECONDS + 1)).where(
        Notification.id == row.id).execute()
    assert deliver_pending(c, holder="leader-c") == 1 and "LATE/USDT" in c.texts(42)[0]


def test_events_made_during_the_daily_summaries_go_before_the_summaries_still_waiting(database):
    _events_before_summaries()


@pytest.mark.pg
def test_events_go_before_the_daily_summaries_on_postgres(pg_url):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    try:
        _events_before_summaries()
    finally:
        dbmod.close_database()


def _events_before_summaries():
    users = [User.create(telegram_id=100 + i) for i in range(3)]
    for u in users:
        events.emit(u.id, "daily_summary", {"pairs": [], "total_equity": "0", "total_pnl": "0"})
    events.emit(users[2].id, "pair_error", {"symbol": "SL/USDT", "message": "m", "needs_action": False})
    events.emit(users[0].id, "breaker_reset", {"scope": "pair", "symbol": "BR/USDT"})
    sender = RecordingSender()
    assert deliver_pending(sender, limit=2) == 2  # the two events, although made after the summaries
    assert "SL/USDT" in sender.texts(102)[0] and "BR/USDT" in sender.texts(100)[0]
    assert deliver_pending(sender) == 3
    assert [len(sender.texts(100 + i)) for i in range(3)] == [2, 1, 2]
    assert sender.texts(100)[1] == sender.texts(101)[0] == sender.texts(102)[1]  # the summaries, after
