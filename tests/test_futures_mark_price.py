"""A perpetual's own market data, end to end through ccxt against the fake exchange: its candles are the
contract's klines (Binance /fapi/v1/klines, Bybit kline category=linear), it fills at its own last price, and
its mark price (premiumIndex / linear tickers) values the position and drives the stop-loss and liquidation
guard, in paper and live. The fake's perpetual trades at spot + a basis and marks at last + a premium, so a
bot reading the spot market (or the last price) instead gets every number here wrong."""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal

import pytest

from tests.fakes.exchange_data import MINUTE
from tests.fixtures_engine import ScriptedDecider, StubVault, make_pair, make_user
from tradebot.models import Order, Position, UserState

D = Decimal
KLINES = {"binance": "/fapi/v1/klines", "bybit": "/v5/market/kline"}
MARKS = {"binance": "/fapi/v1/premiumIndex", "bybit": "/v5/market/tickers"}
STEPS = {"binance": D("0.00001"), "bybit": D("0.000001")}


@pytest.fixture
def engine(database, fake_exchange, exchange_hub):
    from tradebot.engine.manager import BotManager

    deciders = {}
    mgr = BotManager(exchange_hub, lambda name: deciders[name], vault=StubVault(),
                     clock=lambda: fake_exchange.now_ms / 1000, max_workers=2)
    yield mgr, deciders
    mgr._stopping.set()


def _closed(fake) -> int:
    return fake.now_ms - fake.now_ms % MINUTE - MINUTE


def _linear(fake, path: str) -> list:
    return [r for r in fake.requests_to(path) if path.startswith("/fapi") or r.params.get("category") == "linear"]


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_paper_futures_trade_on_the_perpetuals_data_and_stop_out_on_the_mark_price(engine, fake_exchange,
                                                                                  exchange):
    mgr, deciders = engine
    fake = fake_exchange
    fake.book.perp_basis["BTCUSDT"] = D(40)  # the perpetual trades 40 USDT above spot
    cfg = make_pair(make_user(1), "BTC/USDT:USDT", "1000", exchange=exchange, decider="scripted",
                    market_type="futures", leverage=3, is_trading=True, stop_loss_percent=D(2),
                    take_profit_percent=D(50))
    deciders["scripted"] = ScriptedDecider({_closed(fake): "buy"})
    p_perp = fake.book.perp_price("BTCUSDT")
    mgr.run_cycle(cfg.id)
    pos = Position.get(Position.config == cfg.id)
    assert pos.entry_price == p_perp  # filled at the perpetual's own price, not spot's
    assert pos.amount == (D(900) / p_perp).quantize(STEPS[exchange], ROUND_DOWN)
    assert _linear(fake, KLINES[exchange])  # the contract's candles ...
    spot_klines = "/api/v3/klines" if exchange == "binance" else "/v5/market/kline"
    assert not [r for r in fake.requests_to(spot_klines) if r.params.get("category") != "linear"]  # ... only

    # mark below last: the position is valued at the mark
    fake.advance(1)
    fake.book.mark_premium["BTCUSDT"] = D(-25)
    mark = fake.book.mark_price("BTCUSDT")
    mgr.run_cycle(cfg.id)
    st = UserState.get(UserState.config == cfg.id)
    assert st.last_price == mark
    assert st.unrealized_pnl == (mark - pos.entry_price) * pos.amount

    # the mark falls through the stop while the last (and spot) price stay above it: the stop acts on the mark
    fake.advance(1)
    stop = Position.get_by_id(pos.id).stop_loss_price
    fake.book.mark_premium["BTCUSDT"] = (stop - fake.book.perp_price("BTCUSDT") - 1).quantize(D("0.01"))
    assert fake.book.perp_price("BTCUSDT") > stop and fake.price("BTCUSDT") > stop > fake.book.mark_price("BTCUSDT")
    p_exit = fake.book.perp_price("BTCUSDT")
    mgr.run_cycle(cfg.id)
    pos = Position.get_by_id(pos.id)
    assert (pos.status, pos.close_reason, pos.exit_price) == ("closed", "stop_loss", p_exit)


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_live_stop_loss_before_liquidation_acts_on_the_mark_price(engine, fake_exchange, exchange):
    mgr, deciders = engine
    fake = fake_exchange
    fake.add_account("key1", "secret1", {"USDT": "0"}, exchange=exchange)
    fake.add_futures("key1", "5000")
    fake.book.perp_basis["BTCUSDT"] = D(-30)
    cfg = make_pair(make_user(1), "BTC/USDT:USDT", "1000", network="live", exchange=exchange, decider="scripted",
                    market_type="futures", leverage=10, is_trading=True, stop_loss_percent=D(2),
                    take_profit_percent=D(50))
    deciders["scripted"] = ScriptedDecider({_closed(fake): "short"})
    p_perp = fake.book.perp_price("BTCUSDT")
    mgr.run_cycle(cfg.id)
    pos = Position.get(Position.config == cfg.id)
    assert (pos.side, pos.entry_price) == ("short", p_perp)

    fake.advance(1)
    fake.book.mark_premium["BTCUSDT"] = D(12)
    mgr.run_cycle(cfg.id)
    mark = fake.book.mark_price("BTCUSDT")
    st = UserState.get(UserState.config == cfg.id)
    assert st.unrealized_pnl == (pos.entry_price - mark) * pos.amount  # a short at the mark

    # a 10x short: the mark rises through the stop (which sits inside the liquidation price), the last does not
    fake.advance(1)
    stop = Position.get_by_id(pos.id).stop_loss_price
    assert stop < Position.get_by_id(pos.id).liquidation_price
    fake.book.mark_premium["BTCUSDT"] = (stop - fake.book.perp_price("BTCUSDT") + 1).quantize(D("0.01"))
    assert fake.book.perp_price("BTCUSDT") < stop < fake.book.mark_price("BTCUSDT")
    mgr.run_cycle(cfg.id)
    pos = Position.get_by_id(pos.id)
    assert (pos.status, pos.close_reason) == ("closed", "stop_loss")
    assert fake.futures.position("key1", "BTCUSDT").qty == 0  # closed on the venue, reduce-only
    exit_order = Order.select().where(Order.config == cfg.id).order_by(Order.id.desc()).get()
    assert exit_order.reason == "stop_loss" and exit_order.status == "filled"


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_pairs_of_one_perpetual_share_its_candles_and_mark_price(engine, fake_exchange, exchange):
    """As for spot: one klines request per (exchange, perpetual) per candle and one mark-price request per slot,
    however many pairs (of however many users) trade it."""
    mgr, deciders = engine
    fake = fake_exchange
    deciders["scripted"] = ScriptedDecider({})
    pairs = [make_pair(make_user(i), "ETH/USDT:USDT", "500", exchange=exchange, decider="scripted",
                       market_type="futures", leverage=2, is_trading=True) for i in (1, 2, 3)]
    for _ in range(2):
        before = (len(_linear(fake, KLINES[exchange])), len(_linear(fake, MARKS[exchange])))
        for cfg in pairs:
            mgr.run_cycle(cfg.id)
        after = (len(_linear(fake, KLINES[exchange])), len(_linear(fake, MARKS[exchange])))
        assert after[1] - before[1] == 1
        assert 1 <= after[0] - before[0] <= 2  # a first fetch may top up once; never once per pair
        fake.advance(1)


def test_prefetch_asks_every_perpetuals_mark_price_of_an_exchange_in_one_request(engine, fake_exchange):
    mgr, deciders = engine
    fake = fake_exchange
    deciders["scripted"] = ScriptedDecider({})
    user = make_user(1)
    for sym in ("BTC/USDT:USDT", "ETH/USDT:USDT", "SOL/USDT:USDT", "BTC/USDT"):
        cfg = make_pair(user, sym, "500", decider="scripted", market_type="futures" if ":" in sym else "spot",
                        leverage=2 if ":" in sym else 1, is_trading=True)
        mgr.run_cycle(cfg.id)
    fake.advance(1)
    fake.clear()
    mgr.runner.prefetch(fake.now_ms - fake.now_ms % MINUTE)
    marks = fake.requests_to("/fapi/v1/premiumIndex")
    assert len(marks) == 1 and "symbol" not in marks[0].params  # one answer for the three perpetuals
    md = mgr.hub.market_data
    n = md.fetches
    for sym, sid in (("BTC/USDT:USDT", "BTCUSDT"), ("ETH/USDT:USDT", "ETHUSDT"), ("SOL/USDT:USDT", "SOLUSDT")):
        assert md.mark_price("binance", "paper", sym, slot_ms=60_000) == fake.book.mark_price(sid)
    assert md.fetches == n  # the cycles of the slot ask nothing

