"""Chat flows a demanding user tried (review findings): each test is one reply that used to be wrong."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

from tests.fixtures_telegram import one, plain, setup_user
from tradebot import services as svc
from tradebot.models import Trade, User, UserConfig
from tradebot.telegram import format as fmt

D = Decimal








def test_admin_command_with_an_id_too_big_for_the_database_is_no_internal_error(chat):
    chat.send(900, "/start")
    for command in ("approve", "block", "unblock"):
        reply = one(chat, 900, f"/{command} 12345678901234567890")
        assert "No user 12345678901234567890" in reply, reply
    assert svc.find_user("99999999999999999999") is None
    assert svc.find_user(2**63) is None


def test_pair_buttons_name_the_exchange_when_one_symbol_is_on_two_exchanges(chat):
    chat.send(1, "/start")
    chat.send(1, "/connect binance paper")
    chat.send(1, "/connect bybit paper")
    one(chat, 1, "/addpair BTC/USDT 100 binance")
    one(chat, 1, "/addpair BTC/USDT 100 bybit")
    chat.send(1, "/listpairs")
    labels = [text for text, _data in chat.buttons(1)]
    assert labels == ["▶️ Start BTC/USDT (binance)", "▶️ Start BTC/USDT (bybit)"]
    # one exchange only: the short labels of the brief stay
    setup_user(chat, 2, pairs=[("BTC/USDT", 100)])
    chat.send(2, "/listpairs")
    assert [text for text, _ in chat.buttons(2)] == ["▶️ Start BTC/USDT"]


def test_status_of_an_exchange_without_pairs_does_not_say_you_have_no_pairs_at_all(chat):
    setup_user(chat, pairs=[("BTC/USDT", 100)])
    reply = one(chat, 1, "/status bybit")
    assert "no pairs on bybit" in reply
    assert "no pairs yet" not in reply


def test_breaker_notification_shows_a_readable_time():
    until = dt.datetime(2026, 11, 25, 19, 27, 33, 546000, tzinfo=dt.UTC).isoformat()
    text = plain(
        fmt.event(
            "breaker_tripped",
            json.dumps({"scope": "pair", "symbol": "SOL/USDT", "reason": "1 loss", "until": until}),
        )
    )
    assert "Paused until 2026-11-25 19:27 UTC" in text, text
    naive = plain(fmt.event("breaker_tripped", json.dumps({"scope": "user", "until": "2026-01-01T12:00:00"})))
    assert "Paused until 2026-01-01 12:00 UTC" in naive
    odd = plain(fmt.event("breaker_tripped", json.dumps({"scope": "user", "until": "soon"})))
    assert "Paused until soon" in odd


def test_help_lists_every_setting_that_set_accepts(chat):
    text = one(chat, 1, "/help")
    line = next(x for x in text.splitlines() if x.startswith("Settings for /set"))
    for name in (*svc.SETTINGS, *svc.TEXT_SETTINGS):
        assert name in line


def test_stopall_with_nothing_running_does_not_ask_to_stop_zero_pairs(chat):
    chat.send(900, "/start")
    reply = one(chat, 900, "/stopall")
    assert "nothing to stop" in reply
    assert chat.buttons(900) == []


def test_mystats_rows_add_up_to_the_total_after_a_pair_was_removed(chat):
    setup_user(chat, pairs=[("BTC/USDT", 1000), ("ETH/USDT", 500)])
    user = User.get()
    btc, eth = UserConfig.select().order_by(UserConfig.id)
    for config, side, pnl in ((btc, "buy", None), (btc, "sell", "-5"), (eth, "buy", None), (eth, "sell", "7")):
        Trade.create(
            user=user.id,
            config=config.id,
            exchange="binance",
            symbol=config.symbol,
            side=side,
            amount=D("1"),
            price=D("100"),
            cost=D("100"),
            fee=D("0.1"),
            pnl=None if pnl is None else D(pnl),
        )
    chat.send(1, "/removepair BTC/USDT")
    chat.press(1, chat.buttons(1)[0][1])
    assert not UserConfig.select().where(UserConfig.symbol == "BTC/USDT").exists()
    blocks = one(chat, 1, "/mystats").split("\n\n")[1:]
    assert [b.splitlines()[0] for b in blocks] == ["ETH/USDT (binance)", "Removed pairs", "Total"]
    assert "Realized PnL: -$5.00" in blocks[1] and "2 fills" in blocks[1]
    assert "Realized PnL: $2.00" in blocks[2] and "4 fills" in blocks[2]


def _open_position(config, amount="0.01"):
    from tradebot.models import Position

    Position.create(
        user=config.user_id,
        config=config.id,
        exchange=config.exchange,
        symbol=config.symbol,
        amount=D(amount),
        entry_price=D("50000"),
        cost_basis=D("500"),
        status="open",
    )


def test_switching_account_with_an_open_position_is_refused(chat):
    """A paper position must never be sold with the user's real keys (nor a testnet one on live)."""
    setup_user(chat, pairs=[("BTC/USDT", 1000)])
    btc = UserConfig.get()
    _open_position(btc)
    reply = one(chat, 1, "/connect binance key123456789 secret123456789 true")
    assert "open positions bought in paper mode: BTC/USDT" in reply, reply
    from tradebot.models import ExchangeCredential, UserState

    assert ExchangeCredential.get().network == "paper"
    assert UserState.get().mode == "paper"
    # reconnecting the same account is fine; so is a switch once the position is closed
    assert one(chat, 1, "/connect binance paper").startswith("✅ Exchange Connected")
    from tradebot.models import Position

    Position.update(status="closed").execute()
    assert one(chat, 1, "/connect binance key123456789 secret123456789 true").startswith("✅ Exchange Connected")
    # the same key again (e.g. a new secret) keeps the account; another key or network does not
    _open_position(btc)
    assert one(chat, 1, "/connect binance key123456789 newsecret98765 true").startswith("✅ Exchange Connected")
    assert "open positions bought on testnet" in one(chat, 1, "/connect binance otherkey1234 secret123456789 true")
    assert "open positions bought on testnet" in one(chat, 1, "/connect binance key123456789 secret123456789 false")
    # another exchange is not affected
    assert one(chat, 1, "/connect bybit paper").startswith("✅ Exchange Connected")


def test_removepair_warns_when_the_pair_still_holds_a_position(chat):
    setup_user(chat, pairs=[("BTC/USDT", 1000), ("ETH/USDT", 500)])
    btc = UserConfig.get(UserConfig.symbol == "BTC/USDT")
    _open_position(btc, "0.0181")
    ask = one(chat, 1, "/removepair BTC/USDT")
    assert ask.startswith("❓ Remove BTC/USDT (binance)?")
    assert "open position (0.0181 BTC)" in ask and "no longer manages or sells it" in ask
    assert one(chat, 1, "/removepair ETH/USDT") == "❓ Remove ETH/USDT (binance)? Its trade history is kept."


def test_in_a_group_only_the_asker_can_confirm_or_cancel(chat):
    group = -100777
    setup_user(chat, 1, pairs=[("BTC/USDT", 100)])
    setup_user(chat, 2, pairs=[("ETH/USDT", 100)])
    chat.send(1, "/start_trading")
    chat.send(2, "/start_trading")
    assert one(chat, 1, "/stop_trading", chat_type="group", chat_id=group).startswith("❓ Stop trading all 1")
    yes, cancel = (data for _text, data in chat.buttons(group))
    # user 2 presses user 1's buttons: nothing happens to anybody's pairs, the question stays
    for data in (yes, cancel):
        edits, answers = chat.press(2, data, chat_id=group)
        assert edits == [] and "not for you" in answers[0][1]
    assert UserConfig.select().where(UserConfig.is_trading).count() == 2
    # buttons of older messages without an owner only count in a private chat
    for data in ("stopmany:all", "cancel"):
        edits, answers = chat.press(2, data, chat_id=group)
        assert edits == [] and "not for you" in answers[0][1]
    assert UserConfig.select().where(UserConfig.is_trading).count() == 2
    # the asker can
    edits, _ = chat.press(1, yes, chat_id=group)
    assert plain(edits[0][2]) == "⏸️ Trading Stopped: BTC/USDT"
    running = [c.symbol for c in UserConfig.select().where(UserConfig.is_trading)]
    assert running == ["ETH/USDT"]
    # a legacy button in one's own private chat still works
    edits, _ = chat.press(2, "stopmany:all")
    assert plain(edits[0][2]) == "⏸️ Trading Stopped: ETH/USDT"


def test_network_words_of_a_connect_are_not_registered_as_secrets(chat):
    from tradebot import logging_setup

    chat.send(1, "/start")
    chat.send(1, "/connect binance keyabcdef123 secretxyz789 testnet")
    chat.send(1, "/connect binance keyabcdef123 secretxyz789 mainnet")
    assert logging_setup.scrub("secretxyz789") != "secretxyz789"
    assert logging_setup.scrub("binance testnet and mainnet") == "binance testnet and mainnet"


def test_unknown_commands_in_a_group_are_left_to_other_bots(chat):
    group = -100900
    setup_user(chat, pairs=[("BTC/USDT", 100)])
    assert chat.send(1, "/weather London", chat_type="group", chat_id=group) == []
    assert "Unknown command" in one(chat, 1, "/weather@tradebot_test_bot", chat_type="group", chat_id=group)
    assert "Unknown command" in one(chat, 1, "/weather")
    assert one(chat, 1, "/status", chat_type="group", chat_id=group).startswith("📊 Your Trading Pairs (1)")


def test_paused_pair_shows_the_breaker_reason_without_the_engine_code_word():
    view = svc.PairView(
        config_id=1,
        symbol="SOL/USDT",
        exchange="binance",
        network="paper",
        budget=D("1000"),
        is_trading=True,
        status="paused",
        equity=D("998.79"),
        pnl=D("-1.21"),
        pnl_percent=D("-0.121"),
        breaker_until=dt.datetime(2026, 11, 25, 19, 27),
        breaker_reason="consecutive_losses: 3 losing trades in a row",
    )
    text = plain(fmt.status([view]))
    assert "Breaker until 2026-11-25 19:27 UTC (3 losing trades in a row) — /reset SOL/USDT" in text, text


def test_exchange_outage_during_connect_or_addpair_asks_to_try_again(chat, monkeypatch):
    from tradebot.exchange.errors import ExchangeUnavailable

    def down(*_a, **_k):
        raise ExchangeUnavailable("Binance is not reachable right now; will retry.")

    chat.send(1, "/start")
    monkeypatch.setattr(chat.hub, "check_credentials", down)
    reply = one(chat, 1, "/connect binance key123456789 secret123456789 true")
    assert reply == "⚠️ Binance is not reachable right now. Try again in a minute.", reply
    chat.send(1, "/connect binance paper")
    monkeypatch.setattr(chat.hub, "resolve_symbol", down)
    reply = one(chat, 1, "/addpair BTC/USDT 100")
    assert reply == "⚠️ Binance is not reachable right now. Try again in a minute.", reply


def test_addpair_warns_when_the_account_cannot_fund_the_budgets(chat, monkeypatch):
    class Broker:
        def __init__(self, free):
            self.free = free

        def balance(self):
            return {"USDT": D(self.free)}

    seen = []

    def broker(exchange, network, api_key=None, secret=None):
        seen.append((exchange, network, api_key, secret))
        return Broker("50")

    chat.hub.broker = broker
    chat.send(1, "/start")
    chat.send(1, "/connect binance key123456789 secret123456789 true")
    reply = one(chat, 1, "/addpair BTC/USDT 1000")
    assert reply.startswith("✅ Trading Pair Added\nSymbol: BTC/USDT\nExchange: binance\nBalance: $1000.00\n")
    assert "only 50 USDT free" in reply and "up to 1000 USDT" in reply
    assert seen == [("binance", "testnet", "key123456789", "secret123456789")]
    reply = one(chat, 1, "/addpair ETH/USDT 500")
    assert "up to 1500 USDT" in reply
    # enough money: the brief's exact reply; paper mode and exchange trouble: no warning, the pair is added
    chat.hub.broker = lambda *a, **k: Broker("100000")
    assert one(chat, 1, "/addpair SOL/USDT 300") == (
        "✅ Trading Pair Added\nSymbol: SOL/USDT\nExchange: binance\nBalance: $300.00"
    )
    setup_user(chat, 2)
    assert "free" not in one(chat, 2, "/addpair BTC/USDT 100")

    def down(*_a, **_k):
        raise ConnectionError("exchange down")

    chat.hub.broker = down
    chat.send(3, "/start")
    chat.send(3, "/connect binance key123456789 secret123456789 true")
    assert one(chat, 3, "/addpair BTC/USDT 100").endswith("Balance: $100.00")


def test_an_unblocked_user_is_not_told_they_were_approved():
    assert plain(fmt.event("user_approved", json.dumps({"previous": "pending"}))).startswith(
        "✅ You've been approved!"
    )
    text = plain(fmt.event("user_approved", json.dumps({"previous": "blocked"})))
    assert text.startswith("✅ An admin unblocked you.") and "/start_trading" in text


def test_commands_for_an_exchange_without_pairs_say_so(chat):
    setup_user(chat, pairs=[("BTC/USDT", 100)])
    for text in ("/config bybit", "/position bybit", "/start_trading bybit", "/stop_trading bybit"):
        assert one(chat, 1, text) == "⚠️ You have no pairs on bybit. See /listpairs.", text
    assert "BTC/USDT" in one(chat, 1, "/config binance")


def test_a_pair_button_pressed_by_another_group_member_says_it_is_not_theirs(chat):
    group = -100555
    setup_user(chat, 1, pairs=[("BTC/USDT", 100)])
    setup_user(chat, 2)
    chat.send(1, "/listpairs", chat_type="group", chat_id=group)
    (_text, data), = chat.buttons(group)
    edits, answers = chat.press(2, data, chat_id=group)
    assert edits == [] and answers[0][1] == "That button is not for you, or its pair no longer exists."
    assert not UserConfig.get().is_trading
    edits, _ = chat.press(1, data, chat_id=group)
    assert "🟢 Running" in plain(edits[0][2])


def test_huge_or_overprecise_budgets_get_a_clear_reason(chat):
    setup_user(chat)
    assert "Balance is far too large." in one(chat, 1, "/addpair BTC/USDT 99999999999999999999")
    assert "Balance: use at most 8 decimals." in one(chat, 1, "/addpair BTC/USDT 20.123456789")
    assert "must be a number" in one(chat, 1, "/addpair BTC/USDT 12abc")
    assert "Trading Pair Added" in one(chat, 1, "/addpair BTC/USDT 1000000")
