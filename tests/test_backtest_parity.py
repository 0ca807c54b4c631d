"""The backtest reproduces the LIVE trading cycle: the same candles run through BotManager.run_cycle (real
cycle code, DB, paper-rule fills at the last price, breaker) and through the backtester give the same
trades, PnL, fees and breaker trips.

To make the two comparable the candles are made continuous (each open = the previous close), because the
live cycle sells and buys at the last price right after a close while the backtester fills at the next
open; with `exit_fill=next_open` both then fill at the same prices at the same times."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from decimal import Decimal as D
from pathlib import Path

from tests.fixtures_engine import MINUTE, REAL_START, StubVault, make_pair, make_user, rules_for
from tradebot.backtest.data import Series, load_candles
from tradebot.backtest.replay import BacktestConfig, run_backtest
from tradebot.engine.core import PairSettings
from tradebot.engine.manager import BotManager
from tradebot.models import RiskEvent, Trade
from tradebot.risk import BreakerLimits
from tradebot.strategy.base import Candle, Decision

KLINES = Path(__file__).resolve().parent / "data"
N = 1000  # candles in the series; the live clock starts after candle 599
OFFSET = 19_000  # a livelier stretch of the file (2023-01-14), re-stamped to start where the clock does


class ByTs:
    """Buy whenever flat; sell on every 25th candle; hold otherwise (stops and targets do the rest)."""

    name = "bytime"

    def decide(self, ctx):
        ts = ctx.candles[-1].ts
        if ctx.position is None:
            return Decision("buy", 90, "flat", self.name)
        if (ts // MINUTE) % 25 == 0:
            return Decision("sell", 90, "25th", self.name)
        return Decision("hold", 50, "wait", self.name)


def _ms(d: dt.datetime) -> int:
    return int((d - dt.datetime(1970, 1, 1)).total_seconds() * 1000)


def continuous_candles() -> list[Candle]:
    s = load_candles(KLINES / "binance-spot-BTCUSDT-1m-2023-01-01_2023-01-14.csv.gz")
    out, prev = [], None
    for k in range(N):
        i = OFFSET + k
        o = s.open[i] if prev is None else prev
        out.append(Candle(REAL_START + k * MINUTE, o, max(s.high[i], o), min(s.low[i], o), s.close[i], s.volume[i]))
        prev = s.close[i]
    return out


def test_backtest_equals_live_cycle(database, replay_hub, clock):
    candles = continuous_candles()
    replay_hub.market_data.series["BTC/USDT"] = candles
    decider = ByTs()
    no_user_breaker = BreakerLimits(0, D(0), D(0), 60)  # user scope (all pairs) is not simulated
    mgr = BotManager(replay_hub, lambda name: decider, vault=StubVault(), clock=clock, max_workers=1,
                     user_limits=no_user_breaker)
    user = make_user(7)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="bytime", timeframe="1m", stop_loss_percent=D("0.15"),
                    take_profit_percent=D("0.2"), max_consecutive_losses=2, cooldown_minutes=20,
                    daily_loss_limit_percent=D("0.5"), max_drawdown_percent=D(0))
    mgr.start_pair(cfg.id)
    first = (clock.ms - REAL_START) // MINUTE - 1  # newest closed candle at the first cycle
    while clock.ms <= REAL_START + (N - 1) * MINUTE:  # one cycle per candle close
        mgr.run_cycle(cfg.id)
        clock.advance(1)
    live = list(Trade.select().order_by(Trade.id))
    live_trips = [(e.kind, _ms(e.created_at)) for e in RiskEvent.select().order_by(RiskEvent.id)
                  if e.kind != "reset"]

    rules = rules_for("BTC/USDT")
    settings = PairSettings.from_config(cfg, rules)
    series = Series([c.ts for c in candles], [c.open for c in candles], [c.high for c in candles],
                    [c.low for c in candles], [c.close for c in candles], [c.volume for c in candles], MINUTE)
    r = run_backtest(series, decider, BacktestConfig("BTC/USDT", "1m", rules, settings, D(1000), "binance",
                                                     "next_open"), start=first)

    bt = []
    for t in r.trades:
        bt.append(("buy", t.entry_ts, t.amount, t.entry_price))
        if t.closed:
            bt.append(("sell", t.exit_ts, t.exit_amount, t.exit_price, t.pnl, t.reason))
    lv = []
    for t in live:
        ts = _ms(t.executed_at)
        lv.append(("buy", ts, t.amount, t.price) if t.side == "buy" else ("sell", ts, t.amount, t.price, t.pnl, t.reason))
    assert len(bt) >= 20 and lv == bt  # every fill: time, amount, price, pnl, exit reason
    assert {t[5] for t in bt if t[0] == "sell"} >= {"stop_loss", "take_profit", "signal"}
    assert len(live_trips) == len(r.trips) >= 2
    assert live_trips == [(t.kind, t.ts) for t in r.trips]  # same kind, same minute
    assert r.skipped.get("breaker", 0) > 0


class LongShort:
    """Futures: open long when flat in even 50-minute blocks, short in odd ones; close every 25th candle."""

    name = "longshort"

    def decide(self, ctx):
        m = ctx.candles[-1].ts // MINUTE
        if ctx.position is None:
            return Decision("buy" if (m // 50) % 2 == 0 else "short", 90, "flat", self.name)
        if m % 25 == 0:
            return Decision("close", 90, "25th", self.name)
        return Decision("hold", 50, "wait", self.name)


def test_backtest_equals_live_cycle_for_futures(database, replay_hub, clock):
    """The same parity for a 3x perpetual: longs and shorts, stops and targets on both sides, funding at
    16:00 UTC, the breaker."""
    from tradebot.models import UserState

    candles = continuous_candles()
    replay_hub.market_data.series["BTC/USDT"] = candles
    decider = LongShort()
    no_user_breaker = BreakerLimits(0, D(0), D(0), 60)
    mgr = BotManager(replay_hub, lambda name: decider, vault=StubVault(), clock=clock, max_workers=1,
                     user_limits=no_user_breaker)
    cfg = make_pair(make_user(8), "BTC/USDT:USDT", "1000", decider="longshort", timeframe="1m",
                    market_type="futures", leverage=3, stop_loss_percent=D("0.3"), take_profit_percent=D("0.4"),
                    max_consecutive_losses=3, cooldown_minutes=20, daily_loss_limit_percent=D("5"),
                    max_drawdown_percent=D(0))
    mgr.start_pair(cfg.id)
    first = (clock.ms - REAL_START) // MINUTE - 1
    while clock.ms <= REAL_START + (N - 1) * MINUTE:
        mgr.run_cycle(cfg.id)
        clock.advance(1)
    live = list(Trade.select().order_by(Trade.id))
    live_trips = [(e.kind, _ms(e.created_at)) for e in RiskEvent.select().order_by(RiskEvent.id)
                  if e.kind != "reset"]

    rules = rules_for("BTC/USDT:USDT")
    settings = replace(PairSettings.from_config(cfg, rules), funding_rate=D("0.0001"))
    series = Series([c.ts for c in candles], [c.open for c in candles], [c.high for c in candles],
                    [c.low for c in candles], [c.close for c in candles], [c.volume for c in candles], MINUTE)
    r = run_backtest(series, decider, BacktestConfig("BTC/USDT:USDT", "1m", rules, settings, D(1000), "binance",
                                                     "next_open"), start=first)
    opening = {"long": "buy", "short": "sell"}
    closing = {"long": "sell", "short": "buy"}
    bt = []
    for t in r.trades:
        bt.append((opening[t.side], t.entry_ts, t.amount, t.entry_price))
        if t.closed:  # the trade's pnl includes its funding; the live closing fill's does not
            bt.append((closing[t.side], t.exit_ts, t.exit_amount, t.exit_price, t.pnl + t.funding, t.reason))
    lv = []
    for t in live:
        ts = _ms(t.executed_at)
        lv.append((t.side, ts, t.amount, t.price) if t.pnl is None else (t.side, ts, t.amount, t.price, t.pnl, t.reason))
    assert len(bt) >= 20 and lv == bt
    assert {t.side for t in r.trades} == {"long", "short"}
    assert {t[5] for t in bt if len(t) > 4} >= {"stop_loss", "take_profit", "signal"}
    assert live_trips == [(t.kind, t.ts) for t in r.trips]
    state = UserState.get(UserState.config == cfg.id)
    assert state.funding_paid == r.book.funding_paid != 0
    assert state.realized_pnl == r.book.realized_pnl
