"""Live futures end to end: the production cycle with the real ExchangeHub and ccxt LiveBroker against the fake
exchange's Binance USDⓈ-M /fapi (signed): leverage and margin mode set on the venue, market orders carrying the
pair's client order id, reduce-only exits, PnL and fees computed by hand from the venue's fills."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from decimal import ROUND_DOWN, Decimal
from pathlib import Path

import pytest

from tests.fakes.exchange_data import MINUTE
from tests.fixtures_engine import ScriptedDecider, StubVault, make_pair, make_user
from tradebot.models import Order, Position, Trade, UserConfig, UserState

D = Decimal
FEE = D("0.0005")
WALLET = D("5000")


@pytest.fixture
def live_futures(request, database, fake_exchange, exchange_hub):
    from tradebot.engine.manager import BotManager

    exchange_hub.market_data.ticker_ttl_ms = 0
    deciders = {}
    mgr = BotManager(exchange_hub, lambda name: deciders[name], vault=StubVault(),
                     clock=lambda: fake_exchange.now_ms / 1000, max_workers=2)
    user = make_user(1)
    exchange = getattr(request, "param", "binance")
    fake_exchange.add_account("key1", "secret1", {"USDT": "0"}, exchange=exchange)
    fake_exchange.add_futures("key1", WALLET)
    yield mgr, deciders, user
    mgr._stopping.set()


def _closed(fake) -> int:
    return fake.now_ms - fake.now_ms % MINUTE - MINUTE


def _fee(amount: D, price: D) -> D:
    return (amount * price * FEE).quantize(D("0.00000001"))


def _pair(user, exchange="binance", **kw):
    return make_pair(user, "BTC/USDT:USDT", "1000", network="live", exchange=exchange, decider="scripted",
                     market_type="futures",
                     leverage=3, is_trading=True, take_profit_percent=D(50), stop_loss_percent=D(20), **kw)


ORDER_PATH = {"binance": "/fapi/v1/order", "bybit": "/v5/order/create"}
LEVERAGE_PATH = {"binance": "/fapi/v1/leverage", "bybit": "/v5/position/set-leverage"}
STEPS = {"binance": D("0.00001"), "bybit": D("0.000001")}


@pytest.mark.parametrize("live_futures, side", [("binance", "long"), ("binance", "short"), ("bybit", "long"),
                                                ("bybit", "short")], indirect=["live_futures"])
def test_live_round_trip_books_the_venue_fills_and_exits_reduce_only(live_futures, fake_exchange, side):
    mgr, deciders, user = live_futures
    exchange = fake_exchange.book.accounts["key1"].exchange
    cfg = _pair(user, exchange)
    t = _closed(fake_exchange)
    deciders["scripted"] = ScriptedDecider({t: "buy" if side == "long" else "short", t + 3 * MINUTE: "close"})

    p_open = fake_exchange.price("BTCUSDT")
    mgr.run_cycle(cfg.id)
    amount = (D(900) / p_open).quantize(STEPS[exchange], ROUND_DOWN)  # margin 30 % of 1000, notional x3
    venue = fake_exchange.futures.position("key1", "BTCUSDT")
    assert venue.qty == (amount if side == "long" else -amount)
    assert (venue.leverage, venue.margin_type) == (3, "ISOLATED")  # set on the venue before the first order
    pos = Position.get(Position.config == cfg.id)
    assert (pos.side, pos.amount, pos.entry_price) == (side, amount, p_open)
    opened = Order.get(Order.config == cfg.id)
    assert fake_exchange.futures.orders[0].client_id == opened.client_order_id

    for _ in range(3):
        fake_exchange.advance(1)
        mgr.run_cycle(cfg.id)
    p_close = fake_exchange.price("BTCUSDT")
    assert fake_exchange.futures.position("key1", "BTCUSDT").qty == 0
    sent = fake_exchange.requests_to(ORDER_PATH[exchange], "POST")
    assert [str(r.params.get("reduceOnly")).lower() for r in sent] == ["none", "true"]
    assert [r.params.get("newClientOrderId") or r.params.get("orderLinkId") for r in sent] == [
        o.client_order_id for o in Order.select().where(Order.config == cfg.id).order_by(Order.id)]
    assert len(fake_exchange.requests_to(LEVERAGE_PATH[exchange], "POST")) == 1  # once per pair, not per order

    close = Trade.get((Trade.config == cfg.id) & (Trade.side == ("sell" if side == "long" else "buy")))
    k = 1 if side == "long" else -1
    pnl = k * (p_close - p_open) * amount - _fee(amount, p_open) - _fee(amount, p_close)
    assert close.pnl == pnl and close.price == p_close
    st = UserState.get(UserState.config == cfg.id)
    assert st.realized_pnl == pnl and st.equity == D(1000) + pnl
    # the venue's wallet moved by exactly what the pair booked
    assert fake_exchange.futures.accounts["key1"].wallet == WALLET + pnl


@pytest.mark.parametrize("live_futures", ["binance", "bybit"], indirect=True)
def test_a_reduce_only_exit_larger_than_the_venue_position_is_refused_and_opens_nothing(live_futures,
                                                                                      fake_exchange):
    from tradebot.exchange.errors import ReduceOnlyRejected
    from tradebot.exchange.live import LiveBroker

    mgr, _, _ = live_futures
    broker = LiveBroker(mgr.hub, fake_exchange.book.accounts["key1"].exchange, "live", "key1", "secret1")
    broker.futures_order("BTC/USDT:USDT", "buy", D("0.01"), "tbopen1", leverage=3, margin_mode="isolated")
    with pytest.raises(ReduceOnlyRejected, match="reduce-only"):  # -2022 / 110017, not "maybe sent"
        broker.futures_order("BTC/USDT:USDT", "sell", D("0.02"), "tbreduce1", reduce_only=True)
    assert fake_exchange.futures.position("key1", "BTCUSDT").qty == D("0.01")
    assert broker.futures_position("BTC/USDT:USDT").size == D("0.01")
    assert broker.find_order("BTC/USDT:USDT", "tbreduce1") is None


@pytest.mark.parametrize("live_futures", ["binance", "bybit"], indirect=True)
def test_insufficient_margin_is_a_clear_refusal(live_futures, fake_exchange):
    from tradebot.exchange.errors import InsufficientFunds
    from tradebot.exchange.live import LiveBroker

    mgr, _, _ = live_futures
    broker = LiveBroker(mgr.hub, fake_exchange.book.accounts["key1"].exchange, "live", "key1", "secret1")
    with pytest.raises(InsufficientFunds, match="margin"):
        broker.futures_order("BTC/USDT:USDT", "buy", D("5"), "tbbig1", leverage=3, margin_mode="isolated")
    assert fake_exchange.futures.position("key1", "BTCUSDT").qty == 0


def test_bybit_futures_permission_check_names_the_contract_permissions(database, fake_exchange, exchange_hub):
    from tradebot.exchange.errors import PermissionDenied

    fake_exchange.add_account("spotonly", "s1", {"USDT": "10"}, exchange="bybit")
    with pytest.raises(PermissionDenied, match="Contract permissions Orders and Positions"):
        exchange_hub.check_futures_permission("bybit", "live", "spotonly", "s1")
    fake_exchange.add_futures("spotonly", "100")
    exchange_hub.check_futures_permission("bybit", "live", "spotonly", "s1")


def test_futures_permission_check_names_what_to_enable(database, fake_exchange, exchange_hub):
    from tradebot.exchange.errors import PermissionDenied

    fake_exchange.add_account("spotonly", "s1", {"USDT": "10"}, exchange="binance")
    exchange_hub.check_credentials("binance", "live", "spotonly", "s1")  # fine for spot
    with pytest.raises(PermissionDenied, match="enable Futures for the key"):  # /fapi answers -2015
        exchange_hub.check_futures_permission("binance", "live", "spotonly", "s1")
    fake_exchange.add_futures("spotonly", "100")
    exchange_hub.check_futures_permission("binance", "live", "spotonly", "s1")
    assert len(fake_exchange.requests_to("/fapi/v2/account")) == 2


@pytest.mark.parametrize("live_futures", ["binance", "bybit"], indirect=True)
def test_a_position_closed_outside_the_bot_is_booked_from_the_venues_fill_the_pair_stopped_and_the_user_told_once(
        live_futures, fake_exchange):
    import json

    from tradebot.models import Notification
    from tradebot.telegram.format.events import event

    mgr, deciders, user = live_futures
    exchange = fake_exchange.book.accounts["key1"].exchange
    cfg = _pair(user, exchange)
    deciders["scripted"] = ScriptedDecider({_closed(fake_exchange): "buy"})
    p_open = fake_exchange.price("BTCUSDT")
    mgr.run_cycle(cfg.id)
    amount = Position.get(Position.config == cfg.id).amount
    fake_exchange.advance(1)
    mgr.run_cycle(cfg.id)  # the venue agrees with the book: nothing happens
    assert UserConfig.get_by_id(cfg.id).is_trading and Position.get(Position.config == cfg.id).status == "open"

    fake_exchange.advance(1)
    p_manual = fake_exchange.price("BTCUSDT") - 7  # the user sells in the app, a little below the market ...
    fake_exchange.futures.close_externally("key1", "BTCUSDT", price=p_manual)
    fake_exchange.advance(1)
    fake_exchange.book.mark_premium["BTCUSDT"] = D(15)  # ... and by the next cycle the mark is elsewhere
    mgr.run_cycle(cfg.id)
    pos = Position.get(Position.config == cfg.id)
    assert (pos.status, pos.close_reason, pos.exit_price) == ("closed", "external", p_manual)
    ext = Trade.get((Trade.config == cfg.id) & (Trade.side == "sell"))
    assert ext.reason == "external" and ext.fee == _fee(amount, p_manual)  # the venue's own fill and fee
    assert ext.pnl == (p_manual - p_open) * amount - _fee(amount, p_open) - _fee(amount, p_manual)
    # the venue's wallet moved by exactly what the pair booked
    assert fake_exchange.futures.accounts["key1"].wallet == WALLET + ext.pnl
    assert not UserConfig.get_by_id(cfg.id).is_trading
    st = UserState.get(UserState.config == cfg.id)
    assert "closed or changed outside the bot" in st.last_error and "stopped the pair" in st.last_error
    assert "fill(s) of the close" in st.last_error
    order_path = ORDER_PATH[exchange]
    posts_before = len(fake_exchange.requests_to(order_path, "POST"))
    fake_exchange.advance(1)
    mgr.run_cycle(cfg.id)
    errors = [json.loads(n.payload) for n in Notification.select().where(Notification.kind == "pair_error")]
    assert len(errors) == 1 and errors[0]["needs_action"] and "outside the bot" in errors[0]["message"]
    assert len(fake_exchange.requests_to(order_path, "POST")) == posts_before == 1  # nothing sent
    closed = Notification.select().where(Notification.kind == "trade_closed").get()
    assert "Closed outside the bot; booked the average of" in event("trade_closed", closed.payload)


@pytest.mark.parametrize("live_futures", ["binance", "bybit"], indirect=True)
def test_a_liquidation_reported_without_a_fill_is_booked_at_the_mark_price_and_says_so(live_futures,
                                                                                       fake_exchange):
    from tradebot.models import Notification
    from tradebot.telegram.format.events import event

    mgr, deciders, user = live_futures
    exchange = fake_exchange.book.accounts["key1"].exchange
    cfg = _pair(user, exchange)
    deciders["scripted"] = ScriptedDecider({_closed(fake_exchange): "short"})
    p_open = fake_exchange.price("BTCUSDT")
    mgr.run_cycle(cfg.id)
    amount = Position.get(Position.config == cfg.id).amount
    fake_exchange.advance(1)
    fake_exchange.futures.close_externally("key1", "BTCUSDT", price=p_open * D("1.3"), fee=False, fill=False)
    fake_exchange.book.mark_premium["BTCUSDT"] = D(-11)
    mark = fake_exchange.book.mark_price("BTCUSDT")
    mgr.run_cycle(cfg.id)
    pos = Position.get(Position.config == cfg.id)
    assert (pos.status, pos.close_reason, pos.exit_price) == ("closed", "external: no fill, mark price", mark)
    ext = Trade.get((Trade.config == cfg.id) & (Trade.side == "buy"))
    assert (ext.reason, ext.fee, ext.price) == ("external: no fill, mark price", 0, mark)
    assert ext.pnl == (p_open - mark) * amount - _fee(amount, p_open)
    text = event("trade_closed", Notification.select().where(Notification.kind == "trade_closed").get().payload)
    assert "no fill of the close found" in text and "at the mark price, fee unknown" in text
    assert "no fill of the close found" in UserState.get(UserState.config == cfg.id).last_error


def test_a_position_the_bot_did_not_open_stops_the_pair_before_it_trades(live_futures, fake_exchange):
    from tradebot.exchange.live import LiveBroker

    mgr, deciders, user = live_futures
    cfg = _pair(user)
    deciders["scripted"] = ScriptedDecider({_closed(fake_exchange): "buy"})
    LiveBroker(mgr.hub, "binance", "live", "key1", "secret1").futures_order(
        "BTC/USDT:USDT", "sell", D("0.01"), "tbmanual1", leverage=3, margin_mode="isolated")
    mgr.run_cycle(cfg.id)
    assert Order.select().count() == 0 and Position.select().count() == 0
    assert not UserConfig.get_by_id(cfg.id).is_trading
    assert "SHORT 0.01 BTC that the bot did not open" in UserState.get(UserState.config == cfg.id).last_error



# ---------------------------------------------------------------- SIGKILL with a futures order in flight


class _OpenLong:
    name = "openlong"

    def decide(self, ctx):
        from tradebot.strategy.base import Decision

        return Decision("hold" if ctx.position is not None else "buy", 90, "open", self.name)


def child_main(fake_url: str, db_url: str, now_ms: str) -> None:
    """Engine subprocess: one cycle of every trading pair (it opens a long), killed while the order is in flight."""
    from tests.fixtures_exchange import fast_settings
    from tradebot import db as dbmod
    from tradebot.engine.manager import BotManager
    from tradebot.exchange.hub import ExchangeHub

    dbmod.open_database(db_url)
    hub = ExchangeHub(fast_settings(fake_url, recv_window_ms=6000), now_ms=lambda: int(now_ms))
    hub.market_data.ticker_ttl_ms = 0
    mgr = BotManager(hub, lambda name: _OpenLong(), vault=StubVault(), clock=lambda: int(now_ms) / 1000)
    print("ready", flush=True)
    for cfg in UserConfig.select().where(UserConfig.is_trading == True):  # noqa: E712
        mgr.run_cycle(cfg.id)
    time.sleep(60)


def test_sigkill_with_a_futures_order_in_flight_then_restart_no_duplicate_book_equals_venue(
        database, sqlite_url, fake_exchange):
    from tests.fixtures_exchange import fast_settings
    from tradebot.engine.manager import BotManager
    from tradebot.exchange.hub import ExchangeHub

    fake = fake_exchange
    user = make_user(1)
    fake.add_account("key1", "secret1", {"USDT": "0"}, exchange="binance")
    fake.add_futures("key1", WALLET)
    cfg = _pair(user)
    # the venue books the order 1 s after it arrives (inside the 6 s recvWindow); the engine dies meanwhile
    fake.fault("/fapi/v1/order", "delay", delay=1.0, method="POST")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen([sys.executable, "-m", "tests.test_futures_live", "child", fake.url, sqlite_url,
                             str(fake.now_ms)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 30
        while not fake.requests_to("/fapi/v1/order", "POST") and time.monotonic() < deadline:
            time.sleep(0.005)
        assert Order.get(Order.config == cfg.id).status == "pending"  # the intent was stored before sending
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    deadline = time.monotonic() + 10
    while not fake.futures.orders and time.monotonic() < deadline:  # booked by the venue after the engine died
        time.sleep(0.01)
    venue = fake.futures.position("key1", "BTCUSDT")
    assert venue.qty > 0 and len(fake.futures.orders) == 1

    hub = ExchangeHub(fast_settings(fake.url, recv_window_ms=6000), now_ms=lambda: fake.now_ms)
    hub.market_data.ticker_ttl_ms = 0
    mgr = BotManager(hub, lambda name: _OpenLong(), vault=StubVault(), clock=lambda: fake.now_ms / 1000)
    fake.advance(1)
    mgr.runner.reconcile_pending(now_ms=fake.now_ms)  # what start() does first: looks the order up by client id
    for _ in range(2):
        mgr.run_cycle(cfg.id)
        fake.advance(1)
    assert len(fake.requests_to("/fapi/v1/order", "POST")) == 1  # never re-sent
    order = Order.get(Order.config == cfg.id)
    assert order.status == "filled" and order.client_order_id == fake.futures.orders[0].client_id
    pos = Position.get(Position.config == cfg.id)
    assert (pos.status, pos.side, pos.amount) == ("open", "long", venue.qty)  # book = exchange position
    assert UserConfig.get_by_id(cfg.id).is_trading  # the venue agrees: no mismatch, the pair trades on


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "child":
    child_main(*sys.argv[2:5])


FUNDING_PATH = {"binance": "/fapi/v1/income", "bybit": "/v5/execution/list"}


def _funding_asks(fake, exchange: str) -> int:
    return sum(1 for r in fake.requests_to(FUNDING_PATH[exchange])
               if r.params.get("incomeType", r.params.get("execType")) in ("FUNDING_FEE", "Funding"))


@pytest.mark.parametrize("live_futures, side", [("binance", "long"), ("binance", "short"), ("bybit", "long"),
                                                ("bybit", "short")], indirect=["live_futures"])
def test_live_funding_books_the_venues_payment_once_even_across_a_restart(live_futures, fake_exchange,
                                                                          exchange_hub, side):
    from tradebot.engine.manager import BotManager
    from tradebot.models import Notification
    from tradebot.telegram.format.events import event

    mgr, deciders, user = live_futures
    exchange = fake_exchange.book.accounts["key1"].exchange
    cfg = _pair(user, exchange)
    deciders["scripted"] = ScriptedDecider({_closed(fake_exchange): "buy" if side == "long" else "short"})
    fake_exchange.book.funding_rates["BTCUSDT"] = D("0.0003")
    mgr.run_cycle(cfg.id)
    pos = Position.get(Position.config == cfg.id)
    before = UserState.get(UserState.config == cfg.id)

    funding_at = (fake_exchange.now_ms // (8 * 3_600_000) + 1) * 8 * 3_600_000
    fake_exchange.set_time(funding_at + 2 * MINUTE)
    fake_exchange.futures.settle_funding()  # the venue settles at 16:00 ...
    fake_exchange.book.funding_rates["BTCUSDT"] = D("-0.0002")  # ... then its predicted rate turns
    [venue] = fake_exchange.futures.accounts["key1"].funding
    assert venue.time == funding_at and venue.amount != 0
    assert (venue.amount < 0) == (side == "long")  # a positive rate: longs pay, shorts receive
    mgr.run_cycle(cfg.id)

    paid = -venue.amount  # exactly what the venue booked, not the current rate
    pos = Position.get_by_id(pos.id)
    state = UserState.get(UserState.config == cfg.id)
    assert (pos.status, pos.funding, state.funding_paid) == ("open", paid, paid)
    assert state.realized_pnl == before.realized_pnl - paid
    assert state.last_funding_ts == funding_at
    notes = [event("funding", n.payload) for n in Notification.select().where(Notification.kind == "funding")]
    word = "paid" if side == "long" else "received"
    assert len(notes) == 1 and f"({word})" in notes[0] and side.upper() in notes[0]
    assert _funding_asks(fake_exchange, exchange) == 1

    # a restart (a new manager over the same database) neither asks again nor books it twice
    mgr._stopping.set()
    mgr2 = BotManager(exchange_hub, lambda name: deciders[name], vault=StubVault(),
                      clock=lambda: fake_exchange.now_ms / 1000, max_workers=2)
    try:
        for _ in range(2):
            fake_exchange.advance(1)
            mgr2.run_cycle(cfg.id)
    finally:
        mgr2._stopping.set()
    state = UserState.get(UserState.config == cfg.id)
    assert (Position.get_by_id(pos.id).funding, state.funding_paid) == (paid, paid)
    assert Notification.select().where(Notification.kind == "funding").count() == 1
    assert _funding_asks(fake_exchange, exchange) == 1


@pytest.mark.parametrize("live_futures", ["binance", "bybit"], indirect=True)
def test_live_funding_reported_late_is_still_booked_and_the_venue_asked_sparingly(live_futures, fake_exchange):
    mgr, deciders, user = live_futures
    exchange = fake_exchange.book.accounts["key1"].exchange
    cfg = _pair(user, exchange)
    deciders["scripted"] = ScriptedDecider({_closed(fake_exchange): "buy"})
    fake_exchange.book.funding_rates["BTCUSDT"] = D("0.0004")
    mgr.run_cycle(cfg.id)
    pos = Position.get(Position.config == cfg.id)
    fake_exchange.futures.report_delay_ms = 47 * MINUTE  # the venue reports the payment 47 minutes late
    funding_at = (fake_exchange.now_ms // (8 * 3_600_000) + 1) * 8 * 3_600_000
    fake_exchange.set_time(funding_at + MINUTE)
    for _ in range(60):  # a cycle a minute for an hour
        mgr.run_cycle(cfg.id)
        fake_exchange.advance(1)
    [venue] = fake_exchange.futures.accounts["key1"].funding
    state = UserState.get(UserState.config == cfg.id)
    assert (Position.get_by_id(pos.id).funding, state.funding_paid) == (-venue.amount, -venue.amount)
    assert state.last_funding_ts >= funding_at
    asks = _funding_asks(fake_exchange, exchange)
    assert 2 <= asks <= 11  # every 5 minutes while awaited (16:01 ... 16:51), not every minute; none once booked


@pytest.mark.parametrize("live_futures", ["binance", "bybit"], indirect=True)
def test_live_funding_of_a_position_closed_in_the_cycle_that_first_saw_the_funding_time_is_booked(
        live_futures, fake_exchange):
    mgr, deciders, user = live_futures
    exchange = fake_exchange.book.accounts["key1"].exchange
    cfg = _pair(user, exchange)
    fake_exchange.book.funding_rates["BTCUSDT"] = D("-0.0003")  # shorts pay
    funding_at = (fake_exchange.now_ms // (8 * 3_600_000) + 1) * 8 * 3_600_000
    deciders["scripted"] = ScriptedDecider({_closed(fake_exchange): "short"})
    mgr.run_cycle(cfg.id)
    pos = Position.get(Position.config == cfg.id)
    fake_exchange.futures.report_delay_ms = 3 * MINUTE
    fake_exchange.set_time(funding_at + 30_000)
    deciders["scripted"].script[_closed(fake_exchange)] = "close"
    mgr.run_cycle(cfg.id)  # first sees the funding time (not reported yet) and closes the short
    closed = Position.get_by_id(pos.id)
    assert closed.status == "closed" and closed.funding == 0
    pnl_at_close = closed.realized_pnl
    for _ in range(12):
        fake_exchange.advance(1)
        mgr.run_cycle(cfg.id)
    [venue] = fake_exchange.futures.accounts["key1"].funding
    paid = -venue.amount
    assert paid > 0
    closed = Position.get_by_id(pos.id)
    state = UserState.get(UserState.config == cfg.id)
    assert (closed.funding, closed.realized_pnl) == (paid, pnl_at_close)  # its fills' PnL; funding apart
    assert state.funding_paid == paid and state.realized_pnl == pnl_at_close - paid
    assert state.equity == state.cash == D(1000) + pnl_at_close - paid
    # the venue's wallet: the pair's money moved by exactly what it booked
    assert fake_exchange.futures.accounts["key1"].wallet == WALLET + state.realized_pnl
    from tradebot.models import Notification

    assert Notification.select().where(Notification.kind == "funding").count() == 1


@pytest.mark.parametrize("live_futures", ["binance", "bybit"], indirect=True)
def test_live_funding_history_longer_than_a_page_is_caught_up_each_time_once(live_futures, fake_exchange):
    """The bot was away for 36 days with a position open (108 funding times, more than one page of 100): the
    pair reads the history window by window over a few cycles and books every payment once."""
    mgr, deciders, user = live_futures
    exchange = fake_exchange.book.accounts["key1"].exchange
    cfg = _pair(user, exchange)
    deciders["scripted"] = ScriptedDecider({_closed(fake_exchange): "buy"})
    mgr.run_cycle(cfg.id)
    pos = Position.get(Position.config == cfg.id)
    fake_exchange.advance(36 * 24 * 60)
    fake_exchange.futures.settle_funding()
    venue = fake_exchange.futures.accounts["key1"].funding
    assert len(venue) >= 108
    for _ in range(4):
        mgr.run_cycle(cfg.id)
        fake_exchange.advance(1)
    paid = -sum((f.amount for f in venue), D(0))
    state = UserState.get(UserState.config == cfg.id)
    assert Position.get_by_id(pos.id).funding == paid and state.funding_paid == paid
    assert state.last_funding_ts >= venue[-1].time
