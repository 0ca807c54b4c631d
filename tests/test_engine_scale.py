"""Doing less per cycle without losing anything: no write for a calm cycle, one ticker per symbol per
cycle slot, repeated hold decisions counted (not stored one row each) with exact stats, and retention."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tests.fixtures_engine import MINUTE, StubVault, make_pair, make_user
from tradebot import db as dbmod
from tradebot.engine.decisions import apply_retention
from tradebot.models import AIDecision, DecisionTally, Trade, UserState, db

D = Decimal


class Hold:
    """The technical decider on a quiet market: a hold every candle, the reasoning's numbers changing."""

    name = "technical"

    def __init__(self):
        self.n = 0

    def decide(self, ctx):
        from tradebot.strategy.base import Decision

        self.n += 1
        return Decision("hold", 50 + self.n % 3, f"EMA12<EMA26 downtrend, MACD hist {self.n:+.4g}", "technical")


def _statements(fn):
    """Run fn() and return the SQL statements this thread's SQLite connection executed meanwhile."""
    seen: list[str] = []
    conn = db.connection()
    conn.set_trace_callback(seen.append)
    try:
        fn()
    finally:
        conn.set_trace_callback(None)
    return seen


def _writes(statements):
    words = ("INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "SAVEPOINT", "RELEASE")
    return [s for s in statements if s.lstrip().upper().startswith(words)]


def stats_row(user_id, provider):
    cur = db.execute_sql(
        "SELECT decisions, buys, sells, holds, avg_confidence FROM ai_provider_stats_by_user "
        "WHERE user_id = ? AND provider = ?",
        (user_id, provider),
    )
    return cur.fetchone()


def test_a_calm_cycle_writes_nothing_and_reads_the_pair_once(engine, clock, deciders):
    deciders["technical"] = Hold()
    cfg = make_pair(make_user(1), "BTC/USDT", "1000", is_trading=True)
    engine.run_cycle(cfg.id)  # first cycle: state created, the candle's decision stored
    clock.ms += 10_000  # same candle, same price: nothing happened
    stmts = _statements(lambda: engine.run_cycle(cfg.id))
    assert _writes(stmts) == []
    selects = [s for s in stmts if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1, selects
    # a new candle is one write transaction (state + the hold counted), still one read
    clock.advance(1)
    stmts = _statements(lambda: engine.run_cycle(cfg.id))
    writes = _writes(stmts)
    assert [w.split()[0].upper() for w in writes if w.split()[0].upper() in ("BEGIN", "COMMIT")] == [
        "BEGIN",
        "COMMIT",
    ], writes
    assert len([s for s in stmts if s.lstrip().upper().startswith("SELECT")]) == 1
    st = UserState.get(UserState.config == cfg.id)
    assert st.last_candle_ts == clock.ms - clock.ms % MINUTE - MINUTE


def test_repeated_holds_are_counted_and_the_stats_stay_exact(database, replay_hub, clock):
    from tradebot.engine.manager import BotManager

    hold = Hold()
    mgr = BotManager(replay_hub, lambda name: hold, vault=StubVault(), clock=clock, record_holds="all")
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", is_trading=True)
    for _ in range(30):
        mgr.run_cycle(cfg.id)
        clock.advance(1)
    # one full row (the first hold), the other 29 counted in one tally row of the day
    assert AIDecision.select().count() == 1
    tally = DecisionTally.get()
    assert tally.decisions == 29 and tally.config_id == cfg.id and tally.provider == "technical"
    confidences = [50 + n % 3 for n in range(1, 31)]
    decisions, buys, sells, holds, avg = stats_row(user.id, "technical")
    assert (decisions, buys, sells, holds) == (30, 0, 0, 30)
    assert round(float(avg), 2) == round(sum(confidences) / 30, 2)
    # /mystats reads trades: untouched by the compaction
    assert Trade.select().count() == 0


def test_retention_folds_old_holds_without_changing_the_stats(database):
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000")
    today = dt.date(2026, 3, 1)
    old = dt.datetime(2026, 1, 10, 12, 0)
    for i in range(5):
        AIDecision.create(user=user.id, config=cfg.id, symbol="BTC/USDT", provider="technical", action="hold",
                          confidence=40 + i, reasoning="r", created_at=old + dt.timedelta(minutes=i))
    AIDecision.create(user=user.id, config=cfg.id, symbol="BTC/USDT", provider="technical", action="buy",
                      confidence=80, created_at=old, executed=True)
    recent = AIDecision.create(user=user.id, config=cfg.id, symbol="BTC/USDT", provider="technical",
                               action="hold", confidence=60, created_at=dt.datetime(2026, 2, 25))
    DecisionTally.create(user=user.id, config=cfg.id, symbol="BTC/USDT", provider="technical", action="hold",
                         day=dt.date(2026, 1, 11), decisions=100, confidence_sum=5000)
    DecisionTally.create(user=user.id, config=cfg.id, symbol="BTC/USDT", provider="technical", action="hold",
                         day=dt.date(2026, 2, 28), decisions=7, confidence_sum=350)
    before = stats_row(user.id, "technical")
    out = apply_retention(30, today, batch=2, pause=0)
    assert out == {"holds_folded": 5, "tallies_folded": 2}
    assert stats_row(user.id, "technical") == before
    assert before[0] == 5 + 1 + 1 + 100 + 7 and before[3] == 5 + 1 + 100 + 7
    # the buy and the recent hold are kept in full; older days are one all-time row
    assert {d.action for d in AIDecision.select()} == {"buy", "hold"}
    assert AIDecision.get_by_id(recent.id).confidence == 60
    days = sorted((t.day, t.decisions) for t in DecisionTally.select())
    assert days == [(dt.date(1970, 1, 1), 105), (dt.date(2026, 2, 28), 7)]
    assert apply_retention(30, today, pause=0) == {"holds_folded": 0, "tallies_folded": 0}


def test_one_ticker_request_per_symbol_per_cycle_slot(database, fake_exchange):
    """Six pairs of one symbol cycling at different seconds of one minute: one ticker request."""
    from tests.fixtures_exchange import fast_settings
    from tradebot.engine.manager import BotManager
    from tradebot.exchange.hub import ExchangeHub

    t = {"ms": fake_exchange.now_ms - fake_exchange.now_ms % MINUTE + 1000}
    hub = ExchangeHub(fast_settings(fake_exchange.url), now_ms=lambda: t["ms"])
    mgr = BotManager(hub, lambda name: Hold(), vault=StubVault(), clock=lambda: t["ms"] / 1000)
    cfgs = [make_pair(make_user(i), "BTC/USDT", "1000", is_trading=True) for i in range(1, 7)]
    fake_exchange.clear()
    for i, cfg in enumerate(cfgs):
        t["ms"] += 9_000 * (i > 0)  # seconds 1, 10, 19, ..., 46 of the same minute
        mgr.run_cycle(cfg.id)
    assert len(fake_exchange.requests_to("/api/v3/ticker/24hr")) == 1
    assert len(fake_exchange.requests_to("/api/v3/klines")) == 1
    t["ms"] += 20_000  # the next slot
    mgr.run_cycle(cfgs[0].id)
    mgr.run_cycle(cfgs[1].id)
    assert len(fake_exchange.requests_to("/api/v3/ticker/24hr")) == 2


def test_daily_summary_in_batches_matches_per_user_totals(engine, clock):
    users = [make_user(i) for i in range(1, 6)]
    for u in users:
        for sym in ("BTC/USDT", "ETH/USDT"):
            cfg = make_pair(u, sym, "1000", is_trading=True)
            engine.run_cycle(cfg.id)
    day = dt.date(2023, 1, 1)
    with dbmod.write_tx():
        UserState.update(daily_pnl=D("-1.5"), daily_pnl_date=day).execute()
    assert engine.daily_summary(day, batch=2, pause=0) == 5
    assert engine.daily_summary(day, batch=2, pause=0) == 0  # idempotent
    import json

    from tradebot.models import Notification

    payloads = [json.loads(n.payload) for n in Notification.select().where(Notification.kind == "daily_summary")]
    assert len(payloads) == 5
    for p in payloads:
        assert [x["symbol"] for x in p["pairs"]] == ["BTC/USDT", "ETH/USDT"]
        assert D(str(p["total_pnl"])) == D("-3.0")


def test_candles_are_topped_up_with_the_new_ones_and_equal_a_full_fetch():
    from tradebot.exchange.market_data import MarketData

    bars = [[i * MINUTE, 10 + i, 11 + i, 9 + i, 10.5 + i, 1.0] for i in range(1000)]
    now = {"ms": 500 * MINUTE + 5_000}

    class Client:
        limits: list[int] = []

        def fetch_ohlcv(self, symbol, timeframe, limit):
            self.limits.append(limit)
            upto = [b for b in bars if b[0] <= now["ms"]]
            return upto[-limit:]

    client = Client()
    md = MarketData(lambda ex, net: client, now_ms=lambda: now["ms"])
    first = md.candles("binance", "live", "BTC/USDT", "1m", 100)
    now["ms"] += MINUTE
    second = md.candles("binance", "live", "BTC/USDT", "1m", 100)
    now["ms"] += 3 * MINUTE  # three candles closed since
    third = md.candles("binance", "live", "BTC/USDT", "1m", 100)
    assert client.limits == [101, 3, 5]
    fresh = MarketData(lambda ex, net: client, now_ms=lambda: now["ms"]).candles("binance", "live", "BTC/USDT", "1m", 100)
    assert third == fresh and len(third) == 100
    assert [c.ts for c in second] == [c.ts + MINUTE for c in first]
    assert third[-1].ts == now["ms"] - now["ms"] % MINUTE - MINUTE


def test_prefetch_refreshes_every_stream_so_cycles_find_the_candle_ready(database, fake_exchange):
    from tests.fixtures_exchange import fast_settings
    from tradebot.engine.manager import PREFETCH_LEAD, BotManager
    from tradebot.exchange.hub import ExchangeHub

    t = {"ms": fake_exchange.now_ms - fake_exchange.now_ms % MINUTE + 20_000}
    hub = ExchangeHub(fast_settings(fake_exchange.url), now_ms=lambda: t["ms"])
    mgr = BotManager(hub, lambda name: Hold(), vault=StubVault(), clock=lambda: t["ms"] / 1000)
    cfgs = [make_pair(make_user(i), sym, "1000", is_trading=True)
            for i, sym in enumerate(("BTC/USDT", "ETH/USDT", "BTC/USDT"), start=1)]
    for cfg in cfgs:
        mgr.run_cycle(cfg.id)
    t["ms"] += MINUTE - 20_000 + 200  # the next candle closed 0.2 s ago
    fake_exchange.set_time(t["ms"])
    fake_exchange.clear()
    assert mgr.runner.prefetch(t["ms"]) == 2  # two streams, however many pairs
    assert len(fake_exchange.requests_to("/api/v3/klines")) == 2
    # the slot's prices of both symbols in one request
    assert len(fake_exchange.requests_to("/api/v3/ticker/24hr")) == 1
    fake_exchange.clear()
    t["ms"] += int(PREFETCH_LEAD * 1000)
    for cfg in cfgs:
        mgr.run_cycle(cfg.id)
    assert fake_exchange.requests_to("/api/v3/klines") == []
    assert fake_exchange.requests_to("/api/v3/ticker/24hr") == []
    states = list(UserState.select())
    assert {s.last_candle_ts for s in states} == {t["ms"] - t["ms"] % MINUTE - MINUTE}
    # offsets leave the lead free for the prefetch
    assert all(PREFETCH_LEAD <= mgr._offset(i, 60) < 60 for i in range(1, 500))


def test_start_schedules_every_active_pair_on_its_slot(engine):
    user = make_user(1)
    cfgs = [make_pair(user, sym, "1000", exchange=ex, is_trading=True)
            for sym in ("BTC/USDT", "ETH/USDT", "SOL/USDT") for ex in ("binance", "bybit")]
    idle = make_pair(make_user(2), "BTC/USDT", "1000")
    assert UserState.select().count() == 0
    out = engine.start()
    assert out["resumed"] == 6
    # every trading pair's state row is created at start in bulk (not in its first cycle's transaction)
    engine._states.join(10)
    states = {s.config_id: s for s in UserState.select()}
    assert sorted(states) == sorted(c.id for c in cfgs)
    assert all(s.equity == s.cash == s.balance == D("1000") and s.mode == "paper" for s in states.values())
    assert sorted(engine.running_pairs()) == sorted(c.id for c in cfgs)
    assert not engine.is_running(idle.id)
    for c in cfgs:  # each on its own slot of the 60 s grid, after the prefetch lead
        interval, offset, due = engine.slots.slot_of(c.id)
        assert interval == 60 and offset == engine._offset(c.id, 60)
        assert due % 60 == pytest.approx(offset, abs=1e-6)
    assert engine.shutdown(1)


def test_batched_slot_prices_equal_single_tickers_on_both_exchanges(fake_exchange):
    from decimal import Decimal

    from tests.fixtures_exchange import fast_settings
    from tradebot.exchange.hub import ExchangeHub

    hub = ExchangeHub(fast_settings(fake_exchange.url))
    md = hub.market_data
    for ex, path in (("binance", "/api/v3/ticker/24hr"), ("bybit", "/v5/market/tickers")):
        fake_exchange.clear()
        assert md.prefetch_prices(ex, "paper", ["BTC/USDT", "ETH/USDT"], 60_000) == 2
        assert len(fake_exchange.requests_to(path)) == 1
        assert md.prefetch_prices(ex, "paper", ["BTC/USDT"], 60_000) == 0  # this slot's price is in
        cached = md.last_price(ex, "paper", "ETH/USDT", slot_ms=60_000)
        assert len(fake_exchange.requests_to(path)) == 1  # the cycles of the slot ask nothing
        client = hub.market_data._client_for(ex, hub.data_network(ex, "paper"))
        assert cached == Decimal(str(client.fetch_ticker("ETH/USDT")["last"]))
