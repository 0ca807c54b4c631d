"""`tradebot backtest`: bad input gives one clear line, never a traceback (review findings)."""

import csv
import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradebot.backtest.cli import backtest_command
from tradebot.backtest.data import DataError, load_candles

KLINES = Path(__file__).resolve().parent / "data"
BTC_1H = str(KLINES / "binance-spot-BTCUSDT-1h-2022-01.csv.gz")
DOT_1M = str(KLINES / "binance-usdm-DOTUSDT-1m-2026-02-26_2026-02-28.csv.gz")

HEADER = "timestamp,open,high,low,close,volume\n"


def run(*args):
    return CliRunner().invoke(backtest_command, list(args), catch_exceptions=False)


def run_main(*args, env=None):
    from tradebot.cli import main

    return CliRunner().invoke(main, list(args), env=env or {}, catch_exceptions=False)


def rows(n=30, start=1_672_531_200_000):
    return "".join(f"{start + i * 60_000},100,101,99,100.5,1\n" for i in range(n))


@pytest.mark.parametrize("option,value", [("--trades", "nodir/t.csv"), ("--plot", "nodir/p.png")])
def test_unwritable_output_is_refused_before_the_run(tmp_path, option, value):
    r = run("--symbol", "BTC/USDT", "--data", BTC_1H, option, str(tmp_path / value))
    assert r.exit_code == 2 and "does not exist" in r.output and "Backtest" not in r.output


def test_write_error_after_the_run_is_one_line(tmp_path, monkeypatch):
    from tradebot.backtest import cli as bcli

    def boom(result, path):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(bcli, "write_trades_csv", boom)
    r = run("--symbol", "BTC/USDT", "--data", BTC_1H, "--trades", str(tmp_path / "t.csv"))
    assert r.exit_code == 1 and "cannot write the trades (Permission denied)" in r.output


@pytest.mark.parametrize("balance", ["0.0001", "0.00000001"])
def test_tiny_balance_buys_are_refused_not_a_crash(balance):
    # the buy amount floors to 0 at the 8-decimal step: the exchange would refuse it
    r = run("--symbol", "BTC/USDT", "--data", BTC_1H, "--balance", balance)
    assert r.exit_code == 0, r.output
    assert "Trades            0" in r.output and "Buys refused" in r.output


@pytest.mark.parametrize("option,value", [("--balance", "1e30"), ("--balance", "0"), ("--fee", "1"),
                                          ("--fee", "1.5"), ("--symbol", "BTC/"), ("--symbol", "/USDT")])
def test_bad_numbers_and_symbols_are_usage_errors(option, value):
    args = {"--symbol": "BTC/USDT", "--data": BTC_1H, option: value}
    r = run(*[x for kv in args.items() for x in kv])
    assert r.exit_code == 2 and f"Invalid value for {option}" in r.output.replace("'", "")


@pytest.mark.parametrize("item", ["min_confidence=200", "min_confidence=-5", "max_position_percent=500",
                                  "max_position_percent=0", "stop_loss_percent=0.05", "stop_loss_percent=150",
                                  "take_profit_percent=0.01", "max_consecutive_losses=101", "cooldown_minutes=-1",
                                  "daily_loss_limit_percent=0.1", "max_drawdown_percent=101"])  # 0 = off: see _options
def test_set_values_outside_the_chat_ranges_are_refused(item):
    r = run("--symbol", "BTC/USDT", "--data", BTC_1H, "--set", item)
    assert r.exit_code == 2 and "must be between" in r.output


def test_set_values_inside_the_ranges_still_work():
    r = run("--symbol", "BTC/USDT", "--data", BTC_1H, "--set", "stop_loss_percent=50", "--set", "min_confidence=0",
            "--set", "cooldown_minutes=0", "--set", "max_position_percent=100")
    assert r.exit_code == 0, r.output


@pytest.mark.parametrize("decider", ["llm", "ensemble", "llm:gpt-4o"])
def test_llm_decider_without_a_key_is_refused_up_front(tmp_path, decider):
    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    r = run_main("--config", str(cfg), "backtest", "--symbol", "BTC/USDT", "--data", BTC_1H, "--decider", decider)
    assert r.exit_code == 2 and "needs an LLM API key" in r.output and "LLM unavailable" not in r.output


def test_bad_config_value_exits_2_like_every_other_command(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    r = run_main("--config", str(cfg), "backtest", "--symbol", "BTC/USDT", "--data", BTC_1H,
                 env={"TRADEBOT_RISK_STOP_LOSS_PERCENT": "abc"})
    assert r.exit_code == 2 and "risk.stop_loss_percent" in r.output
    assert len(r.output.strip().splitlines()) == 1


@pytest.mark.parametrize("body,line,what", [  # line: of the file, the header is line 1
    (rows(3) + "1672531380000,inf,inf,99,inf,1\n", 5, "finite prices"),
    (rows(3) + "1672531380000,100,1e400,99,100,1\n", 5, "finite prices"),
    (rows(3) + "1672531380000,100,101,99,100,inf\n", 5, "finite prices"),
    (rows(3) + '1672531380000,100,101,99,100,1,"unterminated\n' + rows(2, 1672531440000), 5, "malformed row"),
    (rows(2) + "1672531320000,100,101,99,100.5," + "x" * 200_000 + "\n", 4, "malformed row"),
    (rows(2) + "99999999999999999999999,100,101,99,100.5,1\n", 4, "out of range"),
    ("9999-12-31 23:58:00,1,2,1,1.5,1\n9999-12-31 23:59:00,1,2,1,1.5,1\n", 2, "out of range"),
])
def test_malformed_files_name_the_line(tmp_path, body, line, what):
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + body)
    with pytest.raises(DataError, match=rf"bad\.csv:{line}: .*{what}"):
        load_candles(bad)
    r = run("--symbol", "BTC/USDT", "--data", str(bad))
    assert r.exit_code == 1 and f"bad.csv:{line}:" in r.output and "Traceback" not in r.output


def test_truncated_gzip_is_one_line(tmp_path):
    gz = tmp_path / "cut.csv.gz"
    gz.write_bytes(gzip.compress((HEADER + rows(500)).encode())[:300])
    r = run("--symbol", "BTC/USDT", "--data", str(gz))
    assert r.exit_code == 1 and "not a readable gzip file" in r.output


def test_open_position_row_counts_the_candles_held(tmp_path):
    trades = tmp_path / "t.csv"
    r = run("--symbol", "DOT/USDT", "--data", DOT_1M, "--timeframe", "15m", "--trades", str(trades))
    assert r.exit_code == 0, r.output
    last = list(csv.DictReader(trades.open()))[-1]
    assert last["reason"] == "open" and last["entry_time"] == "2026-02-28T20:15:00Z"
    assert last["bars"] == "15"  # 20:15 -> the last close at 2026-03-01T00:00:00Z


def test_header_after_blank_lines_is_still_the_header(tmp_path):
    f = tmp_path / "blank_first.csv"
    f.write_text("\n\n" + HEADER + rows(5))
    s = load_candles(f)
    assert len(s) == 5 and s.lines[0] == 4
    f.write_text("\n" + HEADER + HEADER + rows(5))  # a second header is a bad row, named
    with pytest.raises(DataError, match=r"blank_first\.csv:3: malformed row"):
        load_candles(f)


def test_a_warning_per_candle_is_collapsed(monkeypatch, caplog):
    import logging

    from tradebot.backtest import cli as bcli
    from tradebot.strategy.base import Decision

    class Failing:
        name = "llm:fake"

        def decide(self, ctx):
            logging.getLogger("tradebot.strategy.llm").warning("llm:fake: LLM unavailable: connection refused")
            return Decision("hold", 0, "LLM unavailable", self.name)

    monkeypatch.setattr(bcli, "build_decider", lambda *a, **k: Failing())
    with caplog.at_level(logging.WARNING, logger="tradebot.strategy.llm"):
        r = CliRunner().invoke(backtest_command, ["--symbol", "BTC/USDT", "--data", BTC_1H, "--decider", "llm"],
                               catch_exceptions=False)
    assert r.exit_code == 0, r.output
    assert sum("LLM unavailable" in m for m in caplog.messages) == 3
    assert "was repeated 741 more times" in r.output


def test_corrupted_gzip_and_zip_are_one_line(tmp_path):
    import zipfile

    data = (HEADER + rows(3000)).encode()
    gz = bytearray(gzip.compress(data))
    zpath = tmp_path / "k.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("k.csv", data)
    zb = bytearray(zpath.read_bytes())
    for i in range(100, 400):  # flip bytes inside the compressed stream
        gz[i] ^= 0x55
        zb[i] ^= 0x55
    (tmp_path / "bad.csv.gz").write_bytes(bytes(gz))
    (tmp_path / "bad.zip").write_bytes(bytes(zb))
    for name, what in (("bad.csv.gz", "not a readable gzip file"), ("bad.zip", "not a readable zip file")):
        r = run("--symbol", "BTC/USDT", "--data", str(tmp_path / name))
        assert r.exit_code == 1 and what in r.output and "Traceback" not in r.output


def test_zip_as_data_binance_vision_serves_it(tmp_path):
    import zipfile

    zpath = tmp_path / "BTCUSDT-1m-2023-01-01.zip"
    with zipfile.ZipFile(zpath, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("BTCUSDT-1m-2023-01-01.csv", rows(120))
    assert len(load_candles(zpath)) == 120
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("a.csv", rows(3))
        zf.writestr("b.csv", rows(3))
    with pytest.raises(DataError, match="exactly one CSV"):
        load_candles(zpath)
