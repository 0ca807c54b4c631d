"""The technical decider's named parameters, its minimum edge vs the fee, and short signals (only when allowed)."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from tests.test_strategy_indicators import _load
from tradebot.strategy.base import DecisionContext
from tradebot.strategy.indicators import IndicatorSet
from tradebot.strategy.technical import TechnicalDecider, TechnicalParams

BTC_1H = "binance-spot-BTCUSDT-1h-2024-01-01_2024-06-10.csv.gz"


def _ctx(candles, indicators, position=None, allow_short=None):
    last = Decimal(str(candles[-1].close))
    ctx = DecisionContext("BTC/USDT", "1h", candles, indicators, position, Decimal(1000), Decimal(1000), last)
    if allow_short is not None:  # the field arrives with futures; until then the decider reads it with getattr
        ctx = _WithShort(ctx, allow_short)
    return ctx


class _WithShort:
    def __init__(self, ctx, allow_short):
        self._ctx, self.allow_short = ctx, allow_short

    def __getattr__(self, name):
        return getattr(self._ctx, name)


@dataclasses.dataclass(frozen=True)
class _Short:
    amount: Decimal
    entry_price: Decimal
    side: str = "short"


def _actions(dec, candles, allow_short=False):
    iset, holding, side, out = dec.indicator_set(), False, "long", []
    for c in candles:
        iset.update(c.ts, c.high, c.low, c.close)
        a = dec.quick_action(iset, holding, side, allow_short)
        if a in ("buy", "short"):
            holding, side = True, "long" if a == "buy" else "short"
        elif a in ("sell", "close"):
            holding = False
        if a != "hold":
            out.append(a)
    return out


def test_params_by_name_with_one_line_errors():
    p = TechnicalParams.from_mapping({"ema_fast": "8", "ema_slow": 40, "min_edge": "1.5"})
    assert (p.ema_fast, p.ema_slow, p.min_edge, p.rsi_exit) == (8, 40, 1.5, 80.0)
    assert p.periods == (8, 40, 9, 14, 20, 2.0, 14) and p.warmup == 50
    for values, text in (({"ema_fast": 30}, "below ema_slow"), ({"ema_fast": "8.5"}, "whole number"),
                         ({"nope": 1}, "unknown technical parameter"), ({"rsi_exit": 40}, "rsi_exit"),
                         ({"min_edge": -1}, "min_edge")):
        with pytest.raises(ValueError, match=text):
            TechnicalParams.from_mapping(values)


def test_other_periods_change_the_signals_and_the_decider_recomputes_a_default_snapshot():
    candles = _load(BTC_1H)
    default, slow = TechnicalDecider(), TechnicalDecider(TechnicalParams(ema_fast=20, ema_slow=50))
    assert _actions(default, candles) != _actions(slow, candles)
    # live: the engine's shared snapshot has the default periods; the decider computes its own from the candles
    shared = IndicatorSet()
    shared.feed(candles[:300])
    own = slow.indicator_set()
    own.feed(candles[:300])
    d_shared = slow.decide(_ctx(candles[:300], shared.snapshot()))
    d_own = slow.decide(_ctx(candles[:300], own.snapshot()))
    assert (d_shared.action, d_shared.confidence, d_shared.reasoning) == (d_own.action, d_own.confidence,
                                                                           d_own.reasoning)
    assert "EMA20" in d_own.reasoning and "EMA50" in d_own.reasoning


def test_min_edge_stops_entries_whose_candles_do_not_pay_the_fees():
    candles = _load(BTC_1H)
    free = _actions(TechnicalDecider(min_edge=0), candles)
    # 1h BTC candles move ~0.5 % (ATR) against a 0.2 % round trip: min_edge 1 keeps most entries, 10 none
    some = _actions(TechnicalDecider(min_edge=1.0), candles)
    none = _actions(TechnicalDecider(min_edge=10.0), candles)
    assert free.count("buy") >= 10 and 0 < some.count("buy") <= free.count("buy") and none == []
    # a cheaper fee lets the same edge through again
    assert _actions(TechnicalDecider(min_edge=10.0, fee_rate=0.0001), candles).count("buy") > 0


def test_short_signals_only_when_allowed_and_mirrored():
    candles = _load(BTC_1H)
    dec = TechnicalDecider()
    spot = _actions(dec, candles)
    assert set(spot) <= {"buy", "sell"}  # spot: never short/close
    fut = _actions(dec, candles, allow_short=True)
    assert fut.count("short") >= 5 and fut.count("close") >= 5 and fut.count("buy") >= 5
    # decide() reads allow_short and the position side the same way (getattr, before and after futures)
    iset = IndicatorSet()
    seen = set()
    for i, c in enumerate(candles):
        iset.update(c.ts, c.high, c.low, c.close)
        for pos, allow in ((None, True), (None, False), (_Short(Decimal(1), Decimal(c.close)), True)):
            quick = dec.quick_action(iset, pos is not None, getattr(pos, "side", "long"), allow)
            if quick in ("short", "close"):
                d = dec.decide(_ctx(candles[: i + 1], iset.snapshot(), pos, allow))
                assert d.action == quick and 50 <= d.confidence <= 100
                seen.add(quick)
    assert seen == {"short", "close"}


def test_backtest_feeds_the_deciders_own_periods():
    """The replay's indicator set has the decider's periods: its entries are the decider's own signals
    (stops off, so a position changes only on a signal; orders fill at the next candle's open)."""
    from tests.test_strategy_indicators import DATA
    from tradebot.backtest.data import load_candles
    from tradebot.backtest.replay import BacktestConfig, run_backtest
    from tradebot.engine.core import PairSettings
    from tradebot.exchange.base import MarketRules

    series = load_candles(DATA / BTC_1H)
    dec = TechnicalDecider(TechnicalParams(ema_fast=20, ema_slow=50, rsi_exit=100))
    rules = MarketRules("BTC/USDT", "BTC", "USDT", Decimal("0.00000001"), None, None, None, Decimal("0.001"))
    settings = PairSettings(stop_loss_percent=Decimal(0), take_profit_percent=Decimal(0),
                            amount_step=rules.amount_step)
    res = run_backtest(series, dec, BacktestConfig("BTC/USDT", "1h", rules, settings))
    iset, holding, expected = dec.indicator_set(), False, []
    for i in range(len(series) - 1):
        iset.update(series.ts[i], series.high[i], series.low[i], series.close[i])
        a = dec.quick_action(iset, holding)
        if a == "buy":
            expected.append(series.ts[i + 1])
            holding = True
        elif a == "sell":
            holding = False
    assert len(expected) >= 5 and [t.entry_ts for t in res.trades] == expected
    assert all("EMA20" in t.reasoning for t in res.trades)
