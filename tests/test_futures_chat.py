"""Futures in the chat: adding a perpetual in every spelling, spot and futures of one symbol side by side,
/set leverage|margin|direction|trailing_stop with the liquidation-safety refusal, and what /listpairs,
/status, /config and /position show."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from tests.fixtures_telegram import make_cfg, one, setup_user
from tradebot.models import Position, UserConfig, UserState

D = Decimal


@pytest.mark.parametrize("command", [
    "/addpair BTC/USDT 1000 futures", "/addpair BTC/USDT:USDT 1000", "/addpair btcusdt.p 1000",
    "/addpair BTCUSDT perp 1000", "/addpair BTC/USDT 1000 binance futures",
])
def test_addpair_futures_spellings(chat, command):
    setup_user(chat)
    reply = one(chat, 1, command)
    assert "Symbol: BTC/USDT:USDT" in reply and "3x, isolated margin, direction both" in reply, reply
    cfg = UserConfig.get()
    assert (cfg.symbol, cfg.market_type, cfg.leverage, cfg.margin_mode, cfg.direction) == (
        "BTC/USDT:USDT", "futures", 3, "isolated", "both")


def test_spot_and_futures_of_one_symbol_are_two_pairs_and_listed_apart(chat):
    setup_user(chat, pairs=[("BTC/USDT", 500)])
    assert "Trading Pair Added" in one(chat, 1, "/addpair BTC/USDT 1000 futures")
    assert "already have" in one(chat, 1, "/addpair btcusdt.p 100")
    listing = one(chat, 1, "/listpairs")
    assert "1. BTC/USDT 🔴 Stopped" in listing
    assert "2. BTC/USDT:USDT [futures 3x FLAT] 🔴 Stopped" in listing
    assert "Margin: isolated | Direction: both | Funding paid: $0.00" in one(chat, 1, "/status btcusdt.p")
    # a non-USDT quote has no USDT-M perpetual
    assert "USDT-margined" in one(chat, 1, "/addpair ETH/BTC 100 futures")


def test_set_leverage_margin_direction_and_the_liquidation_safety_refusal(chat):
    setup_user(chat)
    one(chat, 1, "/addpair BTC/USDT 1000 futures")
    assert one(chat, 1, "/set BTC/USDT:USDT leverage 2").endswith("leverage 3 → 2")
    assert "between 1 and 3" in one(chat, 1, "/set BTC/USDT:USDT leverage 5")  # the operator's cap
    assert one(chat, 1, "/set BTC/USDT:USDT margin cross").endswith("margin isolated → cross")
    assert one(chat, 1, "/set BTC/USDT:USDT direction short").endswith("direction both → short")
    assert "must be one of: both, long, short" in one(chat, 1, "/set BTC/USDT:USDT direction up")
    assert one(chat, 1, "/set BTC/USDT:USDT trailing_stop 1.5").endswith("trailing_stop 0% → 1.5%")
    # 2x: liquidation after a 49.50% move; the stop-loss may use at most half of it
    reply = one(chat, 1, "/set BTC/USDT:USDT stop_loss 30")
    assert "Refused" in reply and "49.50%" in reply and "24.75%" in reply, reply
    assert UserConfig.get().stop_loss_percent == D(2)


def test_leverage_above_the_stop_loss_safety_is_refused_with_the_numbers(database):
    from tests.fixtures_telegram import ChatHarness

    cfg = make_cfg(admin_ids=[900], rate_limit_per_minute=1000)
    cfg = dataclasses.replace(cfg, risk=dataclasses.replace(cfg.risk, max_leverage=20))  # an operator's cap
    chat = ChatHarness(cfg)
    setup_user(chat)
    one(chat, 1, "/addpair BTC/USDT 1000 futures")
    assert UserConfig.get().leverage == 20  # the default is the cap
    assert UserConfig.get().stop_loss_percent == D(2)  # 2 % is inside 20x's safe 2.25 %
    one(chat, 1, "/set BTC/USDT:USDT leverage 10")
    one(chat, 1, "/set BTC/USDT:USDT stop_loss 4")
    reply = one(chat, 1, "/set BTC/USDT:USDT leverage 20")
    assert "Refused" in reply and "4.50%" in reply and "stop_loss 2.25" in reply, reply


def test_spot_pairs_refuse_futures_settings(chat):
    setup_user(chat, pairs=[("BTC/USDT", 500)])
    assert "futures pairs only" in one(chat, 1, "/set BTC/USDT direction short")
    assert one(chat, 1, "/set BTC/USDT trailing_stop 3").endswith("trailing_stop 0% → 3%")


def test_position_and_config_show_the_futures_fields(chat):
    setup_user(chat)
    one(chat, 1, "/addpair BTC/USDT 1000 futures")
    cfg = UserConfig.get()
    Position.create(user=cfg.user_id, config=cfg.id, exchange="binance", symbol=cfg.symbol, side="short",
                    leverage=3, amount=D("0.03"), entry_price=D(30000), cost_basis=D("300.45"), margin=D(300),
                    liquidation_price=D("39850"), funding=D("-0.09"), stop_loss_price=D(30600),
                    take_profit_price=D(28500))
    UserState.update(last_price=D(29000)).where(UserState.config == cfg.id).execute()
    reply = one(chat, 1, "/position")
    assert "BTC/USDT:USDT (binance) SHORT 3x" in reply
    assert "Size: 0.03 @ entry 30000" in reply and "Mark: 29000" in reply
    assert "Margin: $300.00 | Liquidation: 39850" in reply
    assert "Unrealized PnL: $30.00 (10.00%)" in reply  # 0.03 x 1000, of the 300 margin
    assert "Funding paid: -$0.09" in reply
    conf = one(chat, 1, "/config")
    assert "Market: futures, isolated margin, direction both" in conf and "leverage: 3" in conf
    assert "[futures 3x SHORT]" in one(chat, 1, "/listpairs")


def test_mystats_counts_funding_in_the_futures_pairs_pnl(chat):
    from tradebot.models import Trade

    setup_user(chat, pairs=[("BTC/USDT", 500)])
    one(chat, 1, "/addpair BTC/USDT 1000 futures")
    spot, fut = UserConfig.select().order_by(UserConfig.id)
    for cfg, pnl in ((spot, D("5")), (fut, D("20"))):
        Trade.create(user=cfg.user_id, config=cfg.id, exchange="binance", symbol=cfg.symbol, side="sell",
                     amount=D("0.01"), price=D(30000), cost=D(300), fee=D("0.15"), pnl=pnl)
    UserState.update(funding_paid=D("0.75")).where(UserState.config == fut.id).execute()
    blocks = one(chat, 1, "/mystats").split("\n\n")[1:]
    assert "Realized PnL: $5.00" in blocks[0] and "Funding" not in blocks[0]
    assert "Realized PnL: $19.25" in blocks[1] and "Funding paid: $0.75 (in the realized PnL)" in blocks[1]
    assert "Realized PnL: $24.25" in blocks[2]


def test_futures_on_live_keys_are_added_once_the_key_may_trade_futures(chat):
    setup_user(chat)
    chat.send(1, "/connect binance nofutkey1234567890 goodsecret1234567890 false")
    from tradebot.models import ExchangeCredential

    assert ExchangeCredential.get().network == "live"
    assert "enable Futures" in one(chat, 1, "/addpair BTC/USDT 1000 futures")
    assert UserConfig.select().count() == 0
    assert ("binance", "live", "futures") in chat.hub.credential_checks
    chat.send(1, "/connect binance goodkey1234567890 goodsecret1234567890 false")
    assert "Symbol: BTC/USDT:USDT" in one(chat, 1, "/addpair BTC/USDT 1000 futures")
    assert UserConfig.get().market_type == "futures"


def test_paper_futures_config_keys_reach_the_paper_broker(tmp_path):
    from tradebot.app import build_hub
    from tradebot.config import ConfigError, load_config

    env = {"TRADEBOT_EXCHANGES_BINANCE_PAPER_FUNDING_RATE": "-0.0002",
           "TRADEBOT_EXCHANGES_BINANCE_PAPER_FUTURES_TAKER_FEE": "0.0004", "TRADEBOT_RISK_MAX_LEVERAGE": "5",
           "TRADEBOT_DATA_DIR": str(tmp_path)}
    cfg = load_config(None, env=env)
    assert cfg.risk.max_leverage == 5
    broker = build_hub(cfg).broker("binance", "paper")
    assert broker.funding_rate("BTC/USDT:USDT") == D("-0.0002") and broker.futures_taker_fee == D("0.0004")
    with pytest.raises(ConfigError, match="max_leverage"):
        load_config(None, env={**env, "TRADEBOT_RISK_MAX_LEVERAGE": "50"})
