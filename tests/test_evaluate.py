"""`tradebot evaluate`: walk-forward windows, the grid, the objective, parallel determinism, the CLI."""

from __future__ import annotations

import json
import math
import random
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from tradebot.backtest import evaluate as ev
from tradebot.cli.evaluate import evaluate_command

DATA = Path(__file__).resolve().parent / "data"
BTC_1H = str(DATA / "binance-spot-BTCUSDT-1h-2024-01-01_2024-06-10.csv.gz")
HOUR = 3_600_000
DAY = 24 * HOUR


def write_swings(path: Path, hours: int = 24 * 100, seed: int = 7) -> Path:
    """Synthetic hourly candles: a slow swing (10 days, +-15 %) under a fast zigzag (12 h, +-2 %) and noise.
    Only a slow EMA pair follows the slow swing; fast pairs chase the zigzag and pay fees for it."""
    rnd = random.Random(seed)
    t0 = 1_700_000_000_000 - 1_700_000_000_000 % HOUR
    rows, prev = ["open_time,open,high,low,close,volume"], 100.0
    for i in range(hours):
        c = (100.0 * (1 + 0.15 * math.sin(2 * math.pi * i / 240)) * (1 + 0.02 * math.sin(2 * math.pi * i / 12))
             * (1 + rnd.gauss(0, 0.001)))
        h = max(prev, c) * (1 + abs(rnd.gauss(0, 0.001)))
        lo = min(prev, c) * (1 - abs(rnd.gauss(0, 0.001)))
        rows.append(f"{t0 + i * HOUR},{prev:.6f},{h:.6f},{lo:.6f},{c:.6f},1")
        prev = c
    path.write_text("\n".join(rows) + "\n")
    return path


def run(*args):
    return CliRunner().invoke(evaluate_command, list(args), catch_exceptions=False)


def report(*args) -> dict:
    r = run(*args, "--json", "--quiet")
    assert r.exit_code == 0, r.output + r.stderr
    return json.loads(r.stdout)


SEARCH = ("--train", "20d", "--test", "10d", "--grid", "ema_fast=5,20", "--grid", "ema_slow=10,50",
          "--min-trades", "1")


# ---------------------------------------------------------------- pure parts


def test_spans_and_windows_follow_each_other_without_overlap():
    assert ev.parse_span("60d") == 60 * DAY and ev.parse_span("12h") == 12 * HOUR and ev.parse_span("2w") == 14 * DAY
    for bad in ("", "0d", "60", "1.5d", "60x", "-1d"):
        with pytest.raises(ValueError):
            ev.parse_span(bad)
    ws = ev.make_windows(0, 100 * DAY, 60 * DAY, 14 * DAY)
    assert len(ws) == 2  # 60 + 14 + 14 <= 100, a third test span would end on day 102
    for w in ws:
        assert w.train_end - w.train_start == 60 * DAY and w.test_end - w.test_start == 14 * DAY
        assert w.train_end <= w.test_start  # the choice never sees the span it is measured on
    for a, b in zip(ws, ws[1:], strict=False):
        assert a.test_end <= b.test_start  # test spans never overlap
    assert ev.make_windows(0, 70 * DAY, 60 * DAY, 14 * DAY) == []


def test_grid_is_checked_and_expanded_in_a_fixed_order():
    grid = ev.parse_grid(["ema_fast=8,12,8", "ema_slow=12,26", "timeframe=1h", "stop_loss_percent=0,2"])
    assert grid == {"ema_fast": ["8", "12"], "ema_slow": ["12", "26"], "timeframe": ["1h"],
                    "stop_loss_percent": ["0", "2"]}
    sets = ev.expand_grid(grid)  # (12, 12) is dropped: the fast EMA must be faster
    assert [(s["ema_fast"], s["ema_slow"], s["stop_loss_percent"]) for s in sets] == [
        ("8", "12", "0"), ("8", "12", "2"), ("8", "26", "0"), ("8", "26", "2"), ("12", "26", "0"), ("12", "26", "2")]
    for bad, text in (("leverage=2", "key one of"), ("ema_fast=x", "not a"), ("rsi_exit=120", "rsi_exit"),
                      ("timeframe=7x", "timeframe"), ("stop_loss_percent=60", "between"), ("ema_fast", "key=v1")):
        with pytest.raises(ValueError, match=text):
            ev.parse_grid([bad])
    with pytest.raises(ValueError, match="no valid combination"):
        ev.expand_grid(ev.parse_grid(["ema_fast=30", "ema_slow=20"]))


def test_objective_prefers_enough_trades_then_return_over_drawdown_then_grid_order():
    runs = [
        {"return_pct": 9.0, "max_drawdown_pct": 1.0, "trades": 1},  # best ratio but too few trades
        {"return_pct": 4.0, "max_drawdown_pct": 4.0, "trades": 5},  # 1.0
        {"return_pct": 3.0, "max_drawdown_pct": 1.5, "trades": 5},  # 2.0
        {"return_pct": 3.0, "max_drawdown_pct": 1.5, "trades": 6},  # 2.0, later in the grid
    ]
    assert ev.choose(runs, min_trades=3) == 2
    assert ev.choose(runs, min_trades=0) == 0
    losers = [{"return_pct": -5.0, "max_drawdown_pct": 6.0, "trades": 4},
              {"return_pct": -1.0, "max_drawdown_pct": 9.0, "trades": 4}]
    assert ev.choose(losers, min_trades=3) == 1  # the smaller loss, whatever its drawdown
    assert ev.changes([0, 0, 1, 1, 0]) == 2


def test_chained_out_of_sample_compounds_the_windows():
    w1 = {"start_equity": 1000.0, "equity": [1050.0, 1100.0], "first_open": 10.0, "closes": [11.0, 12.0],
          "trades": 2, "fees": "3"}
    w2 = {"start_equity": 1000.0, "equity": [900.0, 1000.0], "first_open": 20.0, "closes": [10.0, 20.0],
          "trades": 1, "fees": "1"}
    c = ev.chain([w1, w2])
    assert c["return_pct"] == pytest.approx(10.0)  # +10 % then 0 %
    assert c["max_drawdown_pct"] == pytest.approx(10.0)  # 1.10 -> 0.99
    assert c["buy_and_hold_return_pct"] == pytest.approx(20.0)  # +20 % then 0 %
    assert c["buy_and_hold_max_drawdown_pct"] == pytest.approx(50.0)
    assert c["trades"] == 3 and c["fees_pct_of_equity"] == pytest.approx(0.4)


# ---------------------------------------------------------------- the search on data


def test_search_recovers_the_slow_ema_pair_on_a_slow_swing(tmp_path):
    path = write_swings(tmp_path / "swings.csv")
    rep = report("--data", str(path), *SEARCH, "--jobs", "1")
    windows = rep["results"][0]["windows"]
    assert len(windows) == 8
    assert all((w["params"]["ema_fast"], w["params"]["ema_slow"]) == ("20", "50") for w in windows)
    assert rep["results"][0]["chosen_changed"] == 0
    assert rep["results"][0]["out_of_sample"]["return_pct"] > 5.0
    assert rep["summary"]["chosen_most_often"][0] == ["ema_fast=20 ema_slow=50", 8]


def test_test_span_candles_never_influence_the_choice_for_it(tmp_path):
    """Scramble every candle from window 4's test span on: the choices and training results of windows 1-4
    must not move (they would if a training span reached into its test span), later ones may."""
    path = write_swings(tmp_path / "swings.csv")
    base = report("--data", str(path), *SEARCH, "--jobs", "1")["results"][0]["windows"]
    cut = 1_700_000_000_000 - 1_700_000_000_000 % HOUR + (20 + 3 * 10) * DAY  # window 4's test start
    rnd = random.Random(1)
    lines = path.read_text().splitlines()
    out = [lines[0]]
    for line in lines[1:]:
        ts, *_ = line.split(",")
        if int(ts) >= cut:
            c = 50.0 + 100.0 * rnd.random()
            line = f"{ts},{c:.6f},{c * 1.05:.6f},{c * 0.95:.6f},{c:.6f},1"
        out.append(line)
    path.write_text("\n".join(out) + "\n")
    moved = report("--data", str(path), *SEARCH, "--jobs", "1")["results"][0]["windows"]
    assert moved[3]["test"][0] == "2024-01-03 22:00"  # (the cut above is this window's test start)
    for a, b in zip(base[:4], moved[:4], strict=True):
        assert (a["params"], a["train_return_pct"], a["train_trades"]) == (b["params"], b["train_return_pct"],
                                                                         b["train_trades"])
    assert base[3]["return_pct"] != moved[3]["return_pct"]  # the scrambled test span was measured
    assert [w["train_return_pct"] for w in base[4:]] != [w["train_return_pct"] for w in moved[4:]]


def test_results_are_identical_with_one_and_two_workers(tmp_path):
    path = write_swings(tmp_path / "swings.csv", hours=24 * 60)
    args = ("--data", str(path), "--data", BTC_1H, "--train", "20d", "--test", "10d", "--grid", "ema_fast=8,12",
            "--grid", "rsi_exit=75,80", "--grid", "stop_loss_percent=0,2", "--grid", "timeframe=1h,4h")
    one, two = report(*args, "--jobs", "1"), report(*args, "--jobs", "2")
    assert one.pop("speed")["jobs"] == 1 and two.pop("speed")["jobs"] == 2
    assert one == two
    assert one["grid_size"] == 16 and one["summary"]["windows"] == 4 + 14
    tfs = {w["timeframe"] for w in one["results"][1]["windows"]}
    assert tfs <= {"1h", "4h"}


def test_text_report_speed_and_plot(tmp_path):
    plot = tmp_path / "oos.png"
    r = run("--data", BTC_1H, "--train", "30d", "--test", "30d", "--grid", "ema_fast=8,12", "--jobs", "2",
            "--plot", str(plot))
    assert r.exit_code == 0, r.output + r.stderr
    assert "out of sample, chained: return" in r.stdout and "buy-and-hold" in r.stdout
    assert "chosen parameters changed" in r.stdout and "objective: return / max drawdown" in r.stdout
    assert "candles/s in all" in r.stderr and "2 workers" in r.stderr
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_text_report_shows_the_whole_parameter_set_aligned():
    r = run("--data", BTC_1H, "--train", "30d", "--test", "30d", "--grid", "trailing_stop_percent=0,3",
            "--grid", "take_profit_percent=5,10", "--jobs", "1")
    assert r.exit_code == 0, r.output + r.stderr
    lines = r.stdout.splitlines()
    header = next(ln for ln in lines if "chosen parameters" in ln)
    rows = [ln for ln in lines if re.match(r"\s+\d+\s+\d{4}-", ln)]  # one per window
    assert rows and all("take_profit_percent=" in ln for ln in rows)  # never cut to a fixed width
    assert all(ln.index("trailing_stop_percent=") == header.index("chosen parameters") for ln in rows)


@pytest.mark.parametrize("args, text", [
    (("--grid", "leverage=3"), "key one of"),
    (("--train", "sixty"), "positive whole number"),
    (("--decider", "llm"), "only the technical decider"),
    (("--train", "200d"), "no complete window"),
    (("--jobs", "0"), "at least 1"),
    (("--grid", "ema_fast=30", "--grid", "ema_slow=20"), "no valid combination"),
])
def test_bad_input_gets_one_line(args, text):
    r = run("--data", BTC_1H, "--quiet", *args)
    assert r.exit_code != 0 and text in r.stderr
    assert "Traceback" not in r.stderr


def test_set_applies_market_rules_and_exit_fill_to_every_run():
    base = ("--data", BTC_1H, "--train", "30d", "--test", "30d", "--timeframe", "4h", "--jobs", "1")
    plain = report(*base)["results"][0]["windows"]
    # a minimum order of 10,000 USDT is more than the 300 a 30 % position of 1,000 spends: nothing trades
    blocked = report(*base, "--set", "min_cost=10000")["results"][0]["windows"]
    assert sum(w["trades"] for w in plain) > 0 and sum(w["trades"] for w in blocked) == 0
    next_open = report(*base, "--set", "exit_fill=next_open")["results"][0]["windows"]
    assert [w["return_pct"] for w in next_open] != [w["return_pct"] for w in plain]
