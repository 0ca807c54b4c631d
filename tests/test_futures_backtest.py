"""Futures backtest by hand: a 20-candle 1h series with a long (held over the 08:00 UTC funding time), a
short stopped out inside a candle, every number computed by hand to the last decimal; long and short
reported apart; a gap through the liquidation price; the --funding file and the CLI."""

import json
from decimal import Decimal as D

from click.testing import CliRunner

from tests.test_backtest_replay import T0, Scripted, series
from tradebot.backtest.funding import load_funding
from tradebot.backtest.replay import BacktestConfig, run_backtest
from tradebot.backtest.report import build_report, format_text
from tradebot.engine.core import PairSettings
from tradebot.exchange.base import MarketRules
from tradebot.risk import BreakerLimits

H = 3_600_000

#        open    high    low     close
ROWS = [
    (100.0, 100.0, 100.0, 100.0),   # 0  (00:00)
    (100.0, 100.5, 99.8, 100.0),    # 1  buy decided at the close
    (100.0, 101.0, 99.5, 101.0),    # 2  long fills at the open 100: 9 ABC (margin 300 x 3 / 100)
    (101.0, 102.0, 100.5, 102.0),   # 3
    (102.0, 103.0, 101.5, 103.0),   # 4
    (103.0, 104.0, 102.5, 104.0),   # 5
    (104.0, 104.5, 103.5, 104.0),   # 6
    (104.0, 105.5, 103.8, 105.0),   # 7  closes at 08:00 at 105: funding 9 x 105 x 0.0001 = 0.0945 paid
    (105.0, 106.0, 104.5, 105.5),   # 8
    (105.5, 106.5, 105.0, 106.0),   # 9  sell decided
    (106.0, 106.5, 105.5, 106.0),   # 10 long closes at the open 106; short decided at the close 106
    (106.0, 106.8, 105.2, 106.5),   # 11 short fills at 106 (stop 108.12)
    (106.5, 107.5, 106.0, 107.0),   # 12
    (107.0, 109.0, 106.8, 108.5),   # 13 the high 109 passes the stop: out at 108.12 inside the candle
    (108.5, 108.8, 108.0, 108.2),   # 14
    (108.2, 108.5, 107.8, 108.0),   # 15 (16:00: flat, no funding)
    (108.0, 108.4, 107.6, 108.1),   # 16
    (108.1, 108.3, 107.9, 108.0),   # 17
    (108.0, 108.2, 107.7, 107.9),   # 18
    (107.9, 108.0, 107.5, 107.6),   # 19
]


def futures_config(leverage=3, funding=D("0.0001"), **kw):
    rules = MarketRules("ABC/USDT:USDT", "ABC", "USDT", D("0.001"), None, None, None, D("0.0005"))
    settings = PairSettings(D(30), D(2), D(50), 60, BreakerLimits(0, D(0), D(0), 60), rules.amount_step, None,
                            None, rules.taker_fee, market="futures", leverage=leverage, funding_rate=funding, **kw)
    return BacktestConfig("ABC/USDT:USDT", "1h", rules, settings, D(1000), "binance", "trigger")


def test_twenty_candles_long_short_funding_and_a_stop_inside_a_candle_by_hand():
    script = {1: ("buy", 90), 9: ("sell", 90), 10: ("short", 90)}
    res = run_backtest(series(ROWS), Scripted(script), futures_config())
    long_, short = res.trades
    # long: 9 ABC at 100, fee 900 x 0.0005 = 0.45; closed at 106, fee 954 x 0.0005 = 0.477; funding 0.0945
    assert (long_.side, long_.entry_price, long_.amount, long_.entry_fee) == ("long", D(100), D("9.000"), D("0.45"))
    assert (long_.exit_price, long_.exit_fee, long_.funding) == (D(106), D("0.477"), D("0.0945"))
    assert long_.pnl == D(54) - D("0.45") - D("0.477") - D("0.0945") == D("52.9785")
    assert long_.entry_cost == D(300) + D("0.45")  # margin + fee
    # short: equity 1052.9785 -> margin 315.89355, notional 947.68065 -> 8.940 ABC at 106
    assert (short.side, short.entry_price, short.amount) == ("short", D(106), D("8.940"))
    assert short.entry_fee == D("0.47382")  # 947.64 x 0.0005
    assert (short.reason, short.exit_price, short.exit_fee) == ("stop_loss", D("108.12"), D("0.4832964"))
    assert short.pnl == D("8.94") * (D(106) - D("108.12")) - D("0.47382") - D("0.4832964") == D("-19.9099164")
    assert res.final_equity == D("1033.0685836")
    assert res.book.funding_paid == D("0.0945")
    rep = build_report(res)
    fut = rep["futures"]
    assert fut["by_side"]["long"] == {"trades": 1, "wins": 1, "pnl": 52.9785, "pnl_exact": "52.9785",
                                      "funding": 0.0945}
    assert fut["by_side"]["short"]["pnl_exact"] == "-19.9099164" and fut["liquidations"] == 0
    assert rep["end_equity_exact"] == "1033.0685836"
    text = format_text(rep)
    assert "Futures           3x, direction both, funding 0.0001, funding paid 0.0945" in text
    assert "long            1 trades, 1 won, PnL 52.9785" in text


def test_a_gap_through_the_liquidation_price_liquidates_at_the_bankruptcy_price():
    rows = [(100.0, 100.0, 100.0, 100.0)] * 2 + [(100.0, 100.0, 100.0, 100.0), (85.0, 86.0, 80.0, 82.0),
                                                 (82.0, 82.0, 82.0, 82.0)]
    cfg = futures_config(leverage=10)
    res = run_backtest(series(rows), Scripted({1: ("buy", 90)}), cfg)
    (t,) = res.trades
    assert (t.reason, t.exit_price, t.exit_fee) == ("liquidation", D(90), D(0))
    # margin 300 (notional 3,000 = 30 ABC) lost, plus the opening fee 1.5
    assert t.pnl == D(-300) - D("1.5")
    assert res.final_equity == D(1000) - D(300) - D("1.5")
    assert build_report(res)["futures"]["liquidations"] == 1


def test_funding_file_rates_per_funding_time(tmp_path):
    f = tmp_path / "funding.csv"
    f.write_text("calc_time,funding_interval_hours,last_funding_rate\n"
                 f"{T0 + 8 * H + 3},8,0.00025\n{T0 + 16 * H},8,-0.0001\n")
    rates = load_funding(f)
    assert rates == {T0 + 8 * H: D("0.00025"), T0 + 16 * H: D("-0.0001")}
    script = {1: ("buy", 90), 9: ("sell", 90)}
    res = run_backtest(series(ROWS), Scripted(script), futures_config(funding=rates))
    assert res.trades[0].funding == D(9) * D(105) * D("0.00025")


def test_backtest_cli_futures(tmp_path):
    from tradebot.cli import main

    data = tmp_path / "abc.csv"
    data.write_text("".join(f"{T0 + i * H},{o},{h},{lo},{c},1\n" for i, (o, h, lo, c) in enumerate(ROWS)))
    runner = CliRunner()
    res = runner.invoke(main, ["backtest", "--symbol", "ABC/USDT:USDT", "--data", str(data), "--leverage", "3",
                               "--funding-rate", "0.0001", "--json"])
    assert res.exit_code == 0, res.output
    rep = json.loads(res.stdout)
    assert rep["symbol"] == "ABC/USDT:USDT" and rep["futures"]["leverage"] == 3
    assert rep["fills"]["fee_rate"] == 0.0005
    bad = runner.invoke(main, ["backtest", "--symbol", "ABC/USDT", "--data", str(data), "--market", "futures",
                               "--leverage", "20", "--set", "stop_loss_percent=5"])
    assert bad.exit_code == 2 and "liquidated after a 4.50% move" in bad.output
    spot = runner.invoke(main, ["backtest", "--symbol", "ABC/USDT", "--data", str(data), "--leverage", "3"])
    assert spot.exit_code == 2 and "for --market futures" in spot.output


class Alternate:
    """Opens long and short in turn every 90 minutes, closes after 60: many round trips both ways."""

    name = "alternate"

    def __init__(self):
        self.n = 0

    def decide(self, ctx):
        from tradebot.strategy.base import Decision

        m = ctx.candles[-1].ts // 60_000
        if ctx.position is None and m % 90 == 0:
            self.n += 1
            return Decision("buy" if self.n % 2 else "short", 90, "turn", self.name)
        if ctx.position is not None and m % 90 == 60:
            return Decision("close", 90, "hour", self.name)
        return Decision("hold", 50, "", self.name)


def test_real_usdm_day_books_add_up_exactly():
    """A day of real Binance USD-M AVAXUSDT 1m candles at 3x: every trade's PnL, the funding and the fees add
    up to the final equity to the last decimal, and long and short are reported apart."""
    from pathlib import Path

    from tradebot.backtest.data import load_candles

    s = load_candles(Path(__file__).resolve().parent / "data" / "binance-usdm-AVAXUSDT-1m-2024-02-01.csv.gz")
    rules = MarketRules("AVAX/USDT:USDT", "AVAX", "USDT", D("1"), None, D("1"), D("5"), D("0.0005"))
    settings = PairSettings(D(30), D(2), D(4), 60, BreakerLimits(0, D(0), D(0), 60), rules.amount_step,
                            rules.min_amount, rules.min_cost, rules.taker_fee, market="futures", leverage=3,
                            funding_rate=D("0.0001"))
    r = run_backtest(s, Alternate(), BacktestConfig("AVAX/USDT:USDT", "1m", rules, settings, D(1000), "binance",
                                                    "auto"))
    closed = [t for t in r.trades if t.closed]
    assert len(closed) >= 10 and {t.side for t in closed} == {"long", "short"}
    assert all(t.amount == t.amount.to_integral_value() for t in closed)  # whole AVAX (the step)
    assert not r.book.in_position  # the last close comes at 23:00
    assert r.final_equity == D(1000) + sum((t.pnl for t in closed), D(0))  # pnl holds fees and funding
    # a long paid at one funding time, a short received at the other
    assert r.book.funding_paid == sum((t.funding for t in r.trades), D(0)) != 0
    rep = build_report(r)["futures"]["by_side"]
    assert rep["long"]["trades"] + rep["short"]["trades"] == len(closed)
    assert D(rep["long"]["pnl_exact"]) + D(rep["short"]["pnl_exact"]) == sum((t.pnl for t in closed), D(0))


def test_technical_fast_path_shorts_like_the_full_decision_on_real_usdm_data():
    """The backtester's quick_action fast path must see the position's side and that shorts may open: the
    technical decider then makes exactly the trades its full decide() makes, shorts included."""
    from pathlib import Path

    from tradebot.backtest.data import load_candles, resample
    from tradebot.strategy.technical import TechnicalDecider

    class FullOnly:  # the same decider without the fast path
        def __init__(self, d):
            self.d, self.name = d, d.name

        def decide(self, ctx):
            return self.d.decide(ctx)

        def indicator_set(self):
            return self.d.indicator_set()

    s = resample(load_candles(Path(__file__).resolve().parent / "data" /
                              "binance-usdm-LTCUSDT-1m-2026-02-01_2026-02-14.csv.gz"), 15 * 60_000)
    rules = MarketRules("LTC/USDT:USDT", "LTC", "USDT", D("0.001"), None, None, None, D("0.0005"))
    settings = PairSettings(D(30), D(2), D(4), 60, BreakerLimits(0, D(0), D(0), 60), rules.amount_step, None,
                            None, rules.taker_fee, market="futures", leverage=3, funding_rate=D("0.0001"))
    cfg = BacktestConfig("LTC/USDT:USDT", "15m", rules, settings, D(1000), "binance", "auto")
    fast = run_backtest(s, TechnicalDecider(), cfg)
    full = run_backtest(s, FullOnly(TechnicalDecider()), cfg)
    key = [(t.side, t.entry_ts, t.exit_ts, t.pnl) for t in fast.trades]
    assert key == [(t.side, t.entry_ts, t.exit_ts, t.pnl) for t in full.trades]
    assert sum(1 for t in fast.trades if t.side == "short") > 0
    assert fast.final_equity == full.final_equity
