"""HA benchmark: W `tradebot run` workers (subprocesses) sharing W x P paper pairs on one PostgreSQL database
(prints figures; not a test).

What runs:
- a fresh database on the PostgreSQL server of $TRADEBOT_BENCH_PG_URL (or $TRADEBOT_TEST_PG_URL): created,
  migrated, filled with users of 5 paper pairs each (technical decider, 60 s interval), dropped at the end;
- the standalone fake exchange (wall-clock market, added latency) and the fake Telegram Bot API;
- W workers, each `tradebot.app.run_forever(cfg)` in its own process (this file's child mode), the first
  one of them (the Telegram leader) polling Telegram; each records the start lag of its cycles against their slots.

What it prints:
- per worker: pairs held, cycles run vs scheduled in the window, start lag p50/p99/max, CPU % of one core
  (and per 1,000 pairs), RSS before the pairs and after the window, per pair held;
- database load over the window from pg_stat_database (transactions, rows read / written per second) and,
  when the extension is installed, the top statements of pg_stat_statements;
- the lease statements' share: rounds of each worker.

    python bench/ha.py --workers 2 --pairs-per-worker 5000 --minutes 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from engine import cpu_seconds, free_port, loadavg, machine, pct, rss_mb  # noqa: E402

TOKEN = "123456:AAbenchmarktokenbenchmarktoken00"


# ---------------------------------------------------------------- child: one worker


def child(cfg_path: str, out_path: str, warmup: float, window: float) -> None:
    from tradebot import app as appmod
    from tradebot.config import load_config
    from tradebot.engine import manager as mgrmod

    box: dict = {"rss0": rss_mb()}
    real_start = mgrmod.BotManager.start

    def start_hook(self):
        self.record_lag = True
        box["mgr"] = self
        return real_start(self)

    mgrmod.BotManager.start = start_hook
    cfg = load_config(cfg_path, env={})
    stop = threading.Event()
    th = threading.Thread(target=lambda: appmod.run_forever(cfg, stop), daemon=True)
    th.start()
    time.sleep(warmup)
    mgr = box["mgr"]
    ha = mgr.ha
    mgr.stats["lags"].clear()
    c0, e0, r0, cpu0, t0 = mgr.stats["cycles"], mgr.stats["errors"], ha.rounds, cpu_seconds(), time.monotonic()
    held = []
    end = t0 + window
    while time.monotonic() < end:
        held.append(len(ha.tokens))
        time.sleep(1.0)
    t1, cpu1 = time.monotonic(), cpu_seconds()
    lags = list(mgr.stats["lags"])
    out = {
        "worker": ha.me, "held_avg": sum(held) / max(1, len(held)), "held_end": len(ha.tokens),
        "cycles": mgr.stats["cycles"] - c0, "errors": mgr.stats["errors"] - e0, "rounds": ha.rounds - r0,
        "seconds": t1 - t0, "cpu": cpu1 - cpu0, "lag_p50": pct(lags, 50), "lag_p99": pct(lags, 99),
        "lag_max": max(lags) if lags else float("nan"), "late": sum(1 for x in lags if x > 1.0),
        "rss0": box["rss0"], "rss1": rss_mb(), "skipped": mgr.slots.skipped,
    }
    Path(out_path).write_text(json.dumps(out))
    stop.set()
    th.join(60)
    os._exit(0)


# ---------------------------------------------------------------- parent


def _pg_base() -> str:
    url = os.environ.get("TRADEBOT_BENCH_PG_URL") or os.environ.get("TRADEBOT_TEST_PG_URL")
    if not url:
        sys.exit("set TRADEBOT_BENCH_PG_URL (or TRADEBOT_TEST_PG_URL) to a PostgreSQL server")
    return url


def _stat(conn) -> dict:
    with conn.cursor() as cur:
        cur.execute("SELECT xact_commit + xact_rollback, tup_returned, tup_fetched, tup_inserted + tup_updated "
                    "+ tup_deleted FROM pg_stat_database WHERE datname = current_database()")
        x, ret, fet, wr = cur.fetchone()
    return {"xact": x, "returned": ret, "fetched": fet, "written": wr}


def _statements(conn, top: int = 8):
    with conn.cursor() as cur:
        try:
            cur.execute("SELECT calls, total_exec_time, left(regexp_replace(query, '\\s+', ' ', 'g'), 90) "
                        "FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = "
                        "current_database()) ORDER BY calls DESC LIMIT %s", (top,))
            return cur.fetchall()
        except Exception:  # noqa: BLE001 - the extension is not installed
            conn.rollback()
            return None


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pairs-per-worker", type=int, default=5000)
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--minutes", type=float, default=2.0, help="measured window")
    ap.add_argument("--warmup", type=float, default=90.0, help="seconds before measuring (all workers started)")
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--lease-seconds", type=int, default=20)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args(argv)

    import psycopg2

    from tests.fakes.telegram import FakeTelegram
    from tradebot import db as dbmod
    from tradebot.models import ExchangeCredential, User, UserConfig
    from tradebot.vault import generate_key_file

    base = _pg_base()
    name = f"tb_bench_ha_{uuid.uuid4().hex[:8]}"
    admin = psycopg2.connect(**dbmod.parse_url(base).dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    url = base.rsplit("/", 1)[0] + "/" + name
    tmp = Path(tempfile.mkdtemp(prefix=name + "_"))
    procs = []
    fake = None
    tg = FakeTelegram(token=TOKEN).start()
    try:
        n_pairs = args.workers * args.pairs_per_worker
        t = time.monotonic()
        dbmod.open_database(url)
        dbmod.migrate()
        from tests.fakes.exchange import SYNTHETIC_COINS

        coins = ["BTC", "ETH", "SOL"] + list(SYNTHETIC_COINS[: max(0, args.symbols - 3)])
        symbols = [f"{c}/USDT" for c in coins[: args.symbols]]
        combos = [(ex, s) for s in symbols for ex in ("binance", "bybit")]
        users = (n_pairs + 4) // 5
        User.insert_many([{"telegram_id": 10_000 + i, "username": f"b{i}"} for i in range(users)]).execute()
        uids = [u.id for u in User.select(User.id).order_by(User.id)]
        creds = [{"user": u, "exchange": ex, "network": "paper"} for u in uids for ex in ("binance", "bybit")]
        for i in range(0, len(creds), 1000):
            ExchangeCredential.insert_many(creds[i:i + 1000]).execute()
        pairs = []
        for k in range(n_pairs):
            ex, sym = combos[k % len(combos)]
            pairs.append({"user": uids[k // 5], "exchange": ex, "symbol": sym, "budget": Decimal(1000),
                          "interval_seconds": 60, "is_trading": True, "decider": "technical"})
        # 5 pairs per user must be distinct (user, exchange, symbol): combos step by one per pair
        for i in range(0, len(pairs), 1000):
            UserConfig.insert_many(pairs[i:i + 1000]).execute()
        dbmod.close_database()
        print(f"machine: {machine()}")
        print(f"setup: {n_pairs} paper pairs of {users} users on {name} in {time.monotonic() - t:.1f} s")

        port = free_port()
        fake = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.exchange", "--port", str(port), "--latency-ms", str(args.latency_ms),
             "--wall-clock", "--symbols", str(args.symbols)],
            cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        fake.stdout.readline()
        ex_url = f"http://127.0.0.1:{port}"
        generate_key_file(tmp / "secret.key")
        outs = []
        for w in range(args.workers):
            d = tmp / f"w{w}"
            d.mkdir()
            cfg = d / "config.toml"
            cfg.write_text(
                f'data_dir = "{d}"\n[telegram]\ntoken = "{TOKEN}"\napi_url = "{tg.api_url}"\npoll_timeout = 5\n'
                f'[database]\nurl = "{url}"\n[security]\nkey_file = "{tmp / "secret.key"}"\n'
                f'[ha]\nlease_seconds = {args.lease_seconds}\n'
                f'[exchanges.binance]\napi_url = "{ex_url}"\ntestnet_api_url = "{ex_url}"\n'
                f'[exchanges.bybit]\napi_url = "{ex_url}"\ntestnet_api_url = "{ex_url}"\n'
            )
            out = d / "figures.json"
            outs.append(out)
            # every worker measures the same wall-clock window: later starters warm up for less
            warm = args.warmup - w * 2.0
            procs.append(subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--child", str(cfg), str(out), str(warm),
                 str(args.minutes * 60)], cwd=str(ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(2.0)
        conn = psycopg2.connect(**dbmod.parse_url(url).dsn)
        conn.autocommit = True
        time.sleep(max(0.0, args.warmup - 2.0 * args.workers))
        s0, t0 = _stat(conn), time.monotonic()
        time.sleep(args.minutes * 60)
        t1, s1 = time.monotonic(), _stat(conn)
        for p in procs:
            p.wait(300)
        secs = t1 - t0
        print(f"load average now: {loadavg()}")
        total_held = 0.0
        for w, out in enumerate(outs):
            if not out.exists():
                print(f"worker {w}: no figures (crashed? see {tmp}/w{w}/logs/bot.log)")
                continue
            f = json.loads(out.read_text())
            held = f["held_end"]
            total_held += f["held_avg"]
            expected = f["held_avg"] * f["seconds"] / 60.0
            cpu_pct = 100.0 * f["cpu"] / f["seconds"]
            per_pair_kb = (f["rss1"] - f["rss0"]) * 1024 / max(1, held)
            print(f"worker {w} ({f['worker']}): {held} pairs held (avg {f['held_avg']:.0f}); cycles {f['cycles']} "
                  f"ran / {expected:.0f} scheduled in {f['seconds']:.0f} s, errors {f['errors']}, slots skipped "
                  f"{f['skipped']}; start lag p50 {f['lag_p50'] * 1000:.0f} ms, p99 {f['lag_p99'] * 1000:.0f} ms, "
                  f"max {f['lag_max'] * 1000:.0f} ms, > 1 s late {f['late']}; CPU {cpu_pct:.1f}% of a core "
                  f"({cpu_pct * 1000 / max(1, held):.2f}% per 1,000 pairs); RSS {f['rss0']:.0f} MB before the "
                  f"pairs, {f['rss1']:.0f} MB after ({per_pair_kb:.0f} KB per pair held); lease rounds "
                  f"{f['rounds']}")
        print(f"pairs held in all (window average): {total_held:.0f} of {n_pairs}")
        d = {k: (s1[k] - s0[k]) / secs for k in s0}
        print(f"database ({secs:.0f} s, all workers and the status reads): {d['xact']:.0f} transactions/s, rows "
              f"read {d['returned'] + d['fetched']:.0f}/s, rows written {d['written']:.0f}/s")
        rows = _statements(conn)
        if rows is None:
            print("pg_stat_statements: not installed (CREATE EXTENSION pg_stat_statements for per-statement figures)")
        else:
            for calls, ms, q in rows:
                print(f"  {calls:>9} calls {ms:>10.0f} ms  {q}")
        conn.close()
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        if fake is not None:
            fake.send_signal(signal.SIGINT)
            try:
                fake.wait(10)
            except subprocess.TimeoutExpired:
                fake.kill()
        tg.stop()
        if not args.keep:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        admin.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5]))
    else:
        main()
