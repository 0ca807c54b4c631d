"""Engine benchmark: the real `tradebot run` under N active pairs (prints figures; not a test).

What runs:
- the standalone fake exchange (`python -m tests.fakes.exchange --wall-clock --symbols S`), a subprocess, with
  added latency; its market clock is the wall clock, so the hub sees 1m candles close every minute;
- the fake Telegram Bot API (tests/fakes/telegram.py) and the chat users in a subprocess
  (bench/chat_driver.py), with an added latency per Bot API call standing for the network round trip;
- `tradebot.app.run_forever(cfg)` in the main thread: the same function `tradebot run` calls, with the
  config file this bench writes (default settings except URLs, paths and the pairs): logging at INFO to the
  rotated log file, the Telegram polling thread, the default `trading.record_hold_decisions`, the engine's
  slot dispatcher (one timer thread for all pairs) and cycle pool, SQLite (WAL);
- U users x P paper pairs spread over S symbols x {binance, bybit}, created in the database before start.

What it prints (with the machine's load average):
- start-up: seconds to schedule the pairs, to the first getUpdates, to "running";
- cycles run vs scheduled in the window, start lag p50/p99/max, cycles later than 1 s;
- CPU of this process over the quiet window, per 1,000 pairs, as % of one core;
- RSS: before the pairs were started and with all running, per active pair;
- disk: bytes added to the database per pair per day; log bytes per day scaled to 1,000 pairs;
- exchange requests per minute by endpoint, as counted by the fake exchange;
- chat: C users each sending R commands (/status and /help in turn, or --chat-commands), each on the
  previous reply (p50/p99 ms), the cycles that started more than 1 s late and the garbage collections
  during that burst;
- the daily summary job run once mid-window (cycles late during it);
- where the process stood still: garbage-collection pauses, stalls of a ticker thread, long waits for and
  holds of the SQLite writer lock, each minute's market-data prefetch; with --chat-trace, where each chat
  reply's time went in the bot process;
- SIGTERM: seconds from the signal to run_forever returning.

    python bench/engine.py --users 200 --pairs 5 --minutes 3
    python bench/engine.py --users 200 --pairs 5 --minutes 3 --market futures   # 1,000 perpetuals
    python bench/engine.py --users 0 --minutes 0.5     # the chat floor with no pairs
    python bench/engine.py --users 0 --minutes 0.1 --chat-rounds 7 \
        --chat-commands "/status,/listpairs,/mystats,/position,/config,/trades,/help"
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = "123456:AAbenchmarktokenbenchmarktoken00"
CHAT_BASE = 900_000


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loadavg() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def machine() -> str:
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} CPU ({cpu}), Python {platform.python_version()}, {platform.platform()}"


def pct(values, q):
    if not values:
        return float("nan")
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(q / 100 * (len(values) - 1)))))
    return values[k]


def fake_counts(url: str) -> Counter:
    import json
    import urllib.request

    with urllib.request.urlopen(url + "/__counts", timeout=10) as r:
        return Counter(json.loads(r.read()))


def _signed_futures(key: str) -> bool:
    """'GET /fapi/v3/positionRisk' and friends: the signed futures endpoints (not klines, marks, markets)."""
    path = key.split(" ", 1)[-1]
    if path.startswith("/fapi/"):
        return not any(path.endswith(p) for p in ("/klines", "/premiumIndex", "/exchangeInfo", "/ticker/24hr",
                                                  "/ticker/price", "/openInterest", "/ping"))
    return path.startswith(("/v5/position/", "/v5/execution/", "/v5/order/", "/v5/account/"))


def dir_bytes(path: Path, prefix: str) -> int:
    return sum(p.stat().st_size for p in path.glob(prefix + "*") if p.is_file())


def notifications_sent() -> tuple[int, int, int]:
    """(handled, made, waiting) notifications so far."""
    from tradebot.models import db

    made, waiting = db.execute_sql("SELECT COUNT(*), COUNT(*) - COUNT(sent_at) FROM notifications").fetchone()
    return made - waiting, made, waiting


def db_bytes(path: Path) -> tuple[int, int]:
    """(pages in use x page size, rows of ai_decisions + decision_tallies); the WAL's pages count too
    (no checkpoint here: a forced one would hold up the engine's writers)."""
    from tradebot.models import db

    pages = db.execute_sql("PRAGMA page_count").fetchone()[0] - db.execute_sql("PRAGMA freelist_count").fetchone()[0]
    size = pages * db.execute_sql("PRAGMA page_size").fetchone()[0]
    rows = sum(db.execute_sql(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("ai_decisions", "decision_tallies"))
    return size, rows


class PauseWatch:
    """Where the process stood still: every garbage collection (generation, wall time, duration) and the
    times a 20 ms ticker thread woke more than 200 ms late (the interpreter or the process was held up:
    a long collection, C code holding the GIL, the machine's other work)."""

    def __init__(self):
        import gc

        self.gcs: list[tuple[float, int, float]] = []
        self.stalls: list[tuple[float, float]] = []
        self._t0 = 0.0
        gc.callbacks.append(self._gc)
        threading.Thread(target=self._tick, name="bench-ticker", daemon=True).start()

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._t0 = time.perf_counter()
        else:
            self.gcs.append((time.time(), info["generation"], time.perf_counter() - self._t0))

    def _tick(self) -> None:
        while True:
            t = time.perf_counter()
            time.sleep(0.02)
            late = time.perf_counter() - t - 0.02
            if late > 0.2:
                self.stalls.append((time.time(), late))

    def report(self, t0: float, t1: float) -> list[str]:
        gcs = [g for g in self.gcs if t0 <= g[0] < t1]
        out = []
        for gen in (0, 1, 2):
            mine = [d for _at, g, d in gcs if g == gen]
            if mine:
                out.append(f"gen{gen} {len(mine)} x, longest {max(mine) * 1000:.0f} ms, total {sum(mine):.2f} s")
        long = [(int(at % 60), g, round(d * 1000)) for at, g, d in gcs if d > 0.1]
        lines = [f"gc in the window: {'; '.join(out) or 'none'}"
                 + (f"; pauses > 100 ms (second of the minute, generation, ms): {long}" if long else "")]
        stalls = [(int(at % 60), round(late * 1000)) for at, late in self.stalls if t0 <= at < t1]
        lines.append(f"stalls (a 20 ms ticker thread woke > 200 ms late) in the window: {len(stalls)}"
                     + (f" (second of the minute, ms late): {stalls[:20]}" if stalls else ""))
        return lines


def thread_cpu() -> dict[str, float]:
    """CPU seconds used so far by this process's threads, summed by name (digits dropped: cycle-3 and
    cycle-11 are both 'cycle-'), read from /proc (Linux)."""
    import os
    import re

    names = {t.native_id: re.sub(r"[_-]?\d+$", "", t.name) for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


class ChatTrace:
    """Where a chat reply's time goes in the bot process, per message of a burst: the update's delivery
    (pushed on the fake -> getUpdates returned it), its recording in the inbox (-> handed to a chat lane;
    telegram/inbox.py), the wait for a handler thread and the inbox claim, the handler's work before its
    sendMessage, the send (the fake's 20 ms included) and the handler's CPU time."""

    def __init__(self):
        from tradebot.telegram import handlers, polling, transport

        self.got: dict[int, list[float]] = {}
        self.lane: dict[int, list[float]] = {}
        self.handled: dict[int, list[tuple[float, float, float]]] = {}  # (start, end, thread CPU)
        self.sends: dict[int, list[float]] = {}
        real_take, real_dispatch = polling.InboxPoller._take, polling.InboxPoller._dispatch
        real_handle, real_call = handlers.Dispatcher.handle_message, transport.BotApiTransport.__call__
        trace = self

        def chat_of(raw: dict) -> int | None:
            return ((raw.get("message") or {}).get("chat") or {}).get("id")

        def take(poller, raw):
            t = time.monotonic()
            for u in raw:
                if chat_of(u) is not None:
                    trace.got.setdefault(chat_of(u), []).append(t)
            return real_take(poller, raw)

        def dispatch(poller, update_id, raw, work=None):
            if chat_of(raw) is not None:
                trace.lane.setdefault(chat_of(raw), []).append(time.monotonic())
            return real_dispatch(poller, update_id, raw, work)

        def handle_message(disp, m):
            t, c = time.monotonic(), time.thread_time()
            try:
                return real_handle(disp, m)
            finally:
                trace.handled.setdefault(m.chat.id, []).append((t, time.monotonic(), time.thread_time() - c))

        def call(tr, method, url, params=None, **kw):
            if url.endswith("/sendMessage") and params:
                trace.sends.setdefault(int(params["chat_id"]), []).append(time.monotonic())
            return real_call(tr, method, url, params, **kw)

        polling.InboxPoller._take = take
        polling.InboxPoller._dispatch = dispatch
        handlers.Dispatcher.handle_message = handle_message
        transport.BotApiTransport.__call__ = call

    def report(self, trace) -> str:
        parts: dict[str, list[float]] = {"delivery": [], "record": [], "queue": [], "work": [], "send": [],
                                         "cpu": []}
        for chat, pushed, replied in trace:
            got = next((t for t in self.got.get(chat, []) if t >= pushed), None)
            lane = next((t for t in self.lane.get(chat, []) if got is not None and t >= got), None)
            h = next((x for x in self.handled.get(chat, []) if lane is not None and x[0] >= lane), None)
            send = next((t for t in self.sends.get(chat, []) if h is not None and t >= h[0]), None)
            if got is None or lane is None or h is None or send is None:
                continue
            parts["delivery"].append(got - pushed)
            parts["record"].append(lane - got)
            parts["queue"].append(h[0] - lane)
            parts["work"].append(send - h[0])
            parts["send"].append(replied - send)
            parts["cpu"].append(h[2])
        if not parts["cpu"]:
            return "  where the time went: no reply could be traced (the hooks did not see the updates)"
        return "  where the time went (p50 / p99 ms): " + ", ".join(
            f"{k} {pct(v, 50) * 1000:.0f} / {pct(v, 99) * 1000:.0f}" for k, v in parts.items() if v)


class WriterWatch:
    """The SQLite writer lock of the process (db.write_tx): the longest waits for it and the longest holds
    (a hold includes the commit, and with it any WAL checkpoint that commit ran), with their wall time."""

    def __init__(self):
        from tradebot import db as dbmod

        watch = self
        self.waits: list[tuple[float, float]] = []
        self.holds: list[tuple[float, float]] = []
        real = dbmod._sqlite_writer
        local = threading.local()

        class Timed:
            def acquire(self, blocking=True, timeout=-1):
                t = time.perf_counter()
                got = real.acquire(blocking, timeout)
                if not got:
                    return False
                depth = getattr(local, "depth", 0)
                if depth == 0:
                    local.t = time.perf_counter()
                    if local.t - t > 0.1:
                        watch.waits.append((time.time(), local.t - t))
                local.depth = depth + 1
                return True

            def release(self):
                local.depth -= 1
                if local.depth == 0 and time.perf_counter() - local.t > 0.1:
                    watch.holds.append((time.time(), time.perf_counter() - local.t))
                real.release()

            def __enter__(self):
                self.acquire()
                return self

            def __exit__(self, *exc):
                self.release()
                return False

        dbmod._sqlite_writer = Timed()

    def report(self, t0: float, t1: float) -> str:
        def top(items):
            mine = sorted(((round(d * 1000), int(at % 60)) for at, d in items if t0 <= at < t1), reverse=True)
            return f"{len(mine)}" + (f" (ms, second of the minute: {mine[:8]})" if mine else "")

        return (f"SQLite writer lock in the window: waits > 100 ms {top(self.waits)}; holds > 100 ms "
                f"{top(self.holds)}")


def charts_in_use(mgr, cfg, n: int) -> str:
    """RSS before and after `n` /chart renders of different pairs (Services.price_chart: the pair's rows,
    the shared candle cache, the chart worker) while every pair keeps trading; and cycles late meanwhile."""
    import types

    from tradebot.models import UserConfig
    from tradebot.services import Services

    services = Services(types.SimpleNamespace(cfg=cfg, vault=None, hub=mgr.hub, manager=mgr))
    lazy = "matplotlib" not in sys.modules
    configs = list(UserConfig.select().where(UserConfig.is_trading).limit(n))
    lags0 = len(mgr.stats["lag_at"])
    before = rss_mb()
    t = time.monotonic()
    took = []
    for config in configs:
        t1 = time.monotonic()
        services.price_chart(config.user, config)
        took.append(time.monotonic() - t1)
    after = rss_mb()
    late = sum(1 for lag in list(mgr.stats["lag_at"])[lags0:] if lag > 1.0)
    return (f"charts: matplotlib {'not loaded' if lazy else 'already loaded'} before the first; RSS {before:.1f} MB "
            f"before {len(configs)} /chart renders, {after:.1f} MB after (+{after - before:.1f} MB, a fixed cost "
            f"of the process, not per pair); render p50 {pct(took, 50) * 1000:.0f} ms, p95 "
            f"{pct(took, 95) * 1000:.0f} ms in {time.monotonic() - t:.1f} s; cycles > 1 s late meanwhile: {late}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--users", type=int, default=200)
    ap.add_argument("--pairs", type=int, default=5, help="pairs per user")
    ap.add_argument("--symbols", type=int, default=20, help="symbols on the fake exchange (x 2 exchanges)")
    ap.add_argument("--minutes", type=float, default=3.0, help="measured window")
    ap.add_argument("--warmup", type=float, default=70.0, help="seconds before measuring")
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--tg-latency-ms", type=float, default=20.0, help="added to each Bot API call (RTT)")
    ap.add_argument("--chat-users", type=int, default=20)
    ap.add_argument("--chat-rounds", type=int, default=5, help="commands per chat user in the burst")
    ap.add_argument("--chat-commands", default="/status,/help",
                    help="the burst's commands, comma-separated, taken in turn (e.g. /status,/mystats,/listpairs)")
    ap.add_argument("--no-daily", action="store_true", help="do not run the daily summary in the window")
    ap.add_argument("--charts", type=int, default=100, help="/chart renders after the window (0: none)")
    ap.add_argument("--chat-trace", action="store_true",
                    help="split each chat reply's time in the bot process (delivery, queue, work, send)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--workers", type=int, default=None, help="trading.scheduler_workers (default: config)")
    ap.add_argument("--llm", action="store_true", help="pairs use the ensemble over 2 fake LLM providers "
                                                       "(bench/llm_fakes.py): prints LLM calls per candle")
    ap.add_argument("--market", choices=("spot", "futures"), default="spot",
                    help="futures: every pair is a USDT-M perpetual (paper, 3x, long and short)")
    ap.add_argument("--live-users", type=int, default=None,
                    help="with --market futures: this many users trade live (testnet-style keys on the fake "
                         "exchange's /fapi and v5 linear) instead of paper, so reconciliation and funding "
                         "requests are counted (default: 10 %% of --users)")
    args = ap.parse_args(argv)
    n_pairs = args.users * args.pairs
    live_users = 0
    if args.market == "futures":
        live_users = min(args.users, args.live_users if args.live_users is not None else args.users // 10)
    if args.pairs > 2 * args.symbols:
        ap.error("--pairs must be <= 2 x --symbols")

    from tradebot import app as appmod
    from tradebot import db as dbmod
    from tradebot.config import load_config
    from tradebot.engine import manager as mgrmod
    from tradebot.models import ExchangeCredential, User, UserConfig

    port = free_port()
    fake = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.exchange", "--port", str(port), "--latency-ms", str(args.latency_ms),
         "--wall-clock", "--symbols", str(args.symbols), "--futures-accounts", str(live_users),
         "--extra-port", "0"],
        cwd=str(ROOT), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )
    # Bybit on a second port of the same fake: a host of its own, so each exchange has its own rate
    # limiter as in production (until round 4 both shared one: Bybit's costs under Binance's rate).
    bybit_url = fake.stdout.readline().decode().split(" and ")[1].strip()
    ex_url = f"http://127.0.0.1:{port}"
    urls = {"binance": ex_url, "bybit": bybit_url}
    chat = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "chat_driver.py"), TOKEN, str(args.tg_latency_ms)],
        cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    tg_url = chat.stdout.readline().strip()
    chat_lock = threading.Lock()

    def ask(line: str) -> dict:
        import json

        with chat_lock:
            chat.stdin.write(line + "\n")
            chat.stdin.flush()
            return json.loads(chat.stdout.readline())
    from bench import llm_fakes

    llm_servers = llm_fakes.start() if args.llm else None
    tmp = Path(tempfile.mkdtemp(prefix="tb-bench-"))
    cfg_path = tmp / "config.toml"
    ex_cfg = "".join(
        f'[exchanges.{ex}]\napi_url = "{urls[ex]}"\ntestnet_api_url = "{urls[ex]}"\ntimeout_ms = 5000\n\n'
        for ex in ("binance", "bybit")
    )
    cfg_path.write_text(
        f'data_dir = "{tmp}"\n\n[telegram]\ntoken = "{TOKEN}"\napi_url = "{tg_url}"\n\n'
        f'[logging]\nlevel = "INFO"\n\n'
        + (f"[trading]\nscheduler_workers = {args.workers}\n\n" if args.workers else "")
        + ex_cfg
        + (llm_fakes.config_text(llm_servers) if llm_servers else "")
    )
    cfg = load_config(cfg_path, env={})
    from tradebot.vault import generate_key_file

    generate_key_file(cfg.key_file)

    # ---- users and pairs, straight into the database (what /addpair + /start_trading leave behind)
    from tests.fakes.exchange import SYNTHETIC_COINS

    coins = ["BTC", "ETH", "SOL", *SYNTHETIC_COINS][: args.symbols]
    suffix = ":USDT" if args.market == "futures" else ""
    combos = [(ex, f"{c}/USDT{suffix}") for c in coins for ex in ("binance", "bybit")]
    extra = {"market_type": "futures", "leverage": 3} if args.market == "futures" else {}
    dbmod.open_database(cfg.database_url)
    dbmod.migrate()
    n_users = max(args.users, args.chat_users)
    with dbmod.write_tx():
        rows = [{"telegram_id": CHAT_BASE + i, "username": f"bench{i}"} for i in range(n_users)]
        for i in range(0, len(rows), 500):
            User.insert_many(rows[i:i + 500]).execute()
        uids = [u.id for u in User.select(User.id).order_by(User.id)]
        from tradebot.vault import Vault

        vault = Vault.load(cfg.key_file)

        def cred(i: int, u: int, ex: str) -> dict:
            if i >= live_users:
                return {"user": u, "exchange": ex, "network": "paper"}
            key = f"{'fbn' if ex == 'binance' else 'fbb'}{i}"  # the fake's --futures-accounts keys
            return {"user": u, "exchange": ex, "network": "live", "api_key_enc": vault.encrypt(key),
                    "secret_enc": vault.encrypt(f"s{i}")}

        creds = [cred(i, u, ex) for i, u in enumerate(uids) for ex in ("binance", "bybit")]
        for i in range(0, len(creds), 500):
            ExchangeCredential.insert_many(creds[i:i + 500]).execute()
        pairs = []
        for k, u in enumerate(uids[: args.users]):
            for j in range(args.pairs):
                ex, sym = combos[(k * args.pairs + j) % len(combos)]
                pairs.append({"user": u, "exchange": ex, "symbol": sym, "budget": Decimal(1000),
                              "interval_seconds": 60, "is_trading": True,
                              "decider": "ensemble" if args.llm else "technical", **extra})
        for i in range(0, len(pairs), 500):
            UserConfig.insert_many(pairs[i:i + 500]).execute()
    dbmod.close_database()

    # ---- hooks: the manager (start time, start lag of every cycle)
    box: dict = {}
    real_start = mgrmod.BotManager.start

    def start_hook(self):
        self.record_lag = True
        box["mgr"] = self
        real_prefetch = self.runner.prefetch

        def prefetch(now_ms, *a, **kw):  # when each minute's market data was in (cycles wait for it)
            t = time.time()
            try:
                return real_prefetch(now_ms, *a, **kw)
            finally:
                box.setdefault("prefetch", []).append((t, time.time() - t))

        self.runner.prefetch = prefetch
        md = self.hub.market_data
        real_fetch = md._fetch

        def fetch(series, exchange, network, symbol, *a, **kw):  # a slow candle fetch holds its stream's lock
            t = time.time()
            try:
                return real_fetch(series, exchange, network, symbol, *a, **kw)
            finally:
                if time.time() - t > 0.5:
                    box.setdefault("slow_fetch", []).append((t, time.time() - t, f"{exchange} {symbol}"))

        md._fetch = fetch
        box["rss_before_pairs"] = rss_mb()
        t = time.monotonic()
        out = real_start(self)
        box["start_s"] = time.monotonic() - t
        return out

    mgrmod.BotManager.start = start_hook
    real_shutdown = mgrmod.BotManager.shutdown

    def shutdown_hook(self, timeout=None):
        t = time.monotonic()
        try:
            return real_shutdown(self, timeout)
        finally:
            box["engine_stop_s"] = time.monotonic() - t

    mgrmod.BotManager.shutdown = shutdown_hook
    from tradebot.telegram import bot as botmod

    real_stop = botmod.BotHandle.stop

    def stop_hook(self, timeout=30):
        t = time.monotonic()
        try:
            return real_stop(self, timeout)
        finally:
            box["bot_stop_s"] = time.monotonic() - t

    botmod.BotHandle.stop = stop_hook
    pauses = PauseWatch()
    writer = WriterWatch()
    chat_trace = ChatTrace() if args.chat_trace else None
    t_launch = time.monotonic()
    result: dict = {}
    report: list[str] = []

    def say(line: str = "") -> None:
        report.append(line)

    def chat_burst(label: str) -> tuple[list[float], int]:
        """Every chat user sends `rounds` commands, each after the reply to the previous one."""
        mgr = box.get("mgr")
        lags0 = len(mgr.stats["lag_at"]) if mgr else 0
        cpu0 = thread_cpu() if chat_trace is not None else None
        t0, wall0 = time.monotonic(), time.time()
        answer = ask(f"burst {args.chat_users} {args.chat_rounds} {args.chat_commands.replace(' ', '+')}")
        burst_s = time.monotonic() - t0
        latencies = answer["latencies"]
        late = 0
        if mgr:
            late = sum(1 for lag in list(mgr.stats["lag_at"])[lags0:] if lag > 1.0)
        say(f"chat {label}: {args.chat_users} users x {args.chat_rounds} commands at once ({args.chat_commands}): p50 "
            f"{pct(latencies, 50) * 1000:.0f} ms, p99 {pct(latencies, 99) * 1000:.0f} ms, max "
            f"{max(latencies) * 1000:.0f} ms; cycles > 1 s late meanwhile: {late}")
        gcs = [(g, round(d * 1000)) for at, g, d in pauses.gcs if wall0 <= at and (g > 0 or d > 0.005)]
        if gcs:  # a collection stops every thread: the replies in flight wait it out
            say(f"  garbage collections during the burst (generation, ms; gen0 under 5 ms left out): {gcs}")
        if chat_trace is not None:
            say(chat_trace.report(answer["trace"]))
            used = {k: v - cpu0.get(k, 0.0) for k, v in thread_cpu().items()}
            top = sorted(((v, k) for k, v in used.items() if v > 0.005), reverse=True)
            say(f"  CPU of the bot's threads during the burst ({burst_s:.2f} s): "
                + ", ".join(f"{k} {v * 1000:.0f} ms" for v, k in top[:8]))
        return latencies, late

    def driver() -> None:
        try:
            while "mgr" not in box or ask("first_poll")["at"] is None:
                time.sleep(0.05)
            first_poll = ask("first_poll")["at"]
            mgr = box["mgr"]
            all_at = time.monotonic()
            say(f"start-up: BotManager.start() {box.get('start_s', float('nan')):.2f} s; first getUpdates "
                f"{first_poll - t_launch:.2f} s and all {n_pairs} pairs scheduled {all_at - t_launch:.2f} s after "
                f"run_forever() was called")
            # prime every chat user (first message registers them)
            ask(f"prime {args.chat_users}")
            time.sleep(args.warmup)
            chat_burst("before the window")
            mgr.stats["lags"].clear()
            mgr.stats["lag_t"].clear()
            mgr.stats["durations"].clear()
            c0 = mgr.stats["cycles"]
            skipped0 = mgr.slots.skipped
            e0 = mgr.stats["errors"]
            req0 = fake_counts(ex_url)
            db0, rows0 = db_bytes(tmp)
            disk_t0 = disk_from = time.time()
            log0 = dir_bytes(tmp / "logs", "bot.log")
            cpu0, t0 = cpu_seconds(), time.time()
            threads0 = thread_cpu()
            sent0, made0, _ = notifications_sent()
            rss = [rss_mb()]
            window = args.minutes * 60
            daily_at = t0 + window - 20 if not args.no_daily and n_pairs else None
            before_daily = None
            daily_lags = None
            while time.time() - t0 < window:
                time.sleep(1)
                rss.append(rss_mb())
                if disk_t0 and time.time() - disk_t0 >= 65 and window >= 150:
                    # every pair has made its day's first tally row by now (one-off per pair per day):
                    # measure the steady state from here
                    db0, rows0 = db_bytes(tmp)
                    disk_t0, disk_from = None, time.time()
                if daily_at is not None and time.time() >= daily_at:
                    daily_at = None
                    before_daily = (db_bytes(tmp), time.time())  # the disk figure excludes the summary
                    n0 = len(mgr.stats["lag_at"])
                    td = time.monotonic()
                    mgr._daily_job()
                    daily_s = time.monotonic() - td
                    time.sleep(5)
                    daily_lags = (daily_s, sum(1 for x in list(mgr.stats["lag_at"])[n0:] if x > 1.0))
            cpu1, t1 = cpu_seconds(), time.time()
            threads1 = thread_cpu()
            sent1, made1, waiting = notifications_sent()
            skipped1 = mgr.slots.skipped
            minutes = (t1 - t0) / 60
            lags = list(mgr.stats["lags"])
            done, errors = mgr.stats["cycles"] - c0, mgr.stats["errors"] - e0
            reqs = fake_counts(ex_url) - req0
            (db1, rows1), disk_t1 = before_daily or (db_bytes(tmp), time.time())
            disk_minutes = (disk_t1 - disk_from) / 60
            log1 = dir_bytes(tmp / "logs", "bot.log")
            burst = chat_burst(f"at {n_pairs} pairs") if n_pairs else None
            scheduled = 0
            for c in UserConfig.select(UserConfig.id, UserConfig.interval_seconds):
                iv = c.interval_seconds
                off = mgr._offset(c.id, iv)
                scheduled += max(0, int((t1 - off) // iv) - int((t0 - off) // iv))
            say(f"machine: {machine()}")
            say(f"load average at the end of the window (1/5/15 min): {loadavg()}")
            what = f"paper {args.market} pairs" if not live_users else (
                f"{args.market} pairs ({live_users * args.pairs} live: {live_users} users with keys on the fake's "
                f"futures API; the rest paper)")
            say(f"setup: {args.users} users x {args.pairs} = {n_pairs} active {what} on {len(combos)} "
                f"(exchange, symbol) streams, 60 s interval, 1m candles, fake exchange latency "
                f"{args.latency_ms:g} ms, fake Bot API latency {args.tg_latency_ms:g} ms, window {minutes:.1f} min, record_hold_decisions = "
                f"{cfg.trading.record_hold_decisions!r}, scheduler workers {cfg.trading.scheduler_workers}")
            # the cycles whose slot lies in the window, counted by their slot (not by when they ran: a
            # backlog from before the window would otherwise count in it)
            started = sum(1 for at, lag in list(mgr.stats["lag_t"]) if t0 <= at - lag < t1)
            say(f"cycles: slots in the window {scheduled}, started {started} "
                f"({100 * started / max(1, scheduled):.1f}%); slots skipped because the pair's previous cycle "
                f"had not started or finished: {skipped1 - skipped0}; cycles finished in the window "
                f"{done}, errors {errors}")
            late_at = [at for at, lag in list(mgr.stats["lag_t"]) if lag > 1.0 and at < t1]
            if late_at:
                secs = Counter(int(at % 60) for at in late_at)
                say(f"late cycles by second of the minute: {dict(sorted(secs.items()))}")
            if lags:
                say(f"start lag: p50 {pct(lags, 50) * 1000:.0f} ms, p99 {pct(lags, 99) * 1000:.0f} ms, max "
                    f"{max(lags) * 1000:.0f} ms; > 1 s late: {sum(1 for x in lags if x > 1.0)} of {len(lags)}")
            for line in pauses.report(t0, t1):
                say(line)
            say(writer.report(t0, t1))
            pf = [(int(at % 60), round(d, 2)) for at, d in box.get("prefetch", []) if t0 <= at < t1]
            say(f"market-data prefetch in the window (second of the minute it began, seconds it took): {pf}")
            slow = [(int(at % 60), round(d, 2), what) for at, d, what in box.get("slow_fetch", []) if t0 <= at < t1]
            say(f"candle fetches > 0.5 s in the window (second of the minute, seconds, stream): {len(slow)} "
                f"{sorted(slow, key=lambda x: -x[1])[:6]}")
            if daily_lags:
                say(f"daily summary job: ran {daily_lags[0]:.2f} s; cycles > 1 s late in it (+5 s): "
                    f"{daily_lags[1]}")
            cpu_pct = 100 * (cpu1 - cpu0) / (t1 - t0)
            per_k = cpu_pct / (n_pairs / 1000) if n_pairs else float("nan")
            by_thread = sorted(((v - threads0.get(k, 0.0), k) for k, v in threads1.items()), reverse=True)
            bench_pct = 100 * sum(v for v, k in by_thread if k.startswith("bench")) / (t1 - t0)
            bot_k = (cpu_pct - bench_pct) / (n_pairs / 1000) if n_pairs else float("nan")
            say(f"CPU (whole process) over the window: {cpu_pct:.1f}% of one core = {per_k:.2f}% per 1,000 pairs; "
                f"without the bench's own threads ({bench_pct:.1f}%): {bot_k:.2f}% per 1,000 pairs")
            say("  by thread (% of one core): " + ", ".join(
                f"{k} {100 * v / (t1 - t0):.1f}" for v, k in by_thread[:9] if v > 0))
            base = box.get("rss_before_pairs", rss[0])
            per_pair = (max(rss) - base) * 1024 / n_pairs if n_pairs else float("nan")
            say(f"trade notifications handled in the window (sent, or skipped for /notify off): {sent1 - sent0} "
                f"({(sent1 - sent0) / (t1 - t0) * 60:.0f} a minute), made {made1 - made0}; waiting at the end: "
                f"{waiting}")
            say(f"RSS: {base:.1f} MB before the pairs were scheduled, peak {max(rss):.1f} MB, "
                f"{per_pair:.1f} KB per active pair")
            per_day = 1440 / minutes
            if n_pairs:
                say(f"disk: database (pages in use) grew {(db1 - db0) / 1024:.0f} KB in "
                    f"{disk_minutes:.1f} min = {(db1 - db0) * 1440 / disk_minutes / n_pairs / 1024:.2f} KB per pair "
                    f"per day; decision rows (ai_decisions + decision_tallies) +{rows1 - rows0}")
                say(f"logs: {(log1 - log0) / 1024:.1f} KB in the window = "
                    f"{(log1 - log0) * per_day * 1000 / n_pairs / 1e6:.2f} MB per day at 1,000 pairs (INFO)")
            candles = int(t1 // 60) - int(t0 // 60)  # 1m candles (= 60 s cycle slots) begun in the window
            per_ex = len(combos) // 2
            say(f"exchange requests counted by the fake exchange over {candles} candles / cycle slots, "
                f"{per_ex} symbols per exchange:")
            for k, v in sorted(reqs.items(), key=lambda kv: -kv[1]):
                say(f"  {k}: {v} = {v / max(1, candles) / per_ex:.2f} per symbol per candle")
            if live_users:
                # signed requests come only from the live futures pairs: reconciliation (the venue's position
                # every cycle), funding history, orders and their one-off leverage / margin mode settings
                n_live = live_users * args.pairs
                by_ex = Counter(p["exchange"] for p in pairs[:n_live])  # the first users' pairs are the live ones
                signed = {k: v for k, v in reqs.items() if _signed_futures(k)}
                total = sum(signed.values())
                say(f"live futures pairs: {n_live} ({by_ex['binance']} Binance, {by_ex['bybit']} Bybit); signed "
                    f"requests {total / minutes / n_live:.2f} per pair per minute, by endpoint (per pair of its "
                    f"exchange):")
                for k, v in sorted(signed.items(), key=lambda kv: -kv[1]):
                    ex = "binance" if "/fapi/" in k else "bybit"
                    say(f"  {k}: {v} = {v / minutes / max(1, by_ex[ex]):.3f} per live {ex} pair per minute")
            if llm_servers:
                for line in llm_fakes.report(dbmod.db, int(t0 * 1000) - 60_000, n_pairs, llm_servers):
                    say(line)
            result["burst"] = burst
            if args.charts and n_pairs:
                say(charts_in_use(mgr, cfg, args.charts))
        except Exception as exc:  # noqa: BLE001
            say(f"bench driver failed: {type(exc).__name__}: {exc}")
            import traceback

            traceback.print_exc()
        finally:
            box["t_sig"] = time.monotonic()
            os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=driver, name="bench-driver", daemon=True).start()
    # stderr of the process (the console log handler) goes to a file, like a service's journal
    err = open(tmp / "stderr.log", "w")
    saved = os.dup(2)
    os.dup2(err.fileno(), 2)
    try:
        code = appmod.run_forever(cfg)
    finally:
        os.dup2(saved, 2)
        stop_s = time.monotonic() - box.get("t_sig", time.monotonic())
        fake.terminate()  # also when run_forever failed: no orphaned fake servers
        fake.wait(10)
        chat.stdin.close()
        chat.wait(10)
        if llm_servers:
            llm_fakes.stop(llm_servers)
    print("\n".join(report))
    print(f"SIGTERM: run_forever returned {code} {stop_s:.2f} s after the signal (Telegram bot stop "
          f"{box.get('bot_stop_s', float('nan')):.2f} s, engine shutdown {box.get('engine_stop_s', float('nan')):.2f} s)")
    print(f"(work dir {tmp}{'' if args.keep else ', removed'}; launched {time.monotonic() - t_launch:.0f} s ago)")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
