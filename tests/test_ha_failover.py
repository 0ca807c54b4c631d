"""HA failover end to end (issue 17): real `tradebot run` workers (subprocesses) on one PostgreSQL database,
the fake exchange and the fake Telegram on 127.0.0.1.

N pairs (TRADEBOT_TEST_HA_PAIRS, default 60) over 3 workers: most are paper pairs, a dozen trade for real
on the fake exchange (an LLM decider that always wants to buy, tight stop-loss / take-profit, and a market
that moves one minute per second: orders all the time). The worker holding the most pairs is killed with
SIGKILL, preferably while an order intent is pending; every pair must run a cycle on a survivor within
60 s, the admins get one `worker_gone` notice, then a fourth worker joins and takes a share. Afterwards:
no client order id twice on the exchange, no pair decided twice on one candle, the books equal the fake's.

The first worker is started alone so that it is the Telegram leader (the 'telegram' lease) when the chat part runs.
"""

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

import pytest

from tests.fakes.llm import FakeLLM
from tests.fixtures_run import TOKEN
from tests.test_engine_e2e import INITIAL_USDT, check_db_matches_fake

pytestmark = [pytest.mark.pg, pytest.mark.slow]

D = Decimal
ADMIN = 900
LIVE_USERS = 4  # x 3 symbols = 12 pairs trading on the fake exchange
TTL = 6  # [ha] lease_seconds: renewals every second


def _config(tmp_path, name, pg_url, telegram, exchange_url, llm_url):
    data = tmp_path / name
    data.mkdir()
    path = data / "config.toml"
    path.write_text(
        f'data_dir = "{data}"\n'
        f'[telegram]\ntoken = "{TOKEN}"\napi_url = "{telegram.api_url}"\nadmin_ids = [{ADMIN}]\npoll_timeout = 1\n'
        f'leader_lease_seconds = {TTL}\n'
        f'[database]\nurl = "{pg_url}"\n'
        f'[security]\nkey_file = "{tmp_path / "secret.key"}"\n'
        f'[ha]\nlease_seconds = {TTL}\n'
        '[trading]\nscheduler_workers = 4\nshutdown_timeout_seconds = 5\n'
        f'[llm]\nbase_url = "{llm_url}"\napi_key = "sk-test"\nmodel = "fake"\nmax_retries = 0\n'
        f'[exchanges.binance]\napi_url = "{exchange_url}"\ntestnet_api_url = "{exchange_url}"\n'
        f'[exchanges.bybit]\napi_url = "{exchange_url}"\ntestnet_api_url = "{exchange_url}"\n'
    )
    return path


def _start(cfg):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    log = open(cfg.parent / "stderr.log", "w")  # a file, not a pipe: a full pipe would block the worker
    proc = subprocess.Popen([sys.executable, "-m", "tradebot", "--config", str(cfg), "run"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    proc.log_path = cfg.parent / "stderr.log"
    return proc


def _wait(cond, timeout, what, procs=()):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = cond()
        if out:
            return out
        for p in procs:
            if p.poll() is not None:
                raise AssertionError(f"a worker exited ({p.returncode}): {p.log_path.read_text()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _held():
    from tradebot.models import PairLease

    out: dict[str, set[int]] = {}
    for lease in PairLease.select().where(PairLease.worker.is_null(False)):
        out.setdefault(lease.worker, set()).add(lease.config_id)
    return out


def _worker_of(pid):
    from tradebot.models import Worker

    row = Worker.select().where((Worker.pid == pid) & Worker.stopped_at.is_null()).order_by(
        Worker.started_at.desc()).first()
    return row.id if row else None


def _setup_pairs(n, fake, vault):
    from tradebot.models import ExchangeCredential, User, UserConfig

    User.create(telegram_id=ADMIN, username="admin")
    symbols = ("BTC/USDT", "ETH/USDT", "SOL/USDT")
    live_users = []
    common = dict(timeframe="1m", interval_seconds=5, is_trading=True)
    for i in range(LIVE_USERS):
        user = User.create(telegram_id=1000 + i, username=f"live{i}")
        fake.add_account(f"key{user.id}", f"secret{user.id}", {"USDT": str(INITIAL_USDT)}, exchange="binance")
        ExchangeCredential.create(user=user.id, exchange="binance", network="live",
                                  api_key_enc=vault.encrypt(f"key{user.id}"),
                                  secret_enc=vault.encrypt(f"secret{user.id}"))
        for sym in symbols:
            UserConfig.create(user=user.id, exchange="binance", symbol=sym, budget=D(1000), decider="llm",
                              stop_loss_percent=D("0.2"), take_profit_percent=D("0.2"), **common)
        live_users.append(user.id)
    paper = max(0, n - LIVE_USERS * len(symbols))
    owners = [User.create(telegram_id=2000 + i, username=f"paper{i}") for i in range((paper + 5) // 6)]
    for owner in owners:  # what /connect <exchange> paper leaves behind
        for exchange in ("binance", "bybit"):
            ExchangeCredential.create(user=owner.id, exchange=exchange, network="paper")
    for i in range(paper):
        UserConfig.create(user=owners[i // 6].id, exchange=("binance", "bybit")[i % 2],
                          symbol=symbols[(i // 2) % 3], budget=D(500), decider="technical", **common)
    return live_users


def test_three_workers_failover_and_a_joining_worker(pg_url, tmp_path, telegram, fake_exchange):
    from tradebot import db as dbmod
    from tradebot.models import AIDecision, Notification, Order, PairLease, User, UserConfig
    from tradebot.vault import Vault, generate_key_file

    n_pairs = int(os.environ.get("TRADEBOT_TEST_HA_PAIRS", "60"))
    fake = fake_exchange
    fake.latency_ms = 20  # widen the window between an intent, its order and its booking
    llm = FakeLLM().__enter__()
    llm.answer_json({"action": "buy", "confidence": 90, "reasoning": "always in"})
    generate_key_file(tmp_path / "secret.key")
    vault = Vault.load(tmp_path / "secret.key")
    dbmod.open_database(pg_url)
    dbmod.migrate()
    live_users = _setup_pairs(n_pairs, fake, vault)
    active = {c.id for c in UserConfig.select(UserConfig.id).where(UserConfig.is_trading == True)}  # noqa: E712
    assert len(active) == max(n_pairs, LIVE_USERS * 3)

    stop = threading.Event()

    def tick():  # the market moves one minute per second (signatures use the wall clock, candles this one)
        while not stop.wait(1.0):
            fake.advance(1)

    ticker = threading.Thread(target=tick, daemon=True)
    ticker.start()
    cfgs = [_config(tmp_path, f"w{i}", pg_url, telegram, fake.url, llm.base_url) for i in range(4)]
    procs = [_start(cfgs[0])]
    try:
        from tradebot.models import InstanceLock

        _wait(lambda: InstanceLock.select().where((InstanceLock.name == "telegram") & (InstanceLock.pid == procs[0].pid)
                                                  & InstanceLock.holder.is_null(False)).exists(),
              60, "the first worker leading Telegram", procs)
        procs += [_start(c) for c in cfgs[1:3]]
        # 1. three workers share the pairs
        share = -(-len(active) // 3)
        _wait(lambda: (lambda h: len(h) == 3 and sum(map(len, h.values())) == len(active)
                       and max(map(len, h.values())) <= share)(_held()),
              90, "3 workers holding every pair, each its share", procs)
        # the Telegram leader handles /stop_trading and /start_trading of a pair another worker holds
        poller = _worker_of(procs[0].pid)
        held = _held()
        target = next(UserConfig.get_by_id(c) for w, ids in held.items() if w != poller for c in sorted(ids)
                      if UserConfig.get_by_id(c).decider == "technical")
        chat = User.get_by_id(target.user_id).telegram_id
        telegram.push_message(chat, f"/stop_trading {target.symbol} {target.exchange}")
        assert target.symbol in telegram.wait_for_replies(chat, 1, timeout=30)[0]
        _wait(lambda: PairLease.get_by_id(target.id).worker is None and target.id not in set().union(*_held().values()),
              15, "the holder letting the stopped pair go", procs)
        telegram.push_message(chat, f"/start_trading {target.symbol} {target.exchange}")
        assert target.symbol in telegram.wait_for_replies(chat, 1, timeout=30, since=1)[0]
        _wait(lambda: PairLease.get_by_id(target.id).worker is not None, 15, "a worker claiming the restarted pair",
              procs)
        _wait(lambda: Order.select().where(Order.status == "filled").count() >= 3, 120, "orders filling", procs)

        # 2. kill -9 the worker holding the most pairs, preferably with an order intent pending
        held = _held()
        pids = {_worker_of(p.pid): p for p in procs}
        live_ids = {c.id for c in UserConfig.select(UserConfig.id).where(UserConfig.decider == "llm")}
        # the most pairs; among equal shares, the one with the most pairs trading on the exchange
        victim_id = max(held, key=lambda w: (len(held[w]), len(held[w] & live_ids)))
        victim = pids[victim_id]
        victim_pairs = held[victim_id]
        deadline = time.monotonic() + 20
        pending_at_kill = False
        while time.monotonic() < deadline:
            if Order.select().where((Order.status == "pending") & Order.config.in_(list(victim_pairs))).exists():
                pending_at_kill = True
                break
            time.sleep(0.002)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.time()
        victim.wait(10)
        survivors = [p for p in procs if p is not victim]

        def all_trading_again():
            rows = list(PairLease.select().where(PairLease.config.in_(list(active))))
            alive = {_worker_of(p.pid) for p in survivors}
            return len(rows) == len(active) and all(
                r.worker in alive and (r.last_slot_ms or 0) >= killed_at * 1000 for r in rows)

        _wait(all_trading_again, 60, "every pair running a cycle on a survivor within 60 s", survivors)
        failover = time.time() - killed_at
        print(f"\nfailover: {len(victim_pairs)} pairs of the killed worker trading again after {failover:.1f} s "
              f"(intent pending at the kill: {pending_at_kill})")
        _wait(lambda: Notification.select().where(Notification.kind == "worker_gone").count() >= 1, 30,
              "the worker_gone notice", survivors)

        # 3. a fourth worker joins: it takes a share, handed over between cycles
        joiner = _start(cfgs[3])
        procs = survivors + [joiner]
        _wait(lambda: len(_held().get(_worker_of(joiner.pid), ())) >= len(active) // 3 - 1, 60,
              "the joining worker taking its share", procs)
        time.sleep(5)  # a few more rounds and cycles after the move
        joined = len(_held().get(_worker_of(joiner.pid), ()))
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
        res = subprocess.run([sys.executable, "-m", "tradebot", "--config", str(cfgs[0]), "status"],
                             capture_output=True, text=True, env=env, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr
        assert "3 live worker(s)" in res.stdout and res.stdout.count(" GONE") == 1, res.stdout
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        codes = [p.wait(30) for p in procs]
        stop.set()
        ticker.join()
        llm.__exit__(None, None, None)
    assert codes == [0, 0, 0], codes

    # the admins were told once about the one worker that disappeared
    gone = list(Notification.select().where(Notification.kind == "worker_gone"))
    assert len(gone) == 1 and json.loads(gone[0].payload)["pairs"] == len(victim_pairs)
    # no pair decided twice on the same candle, through a failover and a rebalance
    seen = set()
    for cid, ts, provider in AIDecision.select(AIDecision.config, AIDecision.candle_ts, AIDecision.provider).where(
            AIDecision.candle_ts.is_null(False)).tuples():
        assert (cid, ts, provider) not in seen, f"pair {cid} decided twice on candle {ts}"
        seen.add((cid, ts, provider))
    # settle what the killed worker left pending (as a restart would), then the books against the exchange
    from tests.fixtures_exchange import fast_settings
    from tradebot.engine.manager import BotManager
    from tradebot.exchange.hub import ExchangeHub

    hub = ExchangeHub(fast_settings(fake.url))
    mgr = BotManager(hub, lambda name: None, vault=vault)
    time.sleep(1.0)  # a request the killed worker sent may still be reaching the fake
    mgr.runner.reconcile_pending(now_ms=int(time.time() * 1000))
    assert Order.select().where(Order.status == "pending").count() == 0
    assert Order.select().where(Order.status == "filled").count() >= 3
    check_db_matches_fake(fake, live_users)
    filled = Order.select().where(Order.status == "filled")
    after = filled.where(Order.created_at >= dt.datetime.fromtimestamp(killed_at, dt.UTC).replace(tzinfo=None))
    print(f"orders filled: {filled.count()} ({after.count()} after the kill); the joining worker took {joined} "
          f"of {len(active)} pairs")
