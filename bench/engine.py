"""Engine benchmark (prints figures; not a test).

N users x M pairs (paper mode) scheduled by the real BotManager against the STANDALONE fake exchange
(`python -m tests.fakes.exchange`, started here as a subprocess with added latency and a market clock
that advances one minute per wall minute). Reports:
- cycles completed vs scheduled in the measured window, errors;
- start lag of every cycle against its schedule (p50 / p99 / max);
- RSS of the process: baseline (hub warm, no pairs), with all pairs active, and per active pair;
- exchange requests per candle by endpoint (counted at ccxt's HTTP layer).

    python bench/engine.py --users 200 --pairs 5 --minutes 4 --latency-ms 20
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPU ({cpu}), {mem} RAM, Python {platform.python_version()}, {platform.platform()}"
    )


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q / 100 * (len(values) - 1)))))
    return values[k]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=5, help="pairs per user (<= 6: 3 symbols x binance/bybit)")
    ap.add_argument("--minutes", type=float, default=4.0, help="measured window")
    ap.add_argument(
        "--warmup", type=float, default=70.0, help="seconds before measuring (first cycle of all)"
    )
    ap.add_argument("--interval", type=int, default=60)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--workers", type=int, default=None, help="scheduler threads (default: config)")
    ap.add_argument(
        "--decider",
        default="technical",
        choices=["technical", "flip"],
        help="flip = buy when flat, sell when holding, on every new candle (an order per pair per minute)",
    )
    ap.add_argument(
        "--no-breaker", action="store_true", help="disable the circuit breaker (keeps flip trading)"
    )
    args = ap.parse_args(argv)
    n_pairs = args.users * args.pairs

    import ccxt

    # count every HTTP request ccxt makes, by endpoint path
    requests = Counter()
    req_lock = threading.Lock()
    orig_fetch = ccxt.Exchange.fetch

    def counting_fetch(self, url, method="GET", headers=None, body=None):
        path = urlsplit(url).path
        with req_lock:
            requests[f"{method} {path}"] += 1
        return orig_fetch(self, url, method, headers, body)

    ccxt.Exchange.fetch = counting_fetch

    from tradebot import db as dbmod
    from tradebot.config import load_config
    from tradebot.engine.manager import BotManager
    from tradebot.exchange.hub import ExchangeHub
    from tradebot.exchange.settings import ExchangeSettings
    from tradebot.models import ExchangeCredential, User, UserConfig

    cfg = load_config(None, env={})
    workers = args.workers or cfg.trading.scheduler_workers

    # ---- the standalone fake exchange, its market clock ticking one minute per minute
    from tests.fakes.exchange_data import MINUTE, REAL_START

    port = free_port()
    start_ms = REAL_START + 500 * MINUTE  # history for the indicators
    fake = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.fakes.exchange",
            "--port",
            str(port),
            "--latency-ms",
            str(args.latency_ms),
            "--tick-seconds",
            "60",
            "--start-ms",
            str(start_ms),
        ],
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    fake.stdout.readline()
    t_launch = time.time()

    def market_ms() -> int:
        """The fake's market clock (one candle per wall minute since launch), continuous for the hub."""
        return start_ms + int((time.time() - t_launch) * 1000)

    url = f"http://127.0.0.1:{port}"
    tmp = Path(tempfile.mkdtemp(prefix="tb-bench-"))
    try:
        dbmod.open_database(f"sqlite:///{tmp / 'bench.db'}")
        dbmod.migrate()
        settings = {
            ex: ExchangeSettings(api_url=url, testnet_api_url=url, timeout_ms=5000)
            for ex in ("binance", "bybit")
        }
        hub = ExchangeHub(settings, now_ms=market_ms)
        combos = [(ex, sym) for ex in ("binance", "bybit") for sym in ("BTC/USDT", "ETH/USDT", "SOL/USDT")]
        for ex, sym in combos[: args.pairs]:  # warm: markets, candles, rules (not per-pair memory)
            hub.market_data.candles(ex, "paper", sym, "1m", 100)
            hub.market_rules(ex, "live", sym)
        deciders = cfg
        if args.decider == "flip":
            from tradebot.strategy.base import Decision

            class Flip:
                name = "flip"

                def decide(self, ctx):
                    return Decision("sell" if ctx.position is not None else "buy", 90, "flip", self.name)

            flip = Flip()

            def deciders(name):
                return flip

        from tradebot.risk import BreakerLimits

        user_limits = BreakerLimits(0, Decimal(0), Decimal(0)) if args.no_breaker else None
        mgr = BotManager(
            hub,
            deciders,
            clock=time.time,
            max_workers=workers,
            default_interval=args.interval,
            user_limits=user_limits,
        )
        mgr.record_lag = True
        base_rss = rss_mb()

        # ---- users and pairs (bulk insert)
        risk_off = (
            {
                "max_consecutive_losses": 0,
                "daily_loss_limit_percent": Decimal(0),
                "max_drawdown_percent": Decimal(0),
            }
            if args.no_breaker
            else {}
        )
        with dbmod.write_tx():
            User.insert_many(
                [{"telegram_id": 10_000 + i, "username": f"bench{i}"} for i in range(args.users)]
            ).execute()
            uids = [u.id for u in User.select(User.id).order_by(User.id)]
            ExchangeCredential.insert_many(
                [{"user": u, "exchange": ex, "network": "paper"} for u in uids for ex in ("binance", "bybit")]
            ).execute()
            UserConfig.insert_many(
                [
                    {
                        "user": u,
                        "exchange": ex,
                        "symbol": sym,
                        "budget": Decimal(1000),
                        "interval_seconds": args.interval,
                        "is_trading": True,
                        **risk_off,
                    }
                    for u in uids
                    for ex, sym in combos[: args.pairs]
                ]
            ).execute()
        t_start_engine = time.time()
        out = mgr.start()
        print(f"engine started in {time.time() - t_start_engine:.2f}s: {out}", flush=True)
        time.sleep(args.warmup)
        with req_lock:
            requests.clear()
        mgr.stats["lags"].clear()
        mgr.stats["durations"].clear()
        from tradebot.models import Order, Trade

        trades0 = Trade.select().count()
        c0, e0 = mgr.stats["cycles"], mgr.stats["errors"]
        t0 = time.time()
        rss_samples = []
        while time.time() - t0 < args.minutes * 60:
            time.sleep(5)
            rss_samples.append(rss_mb())
        t1 = time.time()
        c1, e1 = mgr.stats["cycles"], mgr.stats["errors"]
        lags = list(mgr.stats["lags"])
        durations = list(mgr.stats["durations"])
        trades = Trade.select().count() - trades0
        open_orders = Order.select().where(Order.status == "pending").count()
        with req_lock:
            reqs = dict(requests)
        # scheduled fire times of every pair inside [t0, t1]
        scheduled = 0
        for c in UserConfig.select(UserConfig.id, UserConfig.interval_seconds):
            iv = c.interval_seconds
            off = mgr._offset(c.id, iv)
            k0 = int((t0 - off) // iv) + 1
            k1 = int((t1 - off) // iv)
            scheduled += max(0, k1 - k0 + 1)
        mgr.shutdown(30)
    finally:
        fake.terminate()
        fake.wait(10)

    minutes = (t1 - t0) / 60
    peak = max(rss_samples) if rss_samples else rss_mb()
    print()
    print(f"machine: {machine()}")
    print(
        f"setup: {args.users} users x {args.pairs} pairs = {n_pairs} active paper pairs, interval {args.interval}s, "
        f"fake exchange latency {args.latency_ms} ms, scheduler workers {workers}, decider {args.decider}, "
        f"window {minutes:.1f} min"
    )
    done = c1 - c0
    print(
        f"cycles: completed {done} / scheduled {scheduled} ({100 * done / max(1, scheduled):.1f}%), errors {e1 - e0}"
    )
    print(
        f"start lag: p50 {pct(lags, 50) * 1000:.0f} ms, p99 {pct(lags, 99) * 1000:.0f} ms, "
        f"max {max(lags) * 1000 if lags else float('nan'):.0f} ms, "
        f"within 2 s: {100 * sum(1 for x in lags if x <= 2.0) / max(1, len(lags)):.2f}% of {len(lags)}"
    )
    print(
        f"cycle duration: p50 {pct(durations, 50) * 1000:.1f} ms, p99 {pct(durations, 99) * 1000:.1f} ms; "
        f"paper trades booked in the window: {trades}; pending intents at the end: {open_orders}"
    )
    print(
        f"RSS: baseline {base_rss:.1f} MB (imports + hub warm), peak with pairs {peak:.1f} MB, "
        f"per active pair {(peak - base_rss) * 1024 / n_pairs:.1f} KB"
    )
    candles = minutes  # one 1m candle per minute per symbol
    print(
        f"exchange requests per candle (minute), by endpoint, over {len(combos[: args.pairs])} (exchange, symbol) streams:"
    )
    for k, v in sorted(reqs.items(), key=lambda kv: -kv[1]):
        print(f"  {k}: {v / candles:.2f}")
    total = sum(reqs.values())
    print(
        f"  total: {total / candles:.2f} per minute for {n_pairs} pairs ({total / candles / n_pairs:.4f} per pair)"
    )


if __name__ == "__main__":
    main()
