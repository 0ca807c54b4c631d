"""Paper futures end to end: the production cycle (BotManager.run_cycle) with the real ExchangeHub reading
market data through ccxt from the fake exchange; short and long round trips, funding at a funding time and
the notifications, booked rows checked against numbers computed by hand from the fill prices."""

from __future__ import annotations

import json
from decimal import ROUND_DOWN, Decimal

import pytest

from tests.fakes.exchange_data import MINUTE
from tests.fixtures_engine import ScriptedDecider, StubVault, make_pair, make_user
from tradebot.models import Notification, Order, Position, Trade, UserState
from tradebot.telegram.format.events import event

D = Decimal
FEE = D("0.0005")
STEP = D("0.00001")


@pytest.fixture
def futures_engine(database, fake_exchange, exchange_hub):
    from tradebot.engine.manager import BotManager

    exchange_hub.market_data.ticker_ttl_ms = 0
    deciders = {}
    mgr = BotManager(exchange_hub, lambda name: deciders[name], vault=StubVault(),
                     clock=lambda: fake_exchange.now_ms / 1000, max_workers=2)
    yield mgr, deciders
    mgr._stopping.set()


def _closed(fake) -> int:
    return fake.now_ms - fake.now_ms % MINUTE - MINUTE


def _price(fake) -> D:
    return fake.price("BTCUSDT")


def test_paper_short_round_trip_then_long_with_funding(futures_engine, fake_exchange):
    mgr, deciders = futures_engine
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT:USDT", "1000", decider="scripted", market_type="futures", leverage=3,
                    is_trading=True, take_profit_percent=D(50))
    t = _closed(fake_exchange)
    deciders["scripted"] = ScriptedDecider({t: "short", t + 2 * MINUTE: "buy"})

    p_open = _price(fake_exchange)
    mgr.run_cycle(cfg.id)
    pos = Position.get(Position.config == cfg.id)
    amount = (D(900) / p_open).quantize(STEP, ROUND_DOWN)  # margin 30 % of 1000 at 3x
    assert (pos.side, pos.leverage, pos.amount, pos.entry_price) == ("short", 3, amount, p_open)
    assert pos.margin == amount * p_open / 3
    assert pos.liquidation_price == p_open * (1 + D(1) / 3 - D("0.005"))
    assert pos.stop_loss_price == p_open * D("1.02")  # a short's stop sits above the entry
    opened = Order.get(Order.side == "sell")
    assert opened.amount == amount and opened.status == "filled"

    fake_exchange.advance(1)
    mgr.run_cycle(cfg.id)  # hold
    fake_exchange.advance(1)
    p_close = _price(fake_exchange)
    mgr.run_cycle(cfg.id)  # "buy" while short: closes the short, reduce-only
    pos = Position.get_by_id(pos.id)
    assert pos.status == "closed"
    fee_open = (amount * p_open * FEE).quantize(D("0.00000001"))
    fee_close = (amount * p_close * FEE).quantize(D("0.00000001"))
    expected = (p_open - p_close) * amount - fee_open - fee_close
    closing = Trade.get(Trade.side == "buy")
    assert closing.pnl == expected
    state = UserState.get(UserState.config == cfg.id)
    assert state.equity == state.cash == D(1000) + expected
    kinds = [(n.kind, json.loads(n.payload)) for n in Notification.select().order_by(Notification.id)]
    opened_text = event("trade_opened", json.dumps(kinds[0][1]))
    closed_text = event("trade_closed", json.dumps(kinds[1][1]))
    assert "Opened SHORT BTC/USDT:USDT (binance) 3x" in opened_text
    assert "Closed SHORT BTC/USDT:USDT (binance) 3x" in closed_text

    # a long held over the 16:00 UTC funding time pays amount x mark x the venue's current rate (premiumIndex)
    fake_exchange.book.funding_rates["BTCUSDT"] = D("0.00031")
    t = _closed(fake_exchange)
    fake_exchange.advance(1)
    deciders["scripted"].script[t + MINUTE] = "buy"
    p_long = _price(fake_exchange)
    mgr.run_cycle(cfg.id)
    pos = Position.get((Position.config == cfg.id) & (Position.status == "open"))
    assert pos.side == "long" and pos.entry_price == p_long
    funding_at = (fake_exchange.now_ms // (8 * 3_600_000) + 1) * 8 * 3_600_000
    fake_exchange.set_time(funding_at + 30_000)
    mark = _price(fake_exchange)
    mgr.run_cycle(cfg.id)
    pos = Position.get_by_id(pos.id)
    paid = pos.amount * mark * D("0.00031")
    assert pos.funding == paid
    state = UserState.get(UserState.config == cfg.id)
    assert state.funding_paid == paid
    note = Notification.select().where(Notification.kind == "funding").get()
    assert "Funding -$" in event("funding", note.payload) and "LONG" in event("funding", note.payload)


def test_two_users_spot_and_futures_on_one_symbol_keep_their_own_books(futures_engine, fake_exchange):
    """Isolation: spot and futures pairs of the same symbol, of two users, trade at the same moments; every
    pair books only its own fills, margin and funding, and its equity follows from them alone."""
    mgr, deciders = futures_engine
    u1, u2 = make_user(1), make_user(2)
    t = _closed(fake_exchange)
    deciders["long"] = ScriptedDecider({t: "buy", t + 2 * MINUTE: "sell"}, name="long")
    deciders["short"] = ScriptedDecider({t: "short", t + 2 * MINUTE: "close"}, name="short")
    pairs = [
        make_pair(u1, "BTC/USDT", "1000", decider="long", is_trading=True),
        make_pair(u1, "BTC/USDT:USDT", "1000", decider="short", market_type="futures", leverage=3, is_trading=True),
        make_pair(u2, "BTC/USDT:USDT", "500", decider="long", market_type="futures", leverage=2, is_trading=True),
        make_pair(u2, "ETH/USDT:USDT", "800", decider="short", market_type="futures", leverage=3, is_trading=True),
    ]
    prices = []
    for _ in range(3):
        prices.append(_price(fake_exchange))
        for cfg in pairs:
            mgr.run_cycle(cfg.id)
        fake_exchange.advance(1)
    spot, short1, long2, eth = pairs
    for cfg in pairs:
        trades = list(Trade.select().where(Trade.config == cfg.id).order_by(Trade.id))
        assert len(trades) == 2 and all(tr.symbol == cfg.symbol for tr in trades)
        assert Position.select().where((Position.config == cfg.id) & (Position.status == "open")).count() == 0
        state = UserState.get(UserState.config == cfg.id)
        assert state.realized_pnl == trades[1].pnl  # its own round trip, nothing else
        if cfg.market_type == "futures":  # flat: no margin, no dust
            assert state.equity == state.cash == D(cfg.budget) + trades[1].pnl
    # the two BTC perpetuals: opposite sides, margins from their own budgets and leverage
    s1 = Position.get(Position.config == short1.id)
    l2 = Position.get(Position.config == long2.id)
    assert (s1.side, s1.leverage, l2.side, l2.leverage) == ("short", 3, "long", 2)
    assert s1.amount == (D(900) / prices[0]).quantize(STEP, ROUND_DOWN)  # 30 % of 1000 x 3
    assert l2.amount == (D(300) / prices[0]).quantize(STEP, ROUND_DOWN)  # 30 % of 500 x 2
    p0, p2 = prices[0], prices[2]
    fee = lambda a, p: (a * p * FEE).quantize(D("0.00000001"))  # noqa: E731
    assert Trade.get((Trade.config == short1.id) & (Trade.side == "buy")).pnl == (
        (p0 - p2) * s1.amount - fee(s1.amount, p0) - fee(s1.amount, p2))
    assert Trade.get((Trade.config == long2.id) & (Trade.side == "sell")).pnl == (
        (p2 - p0) * l2.amount - fee(l2.amount, p0) - fee(l2.amount, p2))
    assert Position.get(Position.config == spot.id).margin is None  # the spot pair stays spot


def test_a_paused_user_can_still_close_a_short(futures_engine, fake_exchange):
    """The user-wide breaker pauses openings only: a short closes by a BUY, which must still go."""
    import datetime as dt

    from tradebot.models import User

    mgr, deciders = futures_engine
    t = _closed(fake_exchange)
    deciders["scripted"] = ScriptedDecider({t: "short", t + MINUTE: "buy", t + 2 * MINUTE: "short"})
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT:USDT", "1000", decider="scripted", market_type="futures", leverage=3,
                    is_trading=True)
    mgr.run_cycle(cfg.id)
    assert Position.get(Position.config == cfg.id).side == "short"
    User.update(breaker_until=dt.datetime(2999, 1, 1), breaker_reason="test").where(User.id == user.id).execute()
    fake_exchange.advance(1)
    mgr.run_cycle(cfg.id)  # buy = close the short: an exit, allowed while paused
    assert Position.get(Position.config == cfg.id).status == "closed"
    fake_exchange.advance(1)
    out = mgr.run_cycle(cfg.id)  # a new short is an opening: paused
    assert out["skipped"] == "user_breaker"
    assert Position.select().where(Position.config == cfg.id).count() == 1



def test_paper_funding_rate_is_the_venues_current_rate_or_the_configured_one(fake_exchange, exchange_hub):
    fake_exchange.book.funding_rates.update(BTCUSDT=D("-0.00025"), ETHUSDT=D("0.0004"))
    assert exchange_hub.broker("binance", "paper").funding_rate("BTC/USDT:USDT") == D("-0.00025")
    assert exchange_hub.broker("bybit", "paper").funding_rate("ETH/USDT:USDT") == D("0.0004")
    assert fake_exchange.requests_to("/fapi/v1/premiumIndex")
    # the venue does not answer: the configured paper rate (0.0001 by default), and no retry storm
    fake_exchange.fault("/v5/market/tickers", "http", times=50, status=500)
    broker = exchange_hub.broker("bybit", "paper")
    assert broker.funding_rate("SOL/USDT:USDT") == D("0.0001")
    n = len(fake_exchange.requests_to("/v5/market/tickers"))
    assert broker.funding_rate("SOL/USDT:USDT") == D("0.0001")
    assert len(fake_exchange.requests_to("/v5/market/tickers")) == n  # remembered for 10 minutes
