"""Backtest correctness: a hand-computed run, stop-loss / take-profit inside a candle, circuit breaker."""

from decimal import Decimal as D

import pytest

from tradebot.backtest.data import Series
from tradebot.backtest.replay import BacktestConfig, run_backtest
from tradebot.backtest.report import build_report
from tradebot.engine.core import PairSettings
from tradebot.exchange.base import MarketRules
from tradebot.risk import BreakerLimits
from tradebot.strategy.base import Decision

H = 3_600_000
T0 = 1_704_067_200_000  # 2024-01-01T00:00:00Z


class Scripted:
    """Decides from a script {candle index: (action, confidence)}; hold otherwise."""

    name = "scripted"

    def __init__(self, script, t0=T0, tf=H):
        self.script, self.t0, self.tf = script, t0, tf
        self.seen = []

    def decide(self, ctx):
        i = (ctx.candles[-1].ts - self.t0) // self.tf
        self.seen.append((i, ctx.position is not None))
        action, conf = self.script.get(i, ("hold", 0))
        return Decision(action, conf, f"script {i}", self.name)


def series(rows, t0=T0, tf=H):
    n = len(rows)
    return Series([t0 + i * tf for i in range(n)], [r[0] for r in rows], [r[1] for r in rows],
                  [r[2] for r in rows], [r[3] for r in rows], [1.0] * n, tf, "test")


def config(**kw):
    limits = kw.pop("limits", BreakerLimits(0, D(0), D(0), 60))
    rules = MarketRules("ABC/USDT", "ABC", "USDT", D("0.001"), None, None, None, D("0.001"))
    settings = PairSettings(D(50), D(2), D(5), 60, limits, rules.amount_step, None, None, rules.taker_fee)
    return BacktestConfig("ABC/USDT", "1h", rules, settings, D(1000), "binance", kw.pop("exit_fill", "trigger"))


#        open    high    low     close
HAND = [
    (100.0, 100.5, 99.5, 100.0),     # 0
    (100.0, 100.6, 99.6, 100.2),     # 1
    (100.2, 100.4, 99.8, 100.0),     # 2  buy decided at the close
    (100.0, 101.0, 99.5, 100.8),     # 3  buy fills at the open 100
    (100.8, 102.0, 100.5, 101.5),    # 4
    (101.5, 103.0, 101.0, 102.5),    # 5
    (102.5, 104.5, 102.0, 104.0),    # 6  sell decided
    (104.8, 105.5, 103.5, 104.0),    # 7  sell fills at the open 104.8
    (104.0, 104.2, 102.0, 102.5),    # 8  buy decided
    (102.28, 103.0, 101.5, 102.5),   # 9  buy fills at 102.28 (stop 100.2344, target 107.394)
    (102.5, 103.5, 101.0, 101.2),    # 10
    (101.2, 101.5, 99.5, 100.0),     # 11 low 99.5 hits the stop: exit at 100.2344
    (100.0, 100.8, 99.8, 100.5),     # 12 buy at confidence 50: refused (min 60)
    (100.5, 101.5, 100.2, 101.3),    # 13 buy decided
    (101.16, 102.0, 100.9, 101.8),   # 14 buy fills at 101.16 (stop 99.1368, target 106.218)
    (101.8, 104.0, 101.5, 103.9),    # 15
    (103.9, 107.0, 103.5, 106.5),    # 16 high 107 hits the target: exit at 106.218
    (106.5, 106.8, 105.5, 106.0),    # 17 buy decided
    (103.58, 104.0, 103.0, 103.8),   # 18 buy fills at 103.58; another buy decided: ignored (holding)
    (103.8, 105.0, 103.2, 104.5),    # 19 end: position valued at 104.5
]
SCRIPT = {2: ("buy", 80), 6: ("sell", 70), 8: ("buy", 70), 12: ("buy", 50), 13: ("buy", 90),
          17: ("buy", 75), 18: ("buy", 99)}


def test_hand_computed_run():
    """Budget 1000, position 50 % of equity, stop 2 %, target 5 %, fee 0.1 % (base on buys, quote on
    sells), amount step 0.001. Every figure below is worked out by hand in the comments."""
    r = run_backtest(series(HAND), Scripted(SCRIPT), config())
    t1, t2, t3, t4 = r.trades
    # 1: size 1000*50% = 500; 500/100 = 5.000 ABC; fee 0.005 ABC (= 0.5 USDT) -> 4.995 net; cash 500
    assert (t1.entry_ts, t1.entry_price, t1.amount, t1.entry_cost, t1.entry_fee) == (
        T0 + 3 * H, D("100"), D("4.995"), D("500.000"), D("0.500"))
    # sell 4.995 @ 104.8 = 523.476, fee 0.523476 -> 522.952524; pnl 22.952524; cash 1022.952524
    assert (t1.exit_ts, t1.exit_price, t1.proceeds, t1.exit_fee, t1.pnl, t1.reason, t1.bars) == (
        T0 + 7 * H, D("104.8"), D("522.952524"), D("0.523476"), D("22.952524"), "signal", 4)
    # 2: equity 1022.952524 -> size 511.476262; /102.28 = 5.0007.. -> 5.000; cost 511.40, fee 0.005*102.28
    assert (t2.entry_ts, t2.entry_price, t2.amount, t2.entry_cost, t2.entry_fee) == (
        T0 + 9 * H, D("102.28"), D("4.995"), D("511.40000"), D("0.5114000"))
    # stop 102.28*0.98 = 100.2344; 4.995*100.2344 = 500.670828, fee 0.50067083 (8 dp) -> 500.17015717
    # pnl 500.17015717 - 511.40 = -11.22984283; cash 511.552524 + 500.17015717 = 1011.72268117
    assert (t2.exit_ts, t2.exit_price, t2.proceeds, t2.exit_fee, t2.pnl, t2.reason) == (
        T0 + 11 * H, D("100.2344"), D("500.17015717"), D("0.50067083"), D("-11.22984283"), "stop_loss")
    # 3: size 1011.72268117/2 = 505.861340585 -> 505.86134058 (rounded down to 1e-8); /101.16 -> 5.000
    assert (t3.entry_ts, t3.entry_price, t3.entry_cost, t3.entry_fee) == (
        T0 + 14 * H, D("101.16"), D("505.80000"), D("0.5058000"))
    # target 101.16*1.05 = 106.218; 4.995*106.218 = 530.55891, fee 0.53055891 -> 530.02835109
    assert (t3.exit_ts, t3.exit_price, t3.proceeds, t3.exit_fee, t3.pnl, t3.reason) == (
        T0 + 16 * H, D("106.218"), D("530.02835109"), D("0.53055891"), D("24.22835109"), "take_profit")
    # 4: equity 1035.95103226 -> size 517.97551613; /103.58 -> 5.000; cost 517.90; still open at the end
    assert (t4.entry_ts, t4.entry_price, t4.entry_cost, t4.entry_fee, t4.closed) == (
        T0 + 18 * H, D("103.58"), D("517.90000"), D("0.5179000"), False)
    # final: cash 1035.95103226 - 517.90 = 518.05103226, plus 4.995 * 104.5 = 521.9775
    assert r.final_equity == D("1040.02853226")
    assert r.book.cash == D("518.05103226")
    assert r.book.fees_paid == D("3.58980574")  # 0.5+0.523476+0.5114+0.50067083+0.5058+0.53055891+0.5179
    assert r.book.realized_pnl == D("35.95103226")
    assert r.skipped == {"low_confidence": 1}

    rep = build_report(r)
    assert rep["end_equity_exact"] == "1040.02853226"
    assert rep["trades"] == 3 and rep["win_rate_percent"] == 66.67
    assert rep["profit_factor"] == round((22.952524 + 24.22835109) / 11.22984283, 4)
    assert rep["exits"] == {"signal": 1, "stop_loss": 1, "take_profit": 1}
    assert rep["exposure_percent"] == 50.0  # closes 3-6, 9-10, 14-15, 18-19 in a position
    assert rep["buy_and_hold_return_percent"] == 4.5
    assert rep["return_percent"] == round((1040.02853226 / 1000 - 1) * 100, 4)
    # peak 1023.540024 at close 9 (511.552524 + 4.995*102.5), trough 1011.72268117 after the stop
    assert rep["max_drawdown_percent"] == round(11.81734283 / 1023.540024 * 100, 4)
    assert rep["best_trade"]["pnl"] == 24.22835109 and rep["worst_trade"]["pnl"] == -11.22984283
    assert rep["open_position"]["entry_price"] == 103.58


def _one_trade(rows, **kw):
    return run_backtest(series(rows), Scripted({0: ("buy", 90)}), config(**kw)).trades[0]


BASE = (100.0, 100.5, 99.5, 100.0)  # buy decided at its close, fills at the next open 100 (stop 98, target 105)


@pytest.mark.parametrize("candle,reason,price", [
    ((100.0, 106.0, 97.0, 100.0), "stop_loss", "98"),      # both levels inside one candle: the stop wins
    ((100.0, 105.0, 99.0, 104.0), "take_profit", "105"),   # touches the target exactly
    ((100.0, 101.0, 98.0, 99.0), "stop_loss", "98"),       # touches the stop exactly
])
def test_stop_loss_take_profit_inside_a_candle(candle, reason, price):
    t = _one_trade([BASE, candle, (100.0, 100.0, 100.0, 100.0)])
    # entered at candle 1's open and exited inside the same candle
    assert (t.entry_ts, t.exit_ts, t.reason, t.exit_price) == (T0 + H, T0 + H, reason, D(price))


def test_gaps_exit_at_the_open():
    up = [BASE, (100.0, 101.0, 99.5, 100.5), (107.0, 108.0, 106.5, 107.5)]  # opens above the 105 target
    t = _one_trade(up)
    assert (t.reason, t.exit_price, t.exit_ts) == ("take_profit", D("107"), T0 + 2 * H)
    down = [BASE, (100.0, 101.0, 99.5, 100.5), (95.0, 96.0, 94.0, 95.5)]  # opens below the 98 stop
    t = _one_trade(down)
    assert (t.reason, t.exit_price) == ("stop_loss", D("95"))


def test_exit_fill_next_open():
    rows = [BASE, (100.0, 101.0, 97.0, 99.0), (97.5, 98.0, 96.0, 97.0)]
    t = _one_trade(rows, exit_fill="next_open")
    assert (t.reason, t.exit_price, t.exit_ts) == ("stop_loss", D("97.5"), T0 + 2 * H)


def test_circuit_breaker_trips_and_pauses_like_live():
    """Two losing trades in a row trip the breaker (max_consecutive_losses=2, cooldown 180 min). While
    paused the core refuses buys (exits stay allowed); the first buy after the pause goes through."""
    rows = []
    price = 100.0
    for _ in range(16):  # a slow slide: every round trip loses, no stop is touched
        rows.append((price, price + 0.2, price - 0.5, price - 0.3))
        price -= 0.3
    script = {i: ("buy", 90) for i in range(7)}
    script.update({1: ("sell", 90), 3: ("sell", 90)})  # losing exits fill at the opens of 2 and 4
    limits = BreakerLimits(max_consecutive_losses=2, daily_loss_limit_percent=D(0),
                           max_drawdown_percent=D(0), cooldown_minutes=180)
    dec = Scripted(script)
    r = run_backtest(series(rows), dec, config(limits=limits))
    (trip,) = r.trips
    # the 2nd losing sell fills at candle 4's open: the breaker trips there, paused for 180 min
    assert (trip.kind, trip.ts, trip.until_ms) == ("consecutive_losses", T0 + 4 * H, T0 + 7 * H)
    buys = [t.entry_ts for t in r.trades]
    # buy decided at close 0 -> fills at 1; close 2 -> 3; closes 4, 5 refused (the close of 5 is 6h < 7h);
    # at the close of 6 (now = 7h) the pause has ended: fills at 7
    assert buys == [T0 + H, T0 + 3 * H, T0 + 7 * H]
    assert r.skipped == {"breaker": 2}
    assert [t.pnl < 0 for t in r.trades[:2]] == [True, True]
    assert build_report(r)["circuit_breaker_trips"] == 1


def test_drawdown_breaker_trips_on_mark_to_market():
    rows = [BASE, (100.0, 100.5, 99.0, 99.2), (99.2, 99.3, 98.6, 98.7)]
    limits = BreakerLimits(0, D(0), D("0.5"), 60)  # trip at 0.5 % below the peak equity (1000)
    r = run_backtest(series(rows), Scripted({0: ("buy", 90)}), config(limits=limits))
    # holding 4.995 after the buy at 100 (cash 500): close 99.2 -> 995.504 (-0.45 %), no trip;
    # close 98.7 -> 993.0065 (-0.70 %): trips at the close of candle 2, the position is kept
    (trip,) = r.trips
    assert trip.kind == "drawdown" and trip.ts == T0 + 3 * H
    assert r.final_equity == D("993.0065") and r.trades[0].closed is False


def test_llm_decider_in_a_backtest():
    """The slow path: a full DecisionContext per candle (history view, snapshot, position, cash)."""
    from tests.fakes.llm import FakeLLM
    from tradebot.strategy.llm import LLMDecider, LLMSettings

    rows = [(100.0 + k * 0.1, 100.5 + k * 0.1, 99.5 + k * 0.1, 100.05 + k * 0.1) for k in range(40)]
    with FakeLLM() as fake:
        fake.answer_json({"action": "buy", "confidence": 90, "reasoning": "up", "stop_loss": 90, "take_profit": 200})
        dec = LLMDecider(LLMSettings(base_url=fake.base_url, api_key="k", model="m"))
        r = run_backtest(series(rows), dec, config())
    assert len(fake.requests) == 40
    (t,) = r.trades  # bought once at candle 1's open; later buys are turned into holds while holding
    assert t.entry_ts == T0 + H and not t.closed and r.book.stop_loss == D(90) and r.book.take_profit == D(200)
    last_prompt = fake.requests[-1]["json"]["messages"][1]["content"]
    assert "Position: long" in last_prompt and "Last 24 candles" in last_prompt  # no amount: shared prompt
