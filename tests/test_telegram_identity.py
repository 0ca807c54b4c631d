"""Who is who in the chat: usernames kept current and never ambiguous (issue 10.9), admin rights from the
config only (10.8), a newcomer's first command registers them (9.6, approval mode here; the open-mode
Flow 2 runs end to end in test_telegram_e2e.py)."""

from __future__ import annotations

from tests.fixtures_cli import tb
from tests.fixtures_telegram import ChatHarness, make_cfg, one
from tradebot import services
from tradebot.models import ExchangeCredential, User, UserConfig

ADMIN = 900


def test_a_renamed_user_is_found_by_the_new_name_and_the_old_name_moves_on(chat):
    chat.send(1, "/start", username="alice")
    chat.send(2, "/start", username="bob")
    # alice renames herself to carol; bob takes "alice" (Telegram lets a freed name be taken at once)
    chat.send(1, "/help", username="carol")
    chat.send(2, "/status", username="alice")
    chat.send(ADMIN, "/start")
    assert "blocked" in one(chat, ADMIN, "/block @alice").lower()
    assert User.get(User.telegram_id == 2).status == "blocked"
    assert User.get(User.telegram_id == 1).status == "active"  # the old first match would have hit her
    assert User.get(User.telegram_id == 1).username == "carol"


def test_names_are_written_only_when_they_change(chat):
    chat.send(1, "/start", username="alice", first_name="Alice")
    stamp = User.get(User.telegram_id == 1).updated_at
    chat.send(1, "/help", username="alice", first_name="Alice")
    chat.send(1, "hello", username="alice", first_name="Alice")
    assert User.get(User.telegram_id == 1).updated_at == stamp
    chat.send(1, "/help", username="alice2", first_name="Alice")
    assert User.get(User.telegram_id == 1).username == "alice2"


def test_an_ambiguous_username_is_refused_with_the_ids(chat):
    chat.send(1, "/start", username="sam")
    chat.send(2, "/start", username="other")
    User.update(username="Sam").where(User.telegram_id == 2).execute()  # a stale copy, say from a backup
    chat.send(ADMIN, "/start")
    for command in ("/block @sam", "/approve @sam", "/unblock @SAM"):
        reply = one(chat, ADMIN, command)
        assert "several users" in reply and "1" in reply and "2" in reply, reply
    assert User.select().where(User.status == "blocked").count() == 0


def test_cli_user_block_and_approve_refuse_an_ambiguous_username(initialized):
    cfg, data = initialized
    import sqlite3

    conn = sqlite3.connect(data / "tradebot.db")
    for tid in (11, 12):
        conn.execute("INSERT INTO users (telegram_id, username, status, is_admin, notify, created_at, updated_at) "
                     f"VALUES ({tid}, 'twin', 'active', 0, 1, '2026-01-01', '2026-01-01')")
    conn.execute("INSERT INTO users (telegram_id, username, status, is_admin, notify, created_at, updated_at) "
                 "VALUES (13, 'solo', 'active', 0, 1, '2026-01-01', '2026-01-01')")
    conn.commit()
    conn.close()
    for args in (("user", "@twin"), ("block", "@twin"), ("approve", "@TWIN")):
        res = tb("--config", str(cfg), "admin", *args)
        assert res.returncode == 1, res.stdout
        assert "several users" in res.stderr and "11" in res.stderr and "12" in res.stderr
        assert "Traceback" not in res.stderr
    res = tb("--config", str(cfg), "admin", "block", "@solo")
    assert res.returncode == 0 and "blocked 13" in res.stdout
    res = tb("--config", str(cfg), "admin", "approve", "@nobody")
    assert res.returncode == 1 and "no user @nobody" in res.stderr


def test_sync_admins_sets_and_resets_the_flag(database):
    User.create(telegram_id=5, status="active", is_admin=True)
    User.create(telegram_id=6, status="active", is_admin=False)
    assert services.sync_admins([6]) == 2
    assert {u.telegram_id: u.is_admin for u in User.select()} == {5: False, 6: True}
    assert services.sync_admins([6]) == 0


def test_a_former_admin_can_be_blocked_in_chat_after_a_restart(database):
    User.create(telegram_id=5, status="active", is_admin=True)  # was in admin_ids, removed since
    cfg = make_cfg(admin_ids=[ADMIN], rate_limit_per_minute=1000)
    services.sync_admins(cfg.telegram.admin_ids)  # what `tradebot run` does at start
    chat = ChatHarness(cfg)
    chat.send(ADMIN, "/start")
    assert "blocked" in one(chat, ADMIN, "/block 5").lower()
    assert User.get(User.telegram_id == 5).status == "blocked"


def test_approval_mode_first_command_registers_pending_and_asks_the_admins(database):
    cfg = make_cfg(admin_ids=[ADMIN], access="approval", rate_limit_per_minute=1000)
    chat = ChatHarness(cfg)
    chat.send(ADMIN, "/start")
    reply = one(chat, 42, "/connect binance abc123key xyz789secret true", username="newbie")
    assert "waiting for an admin's approval" in reply
    user = User.get(User.telegram_id == 42)
    assert user.status == "pending" and user.username == "newbie"
    assert ExchangeCredential.select().count() == 0  # nothing of the refused command was done
    asks = [t for c, t, _m in chat.sender.sent if c == ADMIN and "42" in t]
    assert len(asks) == 1
    # a second command: still waiting, the admins are not asked again
    assert "waiting" in one(chat, 42, "/addpair BTC/USDT 100")
    assert len([t for c, t, _m in chat.sender.sent if c == ADMIN and "42" in t]) == 1
    assert UserConfig.select().count() == 0


def test_open_mode_first_command_registers_and_runs(chat):
    reply = one(chat, 43, "/connect binance paper", username="fresh")
    assert reply.startswith("✅ Exchange Connected")
    user = User.get(User.telegram_id == 43)
    assert user.status == "active" and user.username == "fresh"
