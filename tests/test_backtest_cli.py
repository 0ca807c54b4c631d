"""`tradebot backtest` end to end on the real data files vendored in tests/data."""

import csv
import json
from pathlib import Path

from click.testing import CliRunner

from tradebot.backtest.cli import backtest_command

KLINES = Path(__file__).resolve().parent / "data"
BTC_1M = str(KLINES / "binance-spot-BTCUSDT-1m-2023-01-01_2023-01-14.csv.gz")
BTC_1H = str(KLINES / "binance-spot-BTCUSDT-1h-2024-01-01_2024-06-10.csv.gz")


def run(*args):
    return CliRunner().invoke(backtest_command, list(args), catch_exceptions=False)


def test_full_report_trades_csv_and_plot(tmp_path):
    trades, plot = tmp_path / "trades.csv", tmp_path / "plot.png"
    r = run("--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "15m", "--data", BTC_1M,
            "--balance", "1000", "--decider", "technical", "--fee", "0.001", "--trades", str(trades),
            "--plot", str(plot))
    assert r.exit_code == 0, r.output
    for label in ("Period", "Start equity", "End equity", "Return", "Buy and hold", "Max drawdown", "Trades",
                  "Win rate", "Profit factor", "Average win", "Average loss", "Best trade", "Worst trade",
                  "Exposure", "Sharpe ratio", "Fees paid", "Breaker trips"):
        assert label in r.output
    assert "2023-01-01T00:00:00Z -> 2023-01-14T21:15:00Z" in r.output  # 15m buckets, the last partial dropped
    rows = list(csv.DictReader(trades.open()))
    assert rows and rows[0]["entry_price"] and rows[0]["reason"] in ("signal", "stop_loss", "take_profit", "open")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 20_000


def test_json_report_dates_and_sets():
    r = run("--symbol", "btc/usdt", "--data", BTC_1H, "--from", "2024-02-01", "--to", "2024-02-29", "--json",
            "--set", "stop_loss_percent=1.5", "--set", "max_consecutive_losses=2", "--set", "min_cost=5",
            "--balance", "500")
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["symbol"] == "BTC/USDT" and rep["timeframe"] == "1h" and rep["start_equity"] == 500
    assert rep["period"] == {"from": "2024-02-01T00:00:00Z", "to": "2024-03-01T00:00:00Z", "candles": 696,
                             "warmup_candles": 200}
    assert rep["trades"] > 0 and rep["fees_paid"] > 0
    assert all(t["kind"] == "consecutive_losses" for t in rep["breaker_trips"])
    worst = rep["worst_trade"]
    assert worst["reason"] != "stop_loss" or worst["pnl_percent"] > -1.8  # 1.5 % stop + fees


def test_clear_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("timestamp,open,high,low,close,volume\n2023-01-01 00:00:00,1,2,0.5,1,5\n2023-01-01 00:01:00,1,2,oops,1,5\n")
    r = run("--symbol", "BTC/USDT", "--data", str(bad))
    assert r.exit_code == 1 and "bad.csv:3: malformed row" in r.output and "Traceback" not in r.output
    r = run("--symbol", "BTC/USDT", "--data", BTC_1H, "--timeframe", "1m")
    assert r.exit_code == 1 and "cannot turn 1h candles into 1m" in r.output
    r = run("--symbol", "BTC/USDT", "--data", BTC_1H, "--set", "leverage=5")
    assert r.exit_code == 2 and "--set" in r.output
    r = run("--symbol", "BTC/USDT", "--data", str(tmp_path / "none.csv"))
    assert r.exit_code == 1 and "cannot read file" in r.output


def test_progress_bar_on_long_runs(capsys):
    from tradebot.backtest.cli import _Progress

    p = _Progress(100, after=0.0)
    for done in (10, 50, 90):
        p(done)
    p.close()
    assert "backtest" in capsys.readouterr().err


def test_exit_fill_auto_follows_the_live_cycle():
    day_1m = str(KLINES / "binance-spot-BTCUSDT-1m-2023-01-21.csv.gz")
    rep = json.loads(run("--symbol", "BTC/USDT", "--data", day_1m, "--json").output)
    assert rep["fills"]["stop_loss_take_profit"] == "next candle open"  # 1m candles, 60 s cycles
    rep = json.loads(run("--symbol", "BTC/USDT", "--data", day_1m, "--timeframe", "5m", "--json").output)
    assert rep["fills"]["stop_loss_take_profit"] == "trigger price inside the candle"
    rep = json.loads(run("--symbol", "BTC/USDT", "--data", day_1m, "--timeframe", "5m", "--json",
                         "--set", "interval_seconds=300").output)
    assert rep["fills"]["stop_loss_take_profit"] == "next candle open"
