"""Chart benchmark: render time of a 150-candle /chart and the memory charts cost (prints figures; not a test).

What runs: the real renderer (tradebot/charts/render.py) on real BTC/USDT 1m candles vendored in tests/data,
with EMA lines, a dozen fills and the entry / stop-loss / take-profit lines, through the same ChartWorker the
bot uses (its own thread, cache keyed by what the chart shows). Each of the N charts is a different window of
the day, so none is a cache hit; a last request repeats one, to show the hit.

What it prints (with the machine's load average):
- whether importing the bot (app, telegram, services) pulled in matplotlib (it must not: it is lazy);
- RSS after importing the bot, after the first chart (matplotlib loaded), and after N charts;
- first chart (cold: includes importing matplotlib) and p50 / p95 / max of the next N renders, in ms;
- the same for the /equity chart;
- a cache hit, in ms.

    python bench/charts.py            # 100 charts
    python bench/charts.py --charts 300
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = ROOT / "tests" / "data" / "binance-spot-BTCUSDT-1m-2023-01-21.csv.gz"


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q / 100 * (len(s) - 1))))]


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--charts", type=int, default=100)
    args = ap.parse_args(argv)

    import tradebot.app  # noqa: F401  (what `tradebot run` imports)
    import tradebot.services  # noqa: F401
    import tradebot.telegram.bot  # noqa: F401

    lazy = "matplotlib" not in sys.modules
    rss_bot = rss_mb()

    from tradebot.backtest.data import load_candles
    from tradebot.charts.model import EquityChart, EquitySeries, Level, Marker, PriceChart
    from tradebot.charts.render import HEIGHT, WIDTH, render_equity, render_price
    from tradebot.charts.worker import ChartWorker
    from tradebot.strategy.incremental import EMA

    s = load_candles(DATA)
    n_all = len(s.ts)

    def price_chart(start: int) -> PriceChart:
        idx = range(start, start + 200)
        fast, slow = EMA(12), EMA(26)
        f = [fast.update(s.close[i]) for i in idx]
        sl = [slow.update(s.close[i]) for i in idx]
        shown = list(idx)[50:]
        markers = [Marker(s.ts[i], Decimal(str(s.close[i])), "buy" if j % 2 == 0 else "sell", j)
                   for j, i in enumerate(shown[5::12])]
        last = Decimal(str(s.close[shown[-1]]))
        return PriceChart(
            "BTC/USDT", "binance", "1m", [s.ts[i] for i in shown], [s.open[i] for i in shown],
            [s.high[i] for i in shown], [s.low[i] for i in shown], [s.close[i] for i in shown],
            {"EMA 12": f[50:], "EMA 26": sl[50:]}, markers,
            [Level("entry", last), Level("stop-loss", last * Decimal("0.98")),
             Level("take-profit", last * Decimal("1.05"))], last, Decimal("12.5"), Decimal("1.25"))

    def equity_chart(start: int) -> EquityChart:
        idx = range(start, start + 300)
        first = s.close[start]
        return EquityChart("BTC/USDT · binance · equity since added", [EquitySeries(
            "BTC/USDT", [s.ts[i] for i in idx], [1000 + (s.close[i] - first) * 0.02 for i in idx],
            [1000 * s.close[i] / first for i in idx])], [s.ts[start + 100]], Decimal("1010"), Decimal("10"))

    worker = ChartWorker(cache_entries=32)
    starts = [(k * 7) % (n_all - 300) for k in range(args.charts + 1)]

    t = time.perf_counter()
    png = worker.render(("price", starts[0]), render_price, price_chart(starts[0]))
    cold = time.perf_counter() - t
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == WIDTH
    rss_first = rss_mb()
    times = []
    for st in starts[1:]:
        data = price_chart(st)
        t = time.perf_counter()
        worker.render(("price", st), render_price, data)
        times.append(time.perf_counter() - t)
    rss_after = rss_mb()
    eq_times = []
    for st in starts[1:21]:
        data = equity_chart(st)
        t = time.perf_counter()
        worker.render(("equity", st), render_equity, data)
        eq_times.append(time.perf_counter() - t)
    t = time.perf_counter()
    worker.render(("price", starts[-1]), render_price, None)  # drawn before: from the cache
    hit = time.perf_counter() - t
    rss_end = rss_mb()

    print(f"machine: {os.cpu_count()} CPUs, load average (1/5/15 min) {loadavg()}; python {sys.version.split()[0]}")
    print(f"importing the bot (app, services, telegram) imported matplotlib: {'no' if lazy else 'YES'}")
    print(f"image: {WIDTH}x{HEIGHT} PNG, {len(png) / 1024:.0f} KB; 150 candles, 2 EMA lines, "
          f"{len(price_chart(starts[0]).markers)} fills, 3 level lines")
    print(f"/chart first (cold, imports matplotlib): {cold * 1000:.0f} ms")
    print(f"/chart x {len(times)} (no cache hits): p50 {pct(times, 50) * 1000:.0f} ms, p95 "
          f"{pct(times, 95) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms (target p95 <= 1000 ms)")
    print(f"/equity x {len(eq_times)} (300 points): p50 {pct(eq_times, 50) * 1000:.0f} ms, p95 "
          f"{pct(eq_times, 95) * 1000:.0f} ms")
    print(f"cache hit: {hit * 1000:.2f} ms; renders drawn {worker.renders}")
    print(f"RSS: {rss_bot:.1f} MB after importing the bot, {rss_first:.1f} MB after the first chart "
          f"(+{rss_first - rss_bot:.1f} MB: matplotlib), {rss_after:.1f} MB after {len(times) + 1} charts "
          f"(+{rss_after - rss_first:.1f} MB), {rss_end:.1f} MB at the end")
    worker.shutdown()


if __name__ == "__main__":
    main()
