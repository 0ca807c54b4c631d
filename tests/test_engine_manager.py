"""BotManager with the real APScheduler (short intervals), start/stop/resume, graceful shutdown, daily summary."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

import pytest

from tests.fixtures_engine import MINUTE, ScriptedDecider, StubVault, make_pair, make_user
from tradebot.engine.manager import BotManager
from tradebot.models import DailyPerformance, Notification, Trade, UserConfig, UserState

D = Decimal


class SlowDecider:
    name = "slow"

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.active = 0
        self.max_active = 0
        self.started = 0
        self.finished = 0
        self.lock = threading.Lock()
        self.running = threading.Event()

    def decide(self, ctx):
        from tradebot.strategy.base import Decision

        with self.lock:
            self.active += 1
            self.started += 1
            self.max_active = max(self.max_active, self.active)
        self.running.set()
        time.sleep(self.seconds)
        with self.lock:
            self.active -= 1
            self.finished += 1
        self.running.clear()
        return Decision("hold", 50, "slow", self.name)


def test_real_scheduler_runs_pairs_without_overlap_and_shuts_down_gracefully(
    database, replay_hub, clock, deciders
):
    slow = deciders["slow"] = SlowDecider(1.5)
    mgr = BotManager(replay_hub, lambda n: deciders[n], vault=StubVault(), clock=clock, max_workers=4)
    user = make_user(1)
    a = make_pair(user, "BTC/USDT", "1000", decider="slow", interval_seconds=1, is_trading=True)
    b = make_pair(user, "ETH/USDT", "1000", decider="technical", interval_seconds=1, is_trading=True)
    c = make_pair(user, "SOL/USDT", "1000", decider="technical", interval_seconds=1)
    stop = threading.Event()

    def tick():  # a new candle every 0.2 s, so every cycle has something to decide
        while not stop.wait(0.2):
            clock.advance(1)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    try:
        out = mgr.start()
        assert out["resumed"] == 2
        assert mgr.is_running(a.id) and mgr.is_running(b.id) and not mgr.is_running(c.id)
        assert mgr.start_pair(c.id) is True and mgr.start_pair(c.id) is False  # idempotent
        assert UserState.get(UserState.config == c.id).status == "running"
        assert mgr.scheduler.get_job("daily_summary") is not None
        time.sleep(4.0)
        assert slow.max_active == 1  # a slow cycle never overlaps itself
        assert 2 <= slow.started <= 4  # ... and missed runs do not pile up (1.5 s cycles, 1 s interval)
        assert mgr.stats["cycles"] >= 8 and mgr.stats["errors"] == 0
        assert UserState.get(UserState.config == b.id).last_cycle_at is not None
        assert mgr.stop_pair(b.id) is True and mgr.stop_pair(b.id) is False
        assert mgr.stop_user(user.id) == 2
        assert not any(mgr.is_running(x.id) for x in (a, b, c))
        assert UserConfig.select().where(UserConfig.is_trading == True).count() == 0  # noqa: E712
        assert {s.status for s in UserState.select()} == {"stopped"}
        # graceful shutdown with a cycle in flight: it finishes, no new one starts
        mgr.start_pair(a.id)
        assert slow.running.wait(5)
        before = slow.started
        assert mgr.shutdown(timeout=5) is True
        assert slow.finished == slow.started == before
        time.sleep(1.3)
        assert slow.started == before
    finally:
        stop.set()
        ticker.join()
        if mgr._started:
            mgr.shutdown(1)


def test_shutdown_bound_is_respected(database, replay_hub, clock, deciders):
    slow = deciders["slow"] = SlowDecider(3.0)
    mgr = BotManager(replay_hub, lambda n: deciders[n], vault=StubVault(), clock=clock, max_workers=2)
    user = make_user(1)
    a = make_pair(user, "BTC/USDT", "1000", decider="slow", interval_seconds=1, is_trading=True)
    mgr.start()
    assert mgr.is_running(a.id)
    assert slow.running.wait(5)
    t0 = time.monotonic()
    assert mgr.shutdown(timeout=0.5) is False  # did not wait for the 3 s cycle
    assert time.monotonic() - t0 < 1.5


def test_daily_summary_and_daily_performance(engine, clock, deciders):
    deciders["scripted"] = ScriptedDecider()
    u1, u2 = make_user(1), make_user(2)
    p1 = make_pair(u1, "BTC/USDT", "1000", decider="scripted")
    p2 = make_pair(u1, "ETH/USDT", "500", decider="scripted")
    p3 = make_pair(u2, "BTC/USDT", "300", decider="scripted")
    # move to 23:50 of the data's day and trade a round trip on p1
    day0 = clock.ms // (24 * 60 * MINUTE)
    clock.ms = (day0 + 1) * 24 * 60 * MINUTE - 10 * MINUTE
    t = clock.ms - MINUTE
    deciders["scripted"].script = {t: "buy", t + 2 * MINUTE: "sell"}
    for _ in range(3):
        for p in (p1, p2, p3):
            engine.run_cycle(p.id)
        clock.advance(1)
    day = dt.date(1970, 1, 1) + dt.timedelta(days=day0)
    assert Trade.select().where(Trade.config == p1.id).count() == 2
    clock.ms = (day0 + 1) * 24 * 60 * MINUTE + 30_000  # 00:00:30 next day
    for p in (p1, p2, p3):
        engine.run_cycle(p.id)  # the day rolls: DailyPerformance for `day`
    perf = DailyPerformance.get(DailyPerformance.config == p1.id)
    assert perf.day == day and perf.trades == 2 and perf.pnl == perf.end_equity - perf.start_equity
    assert perf.pnl < 0 or perf.pnl > 0
    assert UserState.get(UserState.config == p1.id).daily_pnl == 0
    assert engine.daily_summary(day) == 2
    assert engine.daily_summary(day) == 0  # idempotent
    s1 = json.loads(
        Notification.get((Notification.kind == "daily_summary") & (Notification.user == u1.id)).payload
    )
    assert s1["day"] == day.isoformat() and [p["symbol"] for p in s1["pairs"]] == ["BTC/USDT", "ETH/USDT"]
    assert s1["pairs"][0]["trades"] == 2 and D(s1["pairs"][0]["pnl"]) == perf.pnl
    assert D(s1["total_equity"]) == sum(D(p["equity"]) for p in s1["pairs"])
    assert D(s1["total_pnl"]) == sum(D(p["pnl"]) for p in s1["pairs"])
    perf2 = DailyPerformance.get(DailyPerformance.config == p2.id)
    assert D(s1["pairs"][1]["pnl"]) == perf2.pnl and D(s1["total_equity"]) == D(1500) + perf.pnl + perf2.pnl


def child_main(db_url: str) -> None:
    """`tradebot run`-like process: run_until_signal with one slow pair (see the SIGTERM test)."""
    from tests.fixtures_engine import REAL_START, Clock, ReplayHub
    from tradebot import db as dbmod

    dbmod.open_database(db_url)
    clock = Clock(REAL_START + 600 * MINUTE)
    slow = SlowDecider(1.0)

    def tick():
        while True:
            time.sleep(0.1)
            clock.advance(1)

    threading.Thread(target=tick, daemon=True).start()
    mgr = BotManager(ReplayHub(clock), lambda n: slow, vault=StubVault(), clock=clock, shutdown_timeout=5)
    orig = slow.decide

    def decide(ctx):
        print("cycle", flush=True)
        return orig(ctx)

    slow.decide = decide
    clean = mgr.run_until_signal()
    print(f"clean={clean} started={slow.started} finished={slow.finished}", flush=True)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_sigint_shut_down_gracefully(database, sqlite_url, sig):
    user = make_user(1)
    make_pair(user, "BTC/USDT", "1000", decider="slow", interval_seconds=1, is_trading=True)
    database.close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.test_engine_manager", "child", sqlite_url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout.readline().strip() == b"cycle"  # a cycle is in flight
    time.sleep(0.2)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err.decode()[-2000:]
    last = out.decode().strip().splitlines()[-1]
    assert last.startswith("clean=True"), out.decode()
    started, finished = (int(x.split("=")[1]) for x in last.split()[1:])
    assert started == finished >= 1  # the in-flight cycle finished; none was cut off


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "child":
    child_main(sys.argv[2])


def test_pair_stopped_or_user_blocked_outside_the_process_drops_its_job(database, replay_hub, clock, deciders):
    """`tradebot admin block` runs in another process: the engine notices on the next cycle."""
    from tradebot import admin

    mgr = BotManager(replay_hub, lambda n: deciders[n], vault=StubVault(), clock=clock, max_workers=2)
    user = make_user(1)
    other = make_user(2)
    a = make_pair(user, "BTC/USDT", "1000", decider="technical", interval_seconds=1, is_trading=True)
    b = make_pair(other, "ETH/USDT", "1000", decider="technical", interval_seconds=1, is_trading=True)
    try:
        mgr.start()
        assert mgr.is_running(a.id) and mgr.is_running(b.id)
        admin.block(user.telegram_id)  # plain database writes, as the CLI does
        deadline = time.monotonic() + 5
        while mgr.is_running(a.id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not mgr.is_running(a.id)
        assert mgr.is_running(b.id)  # the other user's pair keeps trading
        state = UserState.get_or_none(UserState.config == a.id)
        assert state is None or state.status == "stopped"
        assert not UserConfig.get_by_id(a.id).is_trading
        UserConfig.update(is_trading=False).where(UserConfig.id == b.id).execute()
        deadline = time.monotonic() + 5
        while mgr.is_running(b.id) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not mgr.is_running(b.id)
    finally:
        mgr.shutdown(2)
