"""LLM and ensemble deciders through the real cycle, against the fake OpenAI-compatible server."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.fakes.llm import FakeLLM
from tests.fixtures_engine import MINUTE, StubVault, make_pair, make_user
from tradebot.engine.manager import BotManager
from tradebot.models import AIDecision, Order, Trade, db


@pytest.fixture
def llm_server():
    with FakeLLM() as fake:
        yield fake


@pytest.fixture
def llm_engine(database, replay_hub, clock, llm_server):
    settings = SimpleNamespace(
        llm={
            "base_url": llm_server.base_url,
            "api_key": "sk-test-123",
            "model": "fake",
            "timeout_seconds": 0.5,
            "max_retries": 0,  # one scripted answer per cycle (retries: test_strategy_llm_providers.py)
        },
        ensemble={"members": ["llm", "llm:second"], "min_agree": 2, "min_confidence": 60},
        trading=None,
    )
    mgr = BotManager(replay_hub, settings, vault=StubVault(), clock=clock, max_workers=2)
    yield mgr
    mgr.shutdown(2)


def step(mgr, clock, cfg):
    out = mgr.run_cycle(cfg.id)
    clock.advance(1)
    return out


def test_llm_decisions_through_the_cycle_are_recorded_and_scored(llm_engine, clock, llm_server):
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="llm")
    # 1 valid buy -> executed
    llm_server.answer_json({"action": "buy", "confidence": 80, "reasoning": "breakout"})
    assert step(llm_engine, clock, cfg)["orders"] == 1
    # 2 garbage, 3 refusal, 4 timeout -> hold, nothing sent
    llm_server._script.clear()
    llm_server.answer_text("the market is a mystery {not json")
    llm_server.answer_refusal()
    llm_server.answer_delay(2.0, {"action": "sell", "confidence": 99, "reasoning": "too late"})
    llm_server.answer_json({"action": "sell", "confidence": 75, "reasoning": "take it"})
    for _ in range(3):
        out = step(llm_engine, clock, cfg)
        assert out["orders"] == 0 and out["exit"] is None
    # 5 valid sell -> closes the position; the buy decision gets its outcome
    assert step(llm_engine, clock, cfg)["orders"] == 1
    rows = list(AIDecision.select().order_by(AIDecision.id))
    assert [r.action for r in rows] == ["buy", "hold", "hold", "hold", "sell"]
    assert all(r.provider == "llm:fake" for r in rows)
    assert (
        "rejected" in rows[1].reasoning
        and "refused" in rows[2].reasoning
        and "unavailable" in rows[3].reasoning
    )
    assert rows[0].inputs and rows[1].response.startswith("the market")
    assert [r.executed for r in rows] == [True, False, False, False, True]
    sell = Trade.get(Trade.side == "sell")
    assert rows[0].pnl == sell.pnl and rows[0].profitable == (sell.pnl > 0)
    assert Order.get(Order.side == "buy").decision_id == rows[0].id
    # the admin view shows the real accuracy
    cur = db.execute_sql(
        "SELECT provider, decisions, executed, closed, profitable FROM ai_provider_stats_by_user"
    )
    stats = {r[0]: r[1:] for r in cur.fetchall()}
    assert stats["llm:fake"] == (5, 2, 1, 1 if sell.pnl > 0 else 0)
    assert "sk-test-123" not in "".join((r.inputs or "") + (r.response or "") for r in rows)


def test_ensemble_acts_only_when_members_agree(llm_engine, clock, llm_server):
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="ensemble")
    # members ask in order: llm, llm:second
    llm_server.answer_json({"action": "buy", "confidence": 80, "reasoning": "a"})
    llm_server.answer_text("garbage")  # second member fails -> hold -> no agreement
    assert step(llm_engine, clock, cfg)["orders"] == 0
    llm_server._script.clear()
    llm_server.answer_json({"action": "buy", "confidence": 70, "reasoning": "both"})
    assert step(llm_engine, clock, cfg)["orders"] == 1
    ens = list(AIDecision.select().where(AIDecision.provider == "ensemble").order_by(AIDecision.id))
    assert [e.action for e in ens] == ["hold", "buy"] and ens[1].executed and not ens[0].executed
    parts = list(AIDecision.select().where(AIDecision.provider != "ensemble").order_by(AIDecision.id))
    assert [(p.provider, p.action) for p in parts] == [
        ("llm:fake", "buy"),
        ("llm:second", "hold"),
        ("llm:fake", "buy"),
        ("llm:second", "buy"),
    ]
    assert [p.executed for p in parts] == [False, False, True, True]
    assert Trade.select().count() == 1 and MINUTE
