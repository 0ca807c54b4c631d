"""`tradebot backtest --set ...=0` switches a limit off; a --symbol that the data file contradicts is warned
about; the --plot hint names our own distribution."""

import gzip
import json
import zipfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradebot.backtest.cli import backtest_command
from tradebot.backtest.file_symbol import file_symbol, symbol_in_name

DATA = Path(__file__).resolve().parent / "data"
BTC_1H = str(DATA / "binance-spot-BTCUSDT-1h-2024-01-01_2024-06-10.csv.gz")
DOT_1M = str(DATA / "binance-usdm-DOTUSDT-1m-2026-02-26_2026-02-28.csv.gz")


def run(*args):
    # r.stdout and r.stderr apart: the warning goes to stderr, the JSON report stays parseable
    return CliRunner().invoke(backtest_command, list(args), catch_exceptions=False)


def report(*sets):
    r = run("--symbol", "BTC/USDT", "--data", BTC_1H, "--json", *[x for s in sets for x in ("--set", s)])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_zero_switches_off_stop_loss_and_take_profit():
    tight = report("stop_loss_percent=0.5", "take_profit_percent=0.5", "max_consecutive_losses=0",
                   "daily_loss_limit_percent=0", "max_drawdown_percent=0")
    assert tight["exits"].get("stop_loss", 0) > 0 and tight["exits"].get("take_profit", 0) > 0
    no_sl = report("stop_loss_percent=0", "take_profit_percent=0.5", "max_consecutive_losses=0")
    assert "stop_loss" not in no_sl["exits"] and no_sl["exits"].get("take_profit", 0) > 0
    no_tp = report("stop_loss_percent=0.5", "take_profit_percent=0", "max_consecutive_losses=0")
    assert "take_profit" not in no_tp["exits"] and no_tp["exits"].get("stop_loss", 0) > 0
    neither = report("stop_loss_percent=0", "take_profit_percent=0")
    assert set(neither["exits"]) <= {"signal"} and neither["trades"] > 0


@pytest.mark.parametrize("limit,tight,kind", [("max_consecutive_losses", "1", "consecutive_losses"),
                                              ("daily_loss_limit_percent", "0.5", "daily_loss"),
                                              ("max_drawdown_percent", "1", "drawdown")])
def test_zero_switches_off_each_breaker_limit(limit, tight, kind):
    others = [f"{k}=0" for k in ("max_consecutive_losses", "daily_loss_limit_percent", "max_drawdown_percent")
              if k != limit]
    on = report(*others, f"{limit}={tight}")  # only this limit, tight enough to trip on this file
    assert on["breaker_trips"] and {t["kind"] for t in on["breaker_trips"]} == {kind}
    off = report(*others, f"{limit}=0")
    assert off["breaker_trips"] == [] and off["circuit_breaker_trips"] == 0


@pytest.mark.parametrize("item,message", [
    ("stop_loss_percent=0.05", "must be between 0.1 and 50 (as in /set), or 0 (off)"),
    ("take_profit_percent=-1", "bad value"),
    ("max_consecutive_losses=101", "must be between 1 and 100 (as in /set), or 0 (off)"),
    ("max_position_percent=0", "must be between 1 and 100 (as in /set)\n"),  # 0 % is not "off": refused
])
def test_other_values_keep_the_chat_ranges(item, message):
    r = run("--symbol", "BTC/USDT", "--data", BTC_1H, "--set", item)
    assert r.exit_code == 2 and message in r.stderr


def test_help_says_zero_is_off():
    r = run("--help")
    assert r.exit_code == 0 and "0 switches off" in " ".join(r.output.split())


def test_symbol_that_the_file_name_contradicts_is_a_warning():
    r = run("--symbol", "BTC/USDT", "--data", DOT_1M, "--timeframe", "1h", "--json")
    assert r.exit_code == 0
    assert "--symbol BTC/USDT" in r.stderr and "DOTUSDT" in r.stderr and "warning" in r.stderr
    assert json.loads(r.stdout)["symbol"] == "BTC/USDT"  # still runs, as asked
    for same in ("DOT/USDT", "dot/usdt"):
        r = run("--symbol", same, "--data", DOT_1M, "--timeframe", "1h", "--json")
        assert r.exit_code == 0 and "warning" not in r.stderr


def test_file_symbol_from_names_zip_members_and_a_symbol_column(tmp_path):
    assert symbol_in_name("BTCUSDT-1m-2024-02.csv") == "BTCUSDT"  # data.binance.vision
    assert symbol_in_name("binance-spot-ETHUSDT-1m-2023-01-21.csv.gz") == "ETHUSDT"
    assert symbol_in_name("BTCUSDT_1h.csv") == "BTCUSDT"
    assert symbol_in_name("candles-1m.csv") is None and symbol_in_name("export.csv") is None
    rows = "".join(f"{1_672_531_200_000 + i * 60_000},100,101,99,100.5,1\n" for i in range(30))
    z = tmp_path / "download.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("SOLUSDT-1m-2023-01-01.csv", rows)
    assert file_symbol(z) == "SOLUSDT"
    col = tmp_path / "mine.csv.gz"
    col.write_bytes(gzip.compress(b"timestamp,symbol,open,high,low,close,volume\n"
                                  b"2023-01-01 00:00:00,ETH/USDT,1,2,0.5,1.5,10\n"))
    assert file_symbol(col) == "ETH/USDT"
    plain = tmp_path / "plain.csv"
    plain.write_text("timestamp,open,high,low,close,volume\n" + rows)
    assert file_symbol(plain) is None
    r = run("--symbol", "BTC/USDT", "--data", str(z))
    assert r.exit_code == 0 and "looks like SOLUSDT data" in r.stderr
    r = run("--symbol", "BTC/USDT", "--data", str(plain))
    assert r.exit_code == 0 and "warning" not in r.stderr
