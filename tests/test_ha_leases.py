"""HA pair leases on PostgreSQL (issue 17): claim, renew, expiry and takeover, fencing, rebalancing, the
slot check, stops from another worker, the once-per-day gate. Workers run their rounds by hand
(`start(thread=False)`, `round()`); leases are aged on the database's clock."""

from __future__ import annotations

import datetime as dt
import json

import psycopg2
import pytest

from tests.fixtures_engine import (
    MINUTE,
    REAL_START,
    ScriptedDecider,
    StubVault,
    flat_series,
    make_pair,
    make_user,
)
from tradebot import db as dbmod
from tradebot.db import write_tx
from tradebot.engine.manager import BotManager
from tradebot.ha import balancer, fence
from tradebot.ha.daily import claim_daily
from tradebot.ha.fence import PairLeaseLost, fence_pair
from tradebot.ha.worker import HAWorker
from tradebot.instance_lock import InstanceLease, InstanceLocked
from tradebot.models import Notification, Order, PairLease, UserConfig, Worker

pytestmark = pytest.mark.pg


@pytest.fixture
def pg(pg_url):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    yield pg_url
    fence.set_active(None)
    dbmod.close_database()


def _sql(url, statement, params=()):
    """On a connection of its own (what another host would do), autocommit."""
    conn = psycopg2.connect(**dbmod.parse_url(url).dsn)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(statement, params)
        out = cur.fetchall() if cur.description else None
    conn.close()
    return out


def _expire_worker(url, worker):
    """The worker stopped renewing long ago (killed, cut off): its row and its leases ran out."""
    ago = "(now() AT TIME ZONE 'UTC') - interval '1 second'"
    _sql(url, f"UPDATE workers SET expires_at = {ago} WHERE id = %s", (worker.me,))  # its leases with it


def _manager(hub=None, deciders=None, clock=None):
    mgr = BotManager(hub, (lambda n: deciders[n]) if deciders else (lambda n: None), vault=StubVault(),
                     clock=clock, max_workers=1)
    return mgr


def _worker(mgr, ttl=20.0):
    w = HAWorker(mgr, ttl=ttl, admin_ids=[900])
    mgr.ha = w
    return w


def _pairs(n, users=2):
    owners = [make_user(900 + i) for i in range(users)]
    return [make_pair(owners[i % users], f"C{i}/USDT", "100", is_trading=True).id for i in range(n)]


def test_fair_share_and_surplus():
    assert balancer.fair_share(10, 3) == 4 and balancer.fair_share(0, 3) == 0 and balancer.fair_share(5, 0) == 5
    assert balancer.surplus([1, 2, 3, 4], 2) == [4, 3]
    assert balancer.surplus([1, 2, 3, 4], 2, busy=lambda i: i == 4) == [3, 2]  # a busy pair waits
    assert balancer.surplus([1, 2], 3) == [] and balancer.to_claim(2, 5) == 3


def test_second_worker_joins_and_takes_half_between_cycles(pg):
    ids = _pairs(10)
    m1, m2 = _manager(), _manager()
    w1, w2 = _worker(m1), _worker(m2)
    w1.start(thread=False)
    assert sorted(w1.tokens) == ids and sorted(m1.slots.ids()) == ids  # alone: every pair, scheduled
    assert set(w1.tokens.values()) == {1}
    w2.start(thread=False)
    assert w2.tokens == {}  # nothing free: w1 still holds all
    # w1 hands its surplus over, idle pairs first; a pair whose cycle is running waits for it to end
    m1.slots._busy.update(ids[4:])
    w1.round()
    assert len(m1.slots.ids()) == 5 and ids[-1] not in m1.slots
    assert ids[-1] in w1.leaving and ids[-1] in w1.tokens  # still held (renewed) until its cycle ended
    w2.round()
    assert len(w2.tokens) == 4  # the four idle ones
    m1.slots._busy.clear()
    w1.round()
    w2.round()
    assert len(w1.tokens) == 5 and len(w2.tokens) == 5 and not set(w1.tokens) & set(w2.tokens)
    assert set(w2.tokens.values()) == {2}  # every takeover bumps the fencing token
    rows = {r.config_id: r.worker for r in PairLease.select()}
    assert {c for c, w in rows.items() if w == w2.me} == set(w2.tokens)


def test_a_dead_workers_pairs_are_taken_over_and_the_admins_told_once(pg):
    ids = _pairs(6)
    m1, m2 = _manager(), _manager()
    w1, w2 = _worker(m1), _worker(m2)
    w1.start(thread=False)
    w2.start(thread=False)
    w1.round(), w2.round(), w1.round(), w2.round()
    assert len(w1.tokens) == 3 and len(w2.tokens) == 3
    before = dict(w1.tokens)
    _expire_worker(pg, w1)  # w1 is "killed": no more rounds
    w2.round()
    assert sorted(w2.tokens) == ids
    assert all(w2.tokens[c] == t + 1 for c, t in before.items())
    notes = [json.loads(n.payload) for n in Notification.select().where(Notification.kind == "worker_gone")]
    assert len(notes) == 1 and notes[0]["pairs"] == 3 and notes[0]["worker"] == w1.me
    w2.round()
    assert Notification.select().where(Notification.kind == "worker_gone").count() == 1
    # the "dead" worker wakes up (a paused process): its renewal finds nothing of its own, it runs nothing
    w1.round()
    assert w1.tokens == {} and m1.slots.ids() == []


def test_a_round_renews_every_lease_by_writing_only_the_workers_row(pg):
    ids = _pairs(5)
    w = _worker(_manager())
    w.start(thread=False)
    assert sorted(w.tokens) == ids

    def versions():  # a row's xmin changes with every write of it
        leases = dict(_sql(pg, "SELECT config_id, xmin::text FROM pair_leases"))
        (worker,) = _sql(pg, "SELECT xmin::text FROM workers WHERE id = %s", (w.me,))
        return leases, worker[0]

    before = versions()
    w.round()
    w.round()
    after = versions()
    assert after[0] == before[0], "a renewal rewrote pair lease rows"
    assert after[1] != before[1]  # the worker's row was renewed
    assert sorted(w.tokens) == ids
    fence.set_active(w)
    with write_tx():
        fence_pair(ids[0])  # still live


def test_fence_refuses_a_lost_lease_and_one_without_margin(pg):
    (cid,) = _pairs(1)
    m1, m2 = _manager(), _manager()
    w1, w2 = _worker(m1), _worker(m2)
    w1.start(thread=False)
    fence.set_active(w1)
    with write_tx():
        fence_pair(cid)  # ours, live
    # less than a third of the ttl left (renewals stalled): refused although the row is still ours
    _sql(pg, "UPDATE workers SET expires_at = (now() AT TIME ZONE 'UTC') + interval '2 seconds' WHERE id = %s",
         (w1.me,))
    with pytest.raises(PairLeaseLost), write_tx():
        fence_pair(cid)
    _expire_worker(pg, w1)
    w2.start(thread=False)
    assert cid in w2.tokens
    fence.set_active(w1)  # (both workers live in this one test process)
    with pytest.raises(PairLeaseLost), write_tx():
        fence_pair(cid)  # w1 lost it
    fence.set_active(w2)
    with write_tx():
        fence_pair(cid)


def test_engine_sends_no_order_for_a_pair_whose_lease_moved(pg, replay_hub, clock, deciders):
    replay_hub.market_data.series["BTC/USDT"] = flat_series(REAL_START, 3000, 100.0)
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted", is_trading=True)
    t = clock.ms - clock.ms % MINUTE - MINUTE
    deciders["scripted"] = ScriptedDecider({t + i * MINUTE: ("buy" if i % 2 == 0 else "sell") for i in range(6)})
    m1 = BotManager(replay_hub, lambda name: deciders[name], vault=StubVault(), clock=clock, max_workers=1)
    w1 = _worker(m1)
    w1.start(thread=False)
    m1.run_cycle(cfg.id)
    broker = replay_hub.broker("binance", "paper")
    assert len(broker.ledger) == 1  # bought under the lease
    _expire_worker(pg, w1)
    w2 = _worker(_manager())
    w2.start(thread=False)
    fence.set_active(w1)  # this process is w1 again
    clock.advance(1)
    with pytest.raises(PairLeaseLost):
        m1.run_cycle(cfg.id)  # the sell is decided, its intent refused
    assert len(broker.ledger) == 1, "an order was sent without the pair's lease"
    assert Order.select().count() == 1


def test_a_slot_runs_once_across_holders(pg):
    (cid,) = _pairs(1)
    w1 = _worker(_manager())
    w1.start(thread=False)
    due = 1_700_000_040.0
    assert w1.begin_slot(cid, due) is True
    assert w1.begin_slot(cid, due) is False  # the same slot never twice
    _expire_worker(pg, w1)
    w2 = _worker(_manager())
    w2.start(thread=False)
    assert w1.begin_slot(cid, due + 60) is False  # not ours any more
    assert w2.begin_slot(cid, due) is False  # the previous holder ran it
    assert w2.begin_slot(cid, due + 60) is True


def test_a_pair_stopped_on_another_worker_leaves_its_holder(pg):
    ids = _pairs(3)
    m1, m2 = _manager(), _manager()
    w1, w2 = _worker(m1), _worker(m2)
    w1.start(thread=False)
    w2.start(thread=False)
    m2.stop_pair(ids[0])  # /stop_trading handled on w2 (the Telegram worker), pair held by w1
    assert m2.is_running(ids[0]) is False
    w1.round()
    assert ids[0] not in w1.tokens and ids[0] not in m1.slots
    assert PairLease.get_by_id(ids[0]).worker is None
    m2.start_pair(ids[0])  # started again from w2's chat: a worker claims it within a round
    assert m2.is_running(ids[0]) is True  # HA: the database says so, wherever it runs
    w1.round(), w2.round()
    held = set(w1.tokens) | set(w2.tokens)
    assert held == set(ids)


def test_a_worker_does_not_join_beside_a_single_instance_lease(pg):
    lease = InstanceLease(pg, ttl=30)
    lease.acquire()  # e.g. `tradebot admin rotate-key`
    try:
        with pytest.raises(InstanceLocked):
            _worker(_manager()).start(thread=False)
    finally:
        lease.release()
    _worker(_manager()).start(thread=False)
    assert Worker.select().count() == 1


def test_the_daily_job_runs_once_per_day_across_workers(pg):
    day = dt.date(2026, 11, 29)
    assert claim_daily(day) is True
    assert claim_daily(day) is False
    assert claim_daily(day + dt.timedelta(days=1)) is True


def test_a_removed_pair_takes_its_lease_row_with_it(pg):
    (cid,) = _pairs(1)
    w1 = _worker(_manager())
    w1.start(thread=False)
    UserConfig.update(is_trading=False).where(UserConfig.id == cid).execute()
    w1.round()
    UserConfig.delete().where(UserConfig.id == cid).execute()
    assert PairLease.select().count() == 0


def test_a_slot_missed_during_the_takeover_runs_at_once_and_a_run_one_does_not(pg):
    import time

    ids = _pairs(2)
    UserConfig.update(interval_seconds=3600).execute()  # hourly pairs: the next slot is far away
    m1 = _manager()
    w1 = _worker(m1)
    w1.start(thread=False)
    latest = {}
    for cid in ids:
        interval, offset, due = m1.slots.slot_of(cid)
        latest[cid] = int(round((due - interval) * 1000))  # the grid's latest slot before now
    # the dead holder ran the latest slot of the first pair; the second one's was missed
    _sql(pg, "UPDATE pair_leases SET last_slot_ms = %s WHERE config_id = %s", (latest[ids[0]], ids[0]))
    _sql(pg, "UPDATE pair_leases SET last_slot_ms = %s WHERE config_id = %s", (latest[ids[1]] - 3_600_000, ids[1]))
    _expire_worker(pg, w1)
    m2 = _manager()
    w2 = _worker(m2)
    w2.start(thread=False)
    now = time.time()
    assert m2.slots.slot_of(ids[0])[2] > now  # already run: waits for its next slot
    assert m2.slots.slot_of(ids[1])[2] * 1000 == pytest.approx(latest[ids[1]], abs=1)  # missed: due now
    assert w2.begin_slot(ids[1], m2.slots.slot_of(ids[1])[2]) is True


def test_status_lists_workers_their_pairs_and_lease_ages(pg):
    from tradebot.ha.status import format_cluster, read_cluster

    assert read_cluster(pg) is None  # no worker ever registered: the single-instance status applies
    _pairs(4)
    w1, w2 = _worker(_manager()), _worker(_manager())
    w1.start(thread=False)
    w2.start(thread=False)
    w1.round(), w2.round()
    _expire_worker(pg, w2)  # w2 disappears; its 2 pairs wait for a worker
    c = read_cluster(pg)
    assert [w.id for w in c.live] == [w1.me] and c.active_pairs == 4 and c.unheld == 2
    text = "\n".join(format_cluster(c))
    assert "1 live worker(s)" in text and "2 waiting for a worker" in text and "GONE" in text
    row = next(line for line in text.splitlines() if line.startswith(w1.me.rsplit(":", 1)[-1]))
    assert row.split()[3] == "2"  # pairs held
    w1.release()
    c = read_cluster(pg)
    assert c.live == [] and "stopped" in "\n".join(format_cluster(c))


def test_rotate_key_is_refused_while_a_worker_runs(pg, tmp_path):
    import os
    import subprocess
    import sys

    from tradebot.vault import generate_key_file

    cfg = tmp_path / "config.toml"
    cfg.write_text(f'data_dir = "{tmp_path}"\n[database]\nurl = "{pg}"\n')
    generate_key_file(tmp_path / "secret.key")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}

    def rotate():
        return subprocess.run([sys.executable, "-m", "tradebot", "--config", str(cfg), "admin", "rotate-key"],
                              capture_output=True, text=True, env=env, timeout=60)

    w = _worker(_manager())
    w.start(thread=False)
    res = rotate()
    assert res.returncode == 1 and "1 `tradebot run` worker(s) use this database" in res.stderr, res.stderr
    w.release()
    res = rotate()
    assert res.returncode == 0, res.stderr


def test_a_single_instance_run_is_refused_beside_workers(pg, tmp_path):
    from tradebot.app import StartupError, run_forever
    from tradebot.config import load_config
    from tradebot.vault import generate_key_file

    (tmp_path / "config.toml").write_text(
        f'data_dir = "{tmp_path}"\n[telegram]\ntoken = "123:abc"\n[database]\nurl = "{pg}"\n[ha]\nenabled = false\n')
    cfg = load_config(tmp_path / "config.toml", env={})
    generate_key_file(cfg.key_file)
    w = _worker(_manager())
    w.start(thread=False)
    with pytest.raises(StartupError, match="workers"):
        run_forever(cfg)
    dbmod.open_database(pg)
    from tradebot.models import InstanceLock

    assert InstanceLock.get_by_id("run").holder is None  # it let the lease go again
