"""Chat behaviour through the real Dispatcher + Services (no HTTP): robustness, access, admin, secrets."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
from decimal import Decimal

import pytest

from tests.fixtures_telegram import ChatHarness, make_cfg, one, plain, setup_user
from tradebot import logging_setup
from tradebot.models import ExchangeCredential, Position, Trade, User, UserConfig, UserState, utcnow

D = Decimal








# ---------------------------------------------------------------- robustness


@pytest.mark.parametrize(
    "text, command",
    [
        ("/connect", "connect"),
        ("/connect binance onlykey", "connect"),
        ("/addpair", "addpair"),
        ("/addpair BTC/USDT", "addpair"),
        ("/removepair", "removepair"),
        ("/set BTC/USDT stop_loss", "set"),
        ("/notify", "notify"),
        ("/notify maybe", "notify"),
        ("/reset", "reset"),
        ("/status a b c", "status"),
        ("/mystats extra", "mystats"),
        ("/listpairs extra", "listpairs"),
    ],
)
def test_missing_or_invalid_arguments_answer_with_usage_and_example(chat, text, command):
    setup_user(chat)
    reply = one(chat, 1, text)
    assert f"Usage: /{command}" in reply
    assert "Example: /" in reply


@pytest.mark.parametrize(
    "amount, problem",
    [
        ("-5", "positive"),
        ("0", "greater than 0"),
        ("1e309", "no exponent"),
        ("nan", "normal number"),
        ("inf", "normal number"),
        ("1,000", "without separators"),
        ("5", "at least $10.00"),
        ("99999999999", "at most"),
        ("12abc", "must be a number"),
        ("1" * 60, "too long"),
    ],
)
def test_bad_numbers_are_refused_clearly(chat, amount, problem):
    setup_user(chat)
    reply = one(chat, 1, f"/addpair BTC/USDT {amount}")
    assert problem in reply
    assert "Usage: /addpair" in reply
    assert UserConfig.select().count() == 0


def test_overlong_input_is_refused(chat):
    setup_user(chat)
    assert "too long" in one(chat, 1, "/status " + "x" * 5000)
    assert "too long" in one(chat, 1, "/status " + "x" * 500)


def test_unknown_command_points_to_help(chat):
    setup_user(chat)
    assert "/help" in one(chat, 1, "/frobnicate")
    assert "/help" in one(chat, 1, "hello there")


def test_user_text_is_escaped(chat):
    chat.send(1, "/start", first_name="<b>Bob</b> & *x*_")
    reply = chat.send(1, "/start", first_name="<b>Bob</b> & *x*_")[0]
    assert "&lt;b&gt;Bob&lt;/b&gt; &amp; *x*_" in reply
    assert "<b>Bob" not in reply


def test_unknown_symbol_text_is_escaped_and_close_matches_offered(chat):
    setup_user(chat)
    reply = chat.send(1, "/addpair BTCUSD 100")[0]
    assert "BTC/USDT" in reply and "Did you mean" in reply
    reply = chat.send(1, "/addpair <b>x 100")[0]
    assert "<b>x" not in reply and "&lt;b&gt;x" in reply


@pytest.mark.parametrize("text", ["btcusdt", "BTC-USDT", "btc/usdt", "btc_usdt"])
def test_symbol_spellings_become_the_market_symbol(chat, text):
    setup_user(chat)
    assert "Symbol: BTC/USDT" in one(chat, 1, f"/addpair {text} 100")
    assert "BTC/USDT" in one(chat, 1, f"/status {text}")


def test_long_replies_are_split_under_4096(database):
    from tests.fixtures_telegram import StubHub

    cfg = make_cfg(admin_ids=[900], rate_limit_per_minute=1000)
    cfg = dataclasses.replace(cfg, trading=dataclasses.replace(cfg.trading, max_pairs_per_user=40))
    symbols = [f"COIN{i}/USDT" for i in range(30)]
    chat = ChatHarness(cfg, hub=StubHub(symbols))
    chat.send(1, "/start")
    chat.send(1, "/connect binance paper")
    for symbol in symbols:
        assert "Added" in one(chat, 1, f"/addpair {symbol} 100")
    replies = chat.send(1, "/config")
    assert len(replies) >= 2
    assert all(len(r) <= 4096 for r in replies)
    assert "".join(replies).count("stop_loss: 2%") == len(symbols)
    assert len(chat.send(1, "/status")) == 1


def test_internal_error_gets_apology_with_reference_in_log(chat, monkeypatch, caplog):
    setup_user(chat, pairs=[("BTC/USDT", 100)])

    def boom(*a, **k):
        raise RuntimeError("database on fire")

    monkeypatch.setattr(chat.services, "list_pairs", boom)
    caplog.set_level(logging.ERROR)
    reply = one(chat, 1, "/listpairs")
    assert reply.startswith("😔 Sorry")
    ref = reply.rsplit(" ", 1)[-1]
    assert re.fullmatch(r"[0-9a-f]{10}", ref)
    assert any(ref in r.getMessage() for r in caplog.records)
    assert "database on fire" not in reply


def test_rate_limit_answers_a_flood_once(database):
    chat = ChatHarness(make_cfg(rate_limit_per_minute=3))
    got = [chat.send(1, "/help") for _ in range(8)]
    answered = [g for g in got if g]
    assert len(answered) == 4
    assert "too fast" in answered[-1][0]
    assert chat.send(2, "/help"), "another user is not affected"


# ---------------------------------------------------------------- pairs and trading


def test_addpair_requires_connect_first(chat):
    chat.send(1, "/start")
    reply = one(chat, 1, "/addpair BTC/USDT 100")
    assert "Connect an exchange first" in reply and "/connect binance" in reply


def test_addpair_with_two_exchanges_needs_the_exchange(chat):
    setup_user(chat)
    chat.send(1, "/connect bybit paper")
    assert "Add the exchange" in one(chat, 1, "/addpair BTC/USDT 100")
    assert "Exchange: bybit" in one(chat, 1, "/addpair BTC/USDT 100 bybit")
    assert "Exchange: binance" in one(chat, 1, "/addpair BTC/USDT 100 binance")
    assert "already have BTC/USDT on binance" in one(chat, 1, "/addpair btcusdt 50 binance")
    # the same symbol on two exchanges: symbol commands ask which one
    reply = one(chat, 1, "/status BTC/USDT")
    assert "on bybit and binance" in reply and "/status BTC/USDT bybit" in reply
    assert "🚀 Trading Started: BTC/USDT" == one(chat, 1, "/start_trading BTC/USDT bybit")
    configs = {c.exchange: c.is_trading for c in UserConfig.select()}
    assert configs == {"binance": False, "bybit": True}
    assert "(bybit)" in one(chat, 1, "/status")


def test_start_trading_without_pairs(chat):
    setup_user(chat)
    assert "no pairs yet" in one(chat, 1, "/start_trading")
    assert "None of your pairs is trading" in one(chat, 1, "/stop_trading")


def test_stop_trading_all_asks_for_confirmation(chat):
    setup_user(chat, pairs=[("BTC/USDT", 100), ("ETH/USDT", 100)])
    chat.send(1, "/start_trading")
    assert one(chat, 1, "/stop_trading").startswith("❓ Stop trading all 2 running pairs")
    assert UserConfig.select().where(UserConfig.is_trading).count() == 2
    *_pick_list, (label, data), _cancel = chat.buttons(1)  # the pick list (one pair each) comes first
    assert label == "⏸️ Yes, stop all"
    edits, answers = chat.press(1, data)
    assert plain(edits[0][2]) == "⏸️ Trading Stopped\n2 pairs stopped."
    assert UserConfig.select().where(UserConfig.is_trading).count() == 0


def test_removepair_confirmation_and_refusal_while_active(chat):
    setup_user(chat, pairs=[("SOL/USDT", 300)])
    chat.send(1, "/start_trading SOL/USDT")
    assert one(chat, 1, "/removepair SOL/USDT") == (
        "⚠️ Cannot remove SOL/USDT while trading is active.\nUse /stop_trading SOL/USDT first."
    )
    chat.send(1, "/stop_trading SOL/USDT")
    assert one(chat, 1, "/removepair sol-usdt").startswith("❓ Remove SOL/USDT (binance)?")
    (_, yes), (_, no) = chat.buttons(1)
    chat.press(1, no)
    assert UserConfig.select().count() == 1
    edits, _ = chat.press(1, yes)
    assert plain(edits[0][2]) == "🗑️ Trading Pair Removed: SOL/USDT"
    assert UserConfig.select().count() == 0
    edits, answers = chat.press(1, yes)
    assert "no longer exists" in answers[0][1]


def test_status_buttons_start_and_stop(chat):
    setup_user(chat, pairs=[("BTC/USDT", 100)])
    one(chat, 1, "/status")
    [(label, data), refresh] = chat.buttons(1)
    assert label == "▶️ Start BTC/USDT" and refresh == ("🔄 Refresh", "rfs:1")
    edits, answers = chat.press(1, data)
    assert "🟢 Running" in plain(edits[0][2])
    assert answers[0][1] == "🚀 Trading Started: BTC/USDT"
    assert [b.text for row in edits[0][3].keyboard for b in row] == ["⏸️ Stop BTC/USDT", "🔄 Refresh"]


def test_set_validates_ranges(chat):
    setup_user(chat, pairs=[("BTC/USDT", 100)])
    assert one(chat, 1, "/set BTC/USDT stop_loss 3") == "⚙️ BTC/USDT (binance): stop_loss 2% → 3%"
    assert one(chat, 1, "/set btcusdt tp 7.5%").endswith("take_profit 5% → 7.5%")
    assert one(chat, 1, "/set BTC/USDT max_losses 3").endswith("max_losses 5 → 3")
    assert "between 0.1 and 50" in one(chat, 1, "/set BTC/USDT sl 80")
    assert "between 0.1 and 50" in one(chat, 1, "/set BTC/USDT sl 0")
    assert "whole number" in one(chat, 1, "/set BTC/USDT max_losses 2.5")
    assert "futures pairs only" in one(chat, 1, "/set BTC/USDT leverage 10")  # spot has no leverage
    assert "positive" in one(chat, 1, "/set BTC/USDT sl -1")
    config = UserConfig.get()
    assert config.stop_loss_percent == D("3") and config.take_profit_percent == D("7.5")
    assert config.max_consecutive_losses == 3


def test_reset_a_tripped_breaker(chat):
    setup_user(chat, pairs=[("BTC/USDT", 100)])
    assert "not tripped" in one(chat, 1, "/reset BTC/USDT")
    UserState.update(
        breaker_until=utcnow() + dt.timedelta(hours=1),
        breaker_reason="3 losses in a row",
        consecutive_losses=3,
    ).execute()
    chat.send(1, "/start_trading")
    status = one(chat, 1, "/status")
    assert "⏸️ Paused" in status and "/reset BTC/USDT" in status
    assert one(chat, 1, "/reset btcusdt").startswith("🔄 Circuit breaker reset: BTC/USDT")
    state = UserState.get()
    assert state.breaker_until is None and state.consecutive_losses == 0


def test_notify_on_off(chat):
    setup_user(chat)
    assert one(chat, 1, "/notify off").startswith("🔕")
    assert User.get().notify is False
    assert one(chat, 1, "/notify on").startswith("🔔")
    assert User.get().notify is True


def test_mystats_shows_real_statistics(chat):
    setup_user(chat, pairs=[("BTC/USDT", 1000), ("ETH/USDT", 500)])
    user = User.get()
    btc, eth = UserConfig.select().order_by(UserConfig.id)

    def trade(config, side, pnl=None, fee="1"):
        Trade.create(
            user=user.id,
            config=config.id,
            exchange="binance",
            symbol=config.symbol,
            side=side,
            amount=D("1"),
            price=D("100"),
            cost=D("100"),
            fee=D(fee),
            pnl=None if pnl is None else D(pnl),
        )

    trade(btc, "buy")
    trade(btc, "sell", "30")
    trade(btc, "buy")
    trade(btc, "sell", "-10")
    trade(eth, "buy", fee="0.5")
    trade(eth, "sell", "5", fee="0.5")
    text = one(chat, 1, "/mystats")
    btc_block, eth_block, total = text.split("\n\n")[1:]
    assert btc_block.splitlines() == [
        "BTC/USDT (binance)",
        "Trades: 4 fills, 2 closed (1 won, 1 lost)",
        "Win rate: 50.00%",
        "Realized PnL: $20.00",
        "Best: $30.00 | Worst: -$10.00",
        "Fees: $4.00",
    ]
    assert "Realized PnL: $5.00" in eth_block and "Win rate: 100.00%" in eth_block
    assert total.splitlines() == [
        "Total",
        "Trades: 6 fills, 3 closed (2 won, 1 lost)",
        "Win rate: 66.67%",
        "Realized PnL: $25.00",
        "Best: $30.00 | Worst: -$10.00",
        "Fees: $5.00",
    ]


def test_position_shows_open_positions(chat):
    setup_user(chat, pairs=[("BTC/USDT", 1000), ("ETH/USDT", 500)])
    assert one(chat, 1, "/position") == "📭 No open positions."
    btc = UserConfig.get(UserConfig.symbol == "BTC/USDT")
    Position.create(
        user=btc.user_id,
        config=btc.id,
        exchange="binance",
        symbol="BTC/USDT",
        amount=D("0.00999"),
        entry_price=D("50000"),
        cost_basis=D("500.5"),
        stop_loss_price=D("49000"),
        take_profit_price=D("52500"),
    )
    UserState.update(last_price=D("51000")).where(UserState.config == btc.id).execute()
    text = one(chat, 1, "/position BTC/USDT")
    assert "BTC/USDT (binance) LONG" in text
    assert "Amount: 0.00999 @ 50000" in text
    assert "Unrealized PnL: $8.99 (1.80%)" in text
    assert "Stop-loss: 49000 | Take-profit: 52500" in text
    assert one(chat, 1, "/position ETH/USDT") == "📭 No open positions."


# ---------------------------------------------------------------- secrets


def test_connect_deletes_the_message_and_stores_only_ciphertext(chat):
    chat.send(1, "/start")
    reply = one(chat, 1, "/connect binance myapikey1234567 mysecret7654321 true")
    assert (1, chat.last_message_id) in chat.sender.deleted
    assert "✅ Exchange Connected" in reply and "deleted your message" in reply
    assert "myap…4567" in reply and "mysecret7654321" not in reply
    cred = ExchangeCredential.get()
    assert cred.network == "testnet"
    assert "mysecret7654321" not in cred.secret_enc and "myapikey1234567" not in cred.api_key_enc
    assert chat.vault.decrypt(cred.secret_enc) == "mysecret7654321"
    assert logging_setup.scrub("x mysecret7654321 y") == "x *** y"
    assert "myap…4567" in one(chat, 1, "/config")


def test_bad_keys_are_refused_and_not_stored(chat):
    chat.send(1, "/start")
    reply = one(chat, 1, "/connect binance badkey123456 badsecret123456 false")
    assert "rejected" in reply
    assert (1, chat.last_message_id) in chat.sender.deleted
    assert ExchangeCredential.select().count() == 0


def test_connect_says_so_when_the_message_cannot_be_deleted(chat):
    chat.send(1, "/start")
    chat.sender.fail_delete = True
    assert "delete it yourself" in one(chat, 1, "/connect bybit key123456789 secret123456789 live")


def test_connect_in_a_group_is_refused(chat):
    chat.send(1, "/start")
    reply = one(chat, 1, "/connect binance key123456789 secret123456789", chat_type="supergroup", chat_id=-50)
    assert "Message me directly" in reply and "I deleted the message" in reply
    assert (-50, chat.last_message_id) in chat.sender.deleted
    assert ExchangeCredential.select().count() == 0
    # paper mode has no secret: fine anywhere
    assert "Exchange Connected" in one(chat, 1, "/connect binance paper", chat_type="group", chat_id=-50)


def test_connect_while_trading_is_refused(chat):
    setup_user(chat, pairs=[("BTC/USDT", 100)])
    chat.send(1, "/start_trading")
    assert "Stop trading on binance first" in one(
        chat, 1, "/connect binance key123456789 secret123456789 true"
    )


# ---------------------------------------------------------------- access and admin


def test_approval_mode(database):
    chat = ChatHarness(make_cfg(access="approval", admin_ids=[900], rate_limit_per_minute=1000))
    assert one(chat, 900, "/start").startswith("👋 Welcome!")
    assert one(chat, 5, "/start", username="newbie").startswith("⏳")
    request = plain(chat.sender.texts(900)[-1])
    assert "Approval request" in request and "@newbie" in request
    assert [b for b, _ in chat.buttons(900)] == ["✅ Approve", "⛔ Reject"]
    assert one(chat, 5, "/status").startswith("⏳")
    # a pending user cannot press the admin's button
    edits, answers = chat.press(5, "adm:ok:5")
    assert User.get(User.telegram_id == 5).status == "pending"
    edits, answers = chat.press(900, chat.buttons(900)[0][1], chat_id=900)
    assert User.get(User.telegram_id == 5).status == "active"
    from tradebot.telegram.notifier import deliver_pending

    assert deliver_pending(chat.sender) == 1  # the approval goes through the outbox (CLI approvals too)
    assert "approved" in chat.sender.texts(5)[-1]
    assert "no pairs yet" in one(chat, 5, "/status")


def test_rejected_and_blocked_users_get_one_short_refusal(database):
    chat = ChatHarness(make_cfg(access="approval", admin_ids=[900], rate_limit_per_minute=1000))
    chat.send(900, "/start")
    chat.send(6, "/start")
    chat.press(900, "adm:no:6", chat_id=900)
    assert User.get(User.telegram_id == 6).status == "blocked"
    for text in ("/status", "/help", "/start", "/addpair BTC/USDT 100", "hello", "/nonsense"):
        assert chat.send(6, text) == ["⛔ Access denied."]


def test_allowlist_mode(database):
    chat = ChatHarness(
        make_cfg(access="allowlist", allowlist=[7], admin_ids=[900], rate_limit_per_minute=1000)
    )
    assert one(chat, 8, "/start") == "⛔ This bot is private."
    assert one(chat, 8, "/status") == "⛔ This bot is private."
    assert User.select().where(User.telegram_id == 8).count() == 0
    assert one(chat, 7, "/start").startswith("👋 Welcome!")


def test_admin_commands(chat):
    setup_user(chat, 1, pairs=[("BTC/USDT", 100)])
    setup_user(chat, 2, pairs=[("ETH/USDT", 100)])
    chat.send(1, "/start_trading")
    chat.send(2, "/start_trading")
    chat.send(900, "/start")
    # not for ordinary users
    assert "Unknown command" in one(chat, 1, "/users")
    assert "Unknown command" in one(chat, 1, "/stopall")
    edits, answers = chat.press(1, "adm:stopall")
    assert "admins only" in answers[0][1]
    assert UserConfig.select().where(UserConfig.is_trading).count() == 2
    users = one(chat, 900, "/users")
    assert "👥 Users (3)" in users and "1 pairs, 1 trading" in users
    assert "0 pairs, 0 trading" in users  # the admin: no pairs, still listed
    assert "No blocked users." in one(chat, 900, "/users blocked")
    active = one(chat, 900, "/users active")
    assert "Active users (3)" in active and active.count("pairs,") == 3
    assert "Emergency stop" in one(chat, 900, "/stopall")
    assert UserConfig.select().where(UserConfig.is_trading).count() == 2
    edits, _ = chat.press(900, chat.buttons(900)[0][1], chat_id=900)
    assert plain(edits[0][2]) == "🛑 Emergency stop done: 2 pairs stopped."
    assert UserConfig.select().where(UserConfig.is_trading).count() == 0
    # block stops the user's pairs, unblock lets them back
    chat.send(2, "/start_trading")
    assert "is now blocked" in one(chat, 900, "/block 2")
    assert not UserConfig.get(UserConfig.symbol == "ETH/USDT").is_trading
    assert chat.send(2, "/status") == ["⛔ Access denied."]
    assert "Admins cannot be blocked" in one(chat, 900, "/block 900")
    assert "is now active" in one(chat, 900, "/unblock 2")
    assert "No user" in one(chat, 900, "/approve @nobody")
    assert "Usage: /approve" in one(chat, 900, "/approve")


def test_forged_buttons_cannot_touch_other_users_pairs(chat):
    setup_user(chat, 1, pairs=[("BTC/USDT", 100)])
    setup_user(chat, 2)
    victim = UserConfig.get()
    for data in (f"start:{victim.id}", f"rm:{victim.id}", f"stopmany:{victim.id}"):
        edits, answers = chat.press(2, data)
        assert "no longer exists" in answers[0][1]
    chat.send(1, "/start_trading")
    edits, answers = chat.press(2, f"stop:{victim.id}")
    assert UserConfig.get_by_id(victim.id).is_trading
    chat.press(2, "stopmany:all")
    assert UserConfig.get_by_id(victim.id).is_trading


def test_group_commands_for_another_bot_are_ignored(chat):
    setup_user(chat)
    assert chat.send(1, "/status@otherbot", chat_type="group", chat_id=-9) == []
    assert chat.send(1, "just chatting", chat_type="group", chat_id=-9) == []
    assert chat.send(1, "/status@tradebot_test_bot", chat_type="group", chat_id=-9)


def test_button_result_is_sent_when_the_message_cannot_be_edited(chat, monkeypatch):
    from tradebot.telegram.sender import SendFailed

    setup_user(chat, pairs=[("BTC/USDT", 100)])

    def fail(*a, **k):
        raise SendFailed("editMessageText: 400 message can't be edited", permanent=True)

    monkeypatch.setattr(chat.sender, "edit", fail)
    config = UserConfig.get()
    before = len(chat.sender.texts(1))
    chat.press(1, f"start:{config.id}")
    assert "🟢 Running" in chat.sender.texts(1)[before]


def test_removed_from_allowlist_is_refused_even_if_registered(database):
    chat = ChatHarness(make_cfg(access="allowlist", allowlist=[7], rate_limit_per_minute=1000))
    chat.send(7, "/start")
    chat.services.cfg = chat.dispatcher.cfg = make_cfg(
        access="allowlist", allowlist=[], rate_limit_per_minute=1000
    )
    assert one(chat, 7, "/start") == "⛔ This bot is private."
    assert one(chat, 7, "/status") == "⛔ This bot is private."


def test_overlong_connect_is_deleted_even_in_a_group(chat):
    chat.send(1, "/start")
    chat.send(1, "/connect binance " + "k" * 600 + " " + "s" * 600, chat_type="group", chat_id=-7)
    assert (-7, chat.last_message_id) in chat.sender.deleted
    assert "too long" in one(chat, 1, "/connect binance " + "k" * 600 + " " + "s" * 600)
    assert (1, chat.last_message_id) in chat.sender.deleted


def test_set_timeframe_and_decider(chat):
    setup_user(chat, pairs=[("BTC/USDT", 100)])
    assert one(chat, 1, "/set BTC/USDT timeframe 15m") == "⚙️ BTC/USDT (binance): timeframe 1h → 15m"  # new pairs: 1h
    assert "must be one of: 1m" in one(chat, 1, "/set BTC/USDT timeframe 7m")
    assert "must be one of: technical." in one(chat, 1, "/set BTC/USDT decider magic")  # what this bot offers
    # the fixture config has no LLM key: refused, setting unchanged
    assert "not configured" in one(chat, 1, "/set BTC/USDT decider llm")
    config = UserConfig.get()
    assert config.timeframe == "15m" and config.decider == "technical"


def test_users_lists_at_most_a_hundred_and_says_how_to_see_the_rest(chat):
    from tradebot.models import User as U

    chat.send(900, "/start")
    U.insert_many([{"telegram_id": 5000 + i, "username": f"m{i}", "status": "pending" if i % 2 else "active"}
                   for i in range(150)]).execute()
    parts = chat.send(900, "/users")
    assert len(parts) == 2  # 100 lines: two Telegram messages at most, not one per 60 users
    text = "\n".join(parts)
    assert "Users (151)" in text and "… and 51 more (the first 100 shown)" in text
    assert "/users pending" in text and "tradebot admin users" in text
    assert text.count("pairs,") == 100
    pending = one(chat, 900, "/users pending")
    assert "Pending users (75)" in pending and pending.count("pending,") == 75 and "more" not in pending
