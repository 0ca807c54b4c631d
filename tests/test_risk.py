from decimal import Decimal as D

from tradebot import risk
from tradebot.strategy.base import Candle


def test_position_size_percent_of_equity_capped_by_cash():
    assert risk.position_size(D(1000), D(1000), D(30)) == D(300)
    assert risk.position_size(D(1000), D(100), D(30)) == D(100)
    assert risk.position_size(D(1000), D(0), D(30)) == 0
    assert risk.position_size(D(1000), D(100), D(30), D("0.001")) <= D(100) / D("1.001")


def test_floor_to_step_and_minimums():
    assert risk.floor_to_step(D("0.00999"), D("0.001")) == D("0.009")
    assert risk.floor_to_step(D("0.00999"), None) == D("0.00999")
    assert risk.check_minimums(D("0.001"), D(5), None, D(10))
    assert risk.check_minimums(D("0.001"), D(50), D("0.01"), D(10))
    assert risk.check_minimums(D("0.1"), D(50), D("0.01"), D(10)) is None


def test_sl_tp_prices():
    assert risk.stop_loss_price(D(100), D(2)) == D(98)
    assert risk.take_profit_price(D(100), D(5)) == D(105)
    assert risk.stop_loss_price(D(100), D(0)) is None


def c(ts, o, h, lo, cl):
    return Candle(ts, o, h, lo, cl, 1.0)


def test_check_exit_first_candle_wins_and_sl_beats_tp_inside_one_candle():
    cs = [c(1, 100, 101, 99, 100), c(2, 100, 106, 99, 104), c(3, 104, 104, 97, 98)]
    assert risk.check_exit(98.0, 105.0, cs, 98.0) == ("take_profit", 105.0, 2)
    both = [c(1, 100, 106, 97, 100)]
    assert risk.check_exit(98.0, 105.0, both, 100.0) == ("stop_loss", 98.0, 1)
    gap = [c(1, 95, 96, 94, 95)]
    assert risk.check_exit(98.0, 105.0, gap, 95.0) == ("stop_loss", 95.0, 1)
    assert risk.check_exit(98.0, 105.0, [], 97.5) == ("stop_loss", 97.5, None)
    assert risk.check_exit(98.0, 105.0, [c(1, 100, 101, 99, 100)], 100.0) is None


def test_breaker_rules():
    lim = risk.BreakerLimits()
    kw = dict(budget=D(1000), equity=D(1000), day_ref_equity=D(1000), peak_ref_equity=D(1000))
    assert risk.evaluate_breaker(lim, consecutive_losses=4, **kw) is None
    assert risk.evaluate_breaker(lim, consecutive_losses=5, **kw).kind == "consecutive_losses"
    kw["equity"] = D(950)
    t = risk.evaluate_breaker(lim, consecutive_losses=0, **kw)
    assert t.kind == "daily_loss" and t.value == D(50)
    kw.update(equity=D(849), day_ref_equity=D(849), peak_ref_equity=D(1000))
    assert risk.evaluate_breaker(lim, consecutive_losses=0, **kw).kind == "drawdown"
