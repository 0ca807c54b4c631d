"""Shared LLM calls, stored answers and budgets through the real cycle: 50 users on one symbol with an ensemble
of technical + an Anthropic provider + an OpenAI-compatible provider (fake servers over HTTP)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from types import SimpleNamespace

import pytest

from tests.fakes.llm import FakeAnthropic, FakeLLM
from tests.fixtures_engine import StubVault, make_pair, make_user
from tradebot import db as dbmod
from tradebot.config_schema import LLMConfig, LLMProviderConfig
from tradebot.engine.manager import BotManager
from tradebot.models import AIDecision, LLMAnswer, Notification, User, db

BUY = {"action": "buy", "confidence": 80, "reasoning": "breakout"}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.pg)])
def any_database(request, sqlite_url):
    """The same test on SQLite and on PostgreSQL."""
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("pg_url")
    dbmod.open_database(url)
    dbmod.migrate()
    yield
    dbmod.close_database()


@pytest.fixture
def servers():
    with FakeAnthropic() as claude, FakeLLM() as gpt:
        yield claude, gpt


def _settings(claude, gpt, members=("technical", "claude", "gpt"), min_agree=2, **llm_kw):
    providers = {
        "claude": LLMProviderConfig(name="claude", protocol="anthropic", base_url=claude.base_url, api_key="ak-1",
                                    model="claude-test", price_input_per_million=Decimal("3"),
                                    price_output_per_million=Decimal("15"), timeout_seconds=2, max_retries=0),
        "gpt": LLMProviderConfig(name="gpt", base_url=gpt.base_url, api_key="sk-1", model="gpt-test",
                                 price_input_per_million=Decimal("0.15"), price_output_per_million=Decimal("0.6"),
                                 timeout_seconds=2, max_retries=0),
    }
    return SimpleNamespace(
        llm=LLMConfig(providers=providers, **llm_kw),
        ensemble={"members": list(members), "min_agree": min_agree, "min_confidence": 60},
        trading=None,
        telegram=SimpleNamespace(admin_ids=[900]),
    )


def _manager(replay_hub, clock, settings):
    return BotManager(replay_hub, settings, vault=StubVault(), clock=clock, max_workers=2)


def _run_all(mgr, pairs):
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda c: mgr.run_cycle(c.id), pairs))


def test_fifty_users_share_one_call_per_provider_candle_and_state(any_database, replay_hub, clock, servers):
    claude, gpt = servers
    claude.answer_json(BUY)
    gpt.answer_json({**BUY, "confidence": 70})
    mgr = _manager(replay_hub, clock, _settings(claude, gpt))
    try:
        pairs = [make_pair(make_user(i), "BTC/USDT", "1000", decider="ensemble") for i in range(1, 51)]
        out = _run_all(mgr, pairs)
        assert sum(o["orders"] for o in out) == 50  # everyone bought on the shared answers
        assert (len(claude.requests), len(gpt.requests)) == (1, 1)
        answers = {a.provider: a for a in LLMAnswer.select()}
        assert set(answers) == {"llm:claude", "llm:gpt"}
        assert answers["llm:claude"].cost == Decimal("0.0006") and answers["llm:claude"].state == "flat"
        assert answers["llm:gpt"].input_tokens == 100 and answers["llm:gpt"].model == "gpt-test"
        for provider, answer in answers.items():
            rows = list(AIDecision.select().where(AIDecision.provider == provider))
            assert len(rows) == 50 and {r.llm_answer_id for r in rows} == {answer.id}
        main = list(AIDecision.select().where(AIDecision.provider == "ensemble"))
        assert len(main) == 50 and all(r.action == "buy" and r.executed for r in main)
        # next candle: every pair is long now -> one new call per provider (state long), shared again
        clock.advance(1)
        claude.answer_json({"action": "hold", "confidence": 50, "reasoning": "wait"})
        gpt.answer_json({"action": "hold", "confidence": 50, "reasoning": "wait"})
        _run_all(mgr, pairs)
        assert (len(claude.requests), len(gpt.requests)) == (2, 2)
        assert {a.state for a in LLMAnswer.select().where(LLMAnswer.id > max(x.id for x in answers.values()))} \
            == {"long"}
        # the per-user stats add up to the daily report
        stats = db.execute_sql(
            "SELECT provider, SUM(llm_calls), SUM(input_tokens), SUM(output_tokens) FROM ai_provider_stats_by_user "
            "WHERE substr(provider, 1, 4) = 'llm:' GROUP BY provider ORDER BY provider").fetchall()
        daily = db.execute_sql(
            "SELECT provider, calls, input_tokens, output_tokens, cost FROM llm_usage_daily ORDER BY provider"
        ).fetchall()
        assert [tuple(r) for r in stats] == [("llm:claude", 2, 200, 40), ("llm:gpt", 2, 200, 40)]
        assert [tuple(r[:4]) for r in daily] == [tuple(r) for r in stats]
        costs: dict[str, Decimal] = {}
        for provider, cost in db.execute_sql("SELECT provider, llm_cost FROM ai_provider_stats_by_user "
                                             "WHERE llm_calls > 0").fetchall():
            costs[provider] = costs.get(provider, Decimal(0)) + Decimal(cost)
        assert costs == {"llm:claude": Decimal("0.0012"), "llm:gpt": Decimal("0.000054")}
        assert {r[0]: Decimal(r[4]) for r in daily} == costs
        assert mgr.runner.decider_for.factory.answers.calls == {"llm:claude": 2, "llm:gpt": 2}
    finally:
        mgr.shutdown(2)


def test_a_failing_provider_is_shared_and_abstains(database, replay_hub, clock, servers):
    claude, gpt = servers
    claude.answer_status(500, '{"type":"error","error":{"type":"api_error"}}')
    gpt.answer_json(BUY)
    mgr = _manager(replay_hub, clock, _settings(claude, gpt, members=("claude", "gpt")))
    try:
        pairs = [make_pair(make_user(i), "BTC/USDT", "1000", decider="ensemble") for i in range(1, 6)]
        out = _run_all(mgr, pairs)
        assert sum(o["orders"] for o in out) == 0  # claude abstains: no 2 members agree
        assert len(claude.requests) == 1  # the failure is shared for the candle, not retried per pair
        (bad,) = LLMAnswer.select().where(LLMAnswer.provider == "llm:claude")
        assert not bad.ok and "HTTP 500" in bad.error
    finally:
        mgr.shutdown(2)


def test_user_budget_trips_and_the_ensemble_falls_back(any_database, replay_hub, clock, servers):
    claude, gpt = servers
    claude.answer_json(BUY)
    gpt.answer_json(BUY)
    # each call reports 120 tokens: the user's cap of 200 tokens allows the first candle's two calls only
    settings = _settings(claude, gpt, members=("technical", "claude", "gpt"), min_agree=2,
                         user_daily_token_budget=200)
    mgr = _manager(replay_hub, clock, settings)
    try:
        user = make_user(1)
        cfg = make_pair(user, "BTC/USDT", "1000", decider="ensemble")
        mgr.run_cycle(cfg.id)
        assert (len(claude.requests), len(gpt.requests)) == (1, 1)
        for _ in range(3):
            clock.advance(1)
            mgr.run_cycle(cfg.id)
        assert (len(claude.requests), len(gpt.requests)) == (1, 1)  # no call once the cap is reached
        last = AIDecision.select().where(AIDecision.provider == "ensemble").order_by(AIDecision.id.desc()).first()
        assert "left out: LLM budget reached" in last.reasoning
        skipped = AIDecision.select().where(AIDecision.provider == "llm:claude").order_by(AIDecision.id.desc()).first()
        assert "daily LLM budget is reached (240 of 200 tokens" in skipped.reasoning
        notes = list(Notification.select().where(Notification.kind == "llm_budget"))
        assert len(notes) == 1 and notes[0].user_id == user.id  # told once per day
        # another user still has budget, and the shared answer of this candle... is asked for them
        other = make_pair(make_user(2), "BTC/USDT", "1000", decider="ensemble")
        mgr.run_cycle(other.id)
        assert len(claude.requests) == 2
    finally:
        mgr.shutdown(2)


def test_instance_cost_budget_tells_admins_once(database, replay_hub, clock, servers):
    claude, gpt = servers
    claude.answer_json(BUY)
    gpt.answer_json(BUY)
    admin = User.create(telegram_id=900, username="admin")
    settings = _settings(claude, gpt, members=("claude",), min_agree=1, daily_cost_budget=Decimal("0.0006"))
    mgr = _manager(replay_hub, clock, settings)
    try:
        cfg = make_pair(make_user(1), "BTC/USDT", "1000", decider="llm:claude")
        mgr.run_cycle(cfg.id)  # 0.0006 spent: the cap is reached exactly
        clock.advance(1)
        mgr.run_cycle(cfg.id)
        clock.advance(1)
        mgr.run_cycle(cfg.id)
        assert len(claude.requests) == 1
        notes = list(Notification.select().where(Notification.kind == "llm_budget"))
        assert [n.user_id for n in notes] == [admin.id]
        last = AIDecision.select().where(AIDecision.provider == "llm:claude").order_by(AIDecision.id.desc()).first()
        assert last.action == "hold" and "bot's daily LLM budget is reached ($0.0006 of $0.0006" in last.reasoning
    finally:
        mgr.shutdown(2)


def test_a_provider_failing_for_an_hour_is_reported_to_admins_once(database, replay_hub, clock, servers):
    claude, gpt = servers
    claude.answer_status(529, '{"type":"error","error":{"type":"overloaded_error"}}')
    admin = User.create(telegram_id=900, username="admin")
    mgr = _manager(replay_hub, clock, _settings(claude, gpt, members=("claude",), min_agree=1))
    try:
        cfg = make_pair(make_user(1), "BTC/USDT", "1000", decider="llm:claude")

        def failing_notes():
            return list(Notification.select().where(Notification.kind == "llm_provider_failing"))

        for _ in range(60):  # 0 .. 59 minutes of failures: not yet an hour
            mgr.run_cycle(cfg.id)
            clock.advance(1)
        assert failing_notes() == []
        for _ in range(5):
            mgr.run_cycle(cfg.id)
            clock.advance(1)
        (note,) = failing_notes()
        assert note.user_id == admin.id and "llm:claude" in note.payload and "529" in note.payload
        # it answers once, then fails again: a new hour is needed before the next notice
        claude.clear()
        claude.answer_json(BUY)
        mgr.run_cycle(cfg.id)
        clock.advance(1)
        claude.clear()
        claude.answer_status(529, '{"type":"error","error":{"type":"overloaded_error"}}')
        for _ in range(30):
            mgr.run_cycle(cfg.id)
            clock.advance(1)
        assert len(failing_notes()) == 1
    finally:
        mgr.shutdown(2)
