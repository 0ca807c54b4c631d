"""The Telegram inbox (issue 17): updates recorded before they are handled, the offset in the database,
claims that keep two leaders from handling one update, and what a new leader does with what is left."""

from __future__ import annotations

import datetime as dt
import threading

import pytest

from tradebot import db as dbmod
from tradebot.models import TelegramUpdate, utcnow
from tradebot.telegram.inbox import Inbox
from tradebot.vault import Vault


@pytest.fixture
def vault(tmp_path):
    from tradebot.vault import generate_key_file

    generate_key_file(tmp_path / "secret.key")
    return Vault.load(tmp_path / "secret.key", env={})


def _msg(update_id: int, text: str, user: int = 42) -> dict:
    return {"update_id": update_id, "message": {
        "message_id": update_id, "date": 1700000000, "chat": {"id": user, "type": "private"},
        "from": {"id": user, "is_bot": False, "first_name": "A"}, "text": text}}


def _photo(update_id: int) -> dict:
    update = _msg(update_id, "")
    del update["message"]["text"]
    update["message"]["photo"] = []
    return update


def test_a_batch_is_recorded_once_encrypted_and_the_offset_follows_it(database, vault):
    inbox = Inbox(vault, "leader-a")
    assert inbox.offset() is None  # nothing yet: Telegram's earliest unconfirmed update
    secret = "/connect binance KEYKEYKEY SECRETSECRETSECRET"
    assert inbox.record([_msg(10, "/help"), _msg(11, secret), _photo(12)]) == {10, 11}
    assert inbox.offset() == 13
    stored = TelegramUpdate.get_by_id(11).payload
    assert "SECRETSECRETSECRET" not in stored and "KEYKEYKEY" not in stored
    assert TelegramUpdate.get_by_id(12).handled_at is not None  # not for us, but the offset passed it
    # the same batch again (a getUpdates that was not confirmed): nothing new to handle
    assert Inbox(vault, "leader-b").record([_msg(11, secret), _msg(12, "x")]) == set()
    assert TelegramUpdate.select().count() == 3
    assert TelegramUpdate.get_by_id(11).holder == "leader-a"


def test_start_claims_once_and_done_forgets_the_text(database, vault):
    inbox = Inbox(vault, "leader-a")
    inbox.record([_msg(1, "/connect bybit K S")])
    assert inbox.start(1) is True
    assert inbox.start(1) is False  # never handled twice
    inbox.done(1)
    row = TelegramUpdate.get_by_id(1)
    assert row.handled_at is not None and row.payload is None
    assert inbox.unfinished() == []


def test_a_new_leader_gets_what_was_left_and_the_old_one_can_no_longer_start_it(database, vault):
    old = Inbox(vault, "leader-a")
    old.record([_msg(1, "/status"), _msg(2, "/addpair BTC 100"), _msg(3, "/help")])
    assert old.start(2)  # under way when the leader died
    old.start(3)
    old.done(3)
    new = Inbox(vault, "leader-b")
    left = new.unfinished()
    assert [(uid, started) for uid, started, _ in left] == [(1, False), (2, True)]
    assert left[0][2]["message"]["text"] == "/status"
    assert old.start(1) is False  # the old leader (paused, not dead) cannot take it back
    assert new.start(1) is True


def test_offset_is_forgotten_after_a_week_of_silence(database, vault):
    inbox = Inbox(vault, "a")
    inbox.record([_msg(500, "/help")])
    assert inbox.offset() == 501
    TelegramUpdate.update(received_at=utcnow() - dt.timedelta(days=7)).execute()
    assert inbox.offset() is None  # Telegram may have restarted its numbering below 501


def test_prune_keeps_unhandled_rows_and_the_newest(database, vault):
    inbox = Inbox(vault, "a")
    inbox.record([_msg(i, "/help") for i in range(1, 6)])
    for i in (1, 2, 5):
        inbox.done(i)
    TelegramUpdate.update(handled_at=utcnow() - dt.timedelta(days=3)).where(
        TelegramUpdate.handled_at.is_null(False)).execute()
    assert inbox.prune() == 2
    assert sorted(r.update_id for r in TelegramUpdate.select()) == [3, 4, 5]
    assert inbox.offset() == 6


def test_a_fence_that_refuses_records_nothing(database, vault):
    def fence():
        raise RuntimeError("not the leader")

    with pytest.raises(RuntimeError):
        Inbox(vault, "a", fence).record([_msg(1, "/help")])
    assert TelegramUpdate.select().count() == 0


@pytest.mark.pg
def test_two_leaders_recording_the_same_batches_at_once_take_each_update_once(pg_url, vault):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    batches = [[_msg(i, f"/n{i}") for i in range(start, start + 20)] for start in range(1, 400, 20)]
    taken: dict[str, set[int]] = {"a": set(), "b": set()}
    barrier = threading.Barrier(2)

    def leader(name):
        inbox = Inbox(vault, name)
        barrier.wait()
        for batch in batches:
            taken[name] |= {uid for uid in inbox.record(batch) if inbox.start(uid)}
        dbmod.db.close()

    threads = [threading.Thread(target=leader, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not taken["a"] & taken["b"]
    assert taken["a"] | taken["b"] == set(range(1, 401))
    dbmod.close_database()
