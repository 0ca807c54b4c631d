"""Named LLM providers over real HTTP: the Anthropic Messages client and the OpenAI-compatible one, retries
(429 retry-after, 5xx, 529 overloaded, timeouts), abstention, tokens and cost, the short/close vocabulary,
weighted ensembles and the shared single-flight answers."""

import threading
from dataclasses import replace
from decimal import Decimal

import pytest

from tests.fakes.llm import FakeAnthropic, FakeLLM
from tests.test_strategy_deciders import _ctx, _snap_ctx
from tests.test_strategy_indicators import _load
from tradebot.strategy.base import Decision, DecisionContext, PositionView
from tradebot.strategy.ensemble import EnsembleDecider
from tradebot.strategy.factory import DeciderFactory
from tradebot.strategy.llm import LLMDecider
from tradebot.strategy.llm_client import ProviderSettings
from tradebot.strategy.llm_shared import MemberCall, SharedAnswers

KEY = "sk-ant-SECRET-456"
BUY = {"action": "buy", "confidence": 81, "reasoning": "trend up"}


@pytest.fixture
def claude():
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def gpt():
    with FakeLLM() as fake:
        yield fake


def _claude(fake, **kw):
    s = ProviderSettings(name="claude", protocol="anthropic", base_url=fake.base_url, api_key=KEY,
                         model="claude-x", price_input_per_million=Decimal("3"),
                         price_output_per_million=Decimal("15"), timeout_seconds=0.5, **kw)
    return LLMDecider(s, label="llm:claude")


def test_anthropic_messages_request_and_answer(claude):
    claude.answer_json({**BUY, "stop_loss": 40000})
    d = _claude(claude).decide(_snap_ctx())
    assert (d.action, d.confidence, d.reasoning, d.provider) == ("buy", 81, "trend up", "llm:claude")
    assert d.stop_loss == Decimal("40000")
    (req,) = claude.requests
    assert req["path"] == "/v1/messages"
    assert req["headers"]["x-api-key"] == KEY and req["headers"]["anthropic-version"] == "2023-06-01"
    body = req["json"]
    assert body["model"] == "claude-x" and body["max_tokens"] == 300 and "JSON" in body["system"]
    assert body["messages"][0]["role"] == "user" and "Position: none" in body["messages"][0]["content"]
    a = d.call.answer
    assert (a.input_tokens, a.output_tokens) == (100, 20)
    assert a.cost == Decimal("0.0006")  # 100 x 3 / 1e6 + 20 x 15 / 1e6, exact
    assert isinstance(d.call, MemberCall) and d.call.paid and a.latency_ms >= 0
    assert '"action": "buy"' in d.response and KEY not in d.response + a.raw


@pytest.mark.parametrize("script,why,calls", [
    (lambda f: f.answer_text("{not json"), "answer rejected", 1),
    (lambda f: f.answer_text('{"action": "yolo", "confidence": 90, "reasoning": "x"}'), "invalid action", 1),
    (lambda f: f.answer_refusal("no"), "refused", 1),
    (lambda f: f.answer_text("I'm sorry, I can't give trading advice."), "refused", 1),
    (lambda f: f.answer_overloaded(0), "HTTP 529 overloaded_error", 3),  # 1 + 2 retries, then abstain
    (lambda f: f.answer_status(400, '{"type":"error","error":{"type":"invalid_request_error"}}'), "HTTP 400", 1),
    (lambda f: f.answer_rate_limited(60), "retry-after 60s is too long", 1),
    (lambda f: f.answer_delay(1.2), "timeout", 3),
])
def test_anthropic_failures_abstain(claude, script, why, calls):
    script(claude)
    d = _claude(claude).decide(_snap_ctx())
    assert (d.action, d.confidence) == ("hold", 0) and why in d.reasoning
    assert len(claude.requests) == calls
    assert KEY not in d.reasoning + d.response


def test_anthropic_checks_its_headers(claude):
    d = LLMDecider(ProviderSettings(protocol="anthropic", base_url=claude.base_url, api_key="", model="m",
                                    max_retries=0)).decide(_snap_ctx())
    assert d.action == "hold" and "HTTP 401 authentication_error" in d.reasoning


@pytest.mark.parametrize("fake_cls,first", [
    (FakeAnthropic, lambda f: f.answer_rate_limited(0.2)),
    (FakeAnthropic, lambda f: f.answer_overloaded(0)),
    (FakeLLM, lambda f: f.answer_status(429, '{"error": {"message": "rate"}}', retry_after=0.2)),
    (FakeLLM, lambda f: f.answer_status(503)),
])
def test_transient_errors_are_retried_then_answer(fake_cls, first):
    with fake_cls() as fake:
        first(fake)
        fake.answer_json(BUY)
        s = ProviderSettings(protocol=fake.protocol, base_url=fake.base_url, api_key=KEY, model="m")
        d = LLMDecider(s).decide(_snap_ctx())
        assert d.action == "buy" and len(fake.requests) == 2


def test_no_retries_when_configured_zero(gpt):
    gpt.answer_status(503)
    gpt.answer_json(BUY)
    d = LLMDecider(ProviderSettings(base_url=gpt.base_url, api_key=KEY, model="m", max_retries=0)).decide(_snap_ctx())
    assert d.action == "hold" and "HTTP 503" in d.reasoning and len(gpt.requests) == 1


def test_openai_tokens_and_cost(gpt):
    gpt.usage = (1234, 56)
    gpt.answer_json(BUY)
    s = ProviderSettings(name="deepseek", base_url=gpt.base_url, api_key=KEY, model="deepseek-chat",
                         price_input_per_million=Decimal("0.27"), price_output_per_million=Decimal("1.10"))
    d = LLMDecider(s, label="llm:deepseek").decide(_snap_ctx())
    a = d.call.answer
    assert (a.input_tokens, a.output_tokens, a.cost) == (1234, 56, Decimal("0.00039478"))


# --- vocabulary: short / close ---

def _short_ctx(side="long", allow_short=False):
    candles = _load("binance-spot-BTCUSDT-1h-2022-01.csv.gz", 60)
    last = Decimal(str(candles[-1].close))
    pos = PositionView(Decimal("0.5"), last)
    if side == "short":
        try:
            pos = PositionView(Decimal("0.5"), last, side="short")
        except TypeError:
            pytest.skip("PositionView.side comes with the futures branch")
    ctx = DecisionContext("BTC/USDT", "1h", candles, None, pos, Decimal("1000"), Decimal("1000"), last)
    if allow_short:
        try:
            ctx = replace(ctx, allow_short=True)
        except TypeError:
            pytest.skip("DecisionContext.allow_short comes with the futures branch")
    return ctx


@pytest.mark.parametrize("answer,holding,expect", [
    ("short", False, "hold"),  # spot: shorts not allowed
    ("close", False, "hold"),  # nothing to close
    ("close", True, "sell"),  # closing a long is a sell
    ("sell", True, "sell"),
])
def test_short_and_close_are_validated(gpt, answer, holding, expect):
    gpt.answer_json({"action": answer, "confidence": 70, "reasoning": "r"})
    candles = _load("binance-spot-BTCUSDT-1h-2022-01.csv.gz", 60)
    d = LLMDecider(ProviderSettings(base_url=gpt.base_url, api_key=KEY, model="m")).decide(_ctx(candles, holding))
    assert d.action == expect
    if expect == "hold":
        assert "ignored" in d.reasoning


def test_short_allowed_for_a_futures_pair(gpt):
    gpt.answer_json({"action": "short", "confidence": 70, "reasoning": "down"})
    ctx = _short_ctx("long", allow_short=True)
    d = LLMDecider(ProviderSettings(base_url=gpt.base_url, api_key=KEY, model="m")).decide(ctx)
    assert d.action == "short"
    assert "Shorts allowed: yes" in gpt.requests[0]["json"]["messages"][1]["content"]


# --- ensemble with weights ---

class Voter:
    def __init__(self, name, action, conf, skipped=""):
        self.name, self.action, self.conf, self.skipped = name, action, conf, skipped

    def decide(self, ctx):
        call = MemberCall(None, False, self.skipped) if self.skipped else None
        return Decision(self.action, self.conf, f"{self.name} says", self.name, call=call)


def test_weighted_ensemble_agreement_and_disagreement():
    ctx = _snap_ctx(holding=True)
    members = [Voter("technical", "sell", 70), Voter("llm:claude", "hold", 90), Voter("llm:gpt", "close", 80)]
    d = EnsembleDecider(members, min_agree=2, min_confidence=60).decide(ctx)
    assert d.action == "sell" and d.confidence == 75  # close while long counts as sell
    # disagreement: 1 buy (weight 3) vs 2 sells (weight 1 each) -> the heavier camp wins, but needs min_agree
    ctx = _snap_ctx()
    members = [Voter("technical", "sell", 70), Voter("llm:claude", "buy", 90), Voter("llm:gpt", "sell", 80)]
    e = EnsembleDecider(members, min_agree=1, min_confidence=60, weights={"llm:claude": 3})
    assert e.decide(ctx).action == "buy"
    e = EnsembleDecider(members, min_agree=2, min_confidence=60, weights={"llm:claude": 3})
    assert e.decide(ctx).action == "hold"  # buy wins the weight but has one member
    e = EnsembleDecider(members, min_agree=2, min_confidence=60, weights={"llm:claude": 2})
    assert e.decide(ctx).action == "hold"  # 2 vs 2: a tie holds
    e = EnsembleDecider(members, min_agree=2, min_confidence=60, weights={"llm:claude": 1.5})
    d = e.decide(ctx)
    assert d.action == "sell" and d.confidence == 75
    # a zero weight mutes a member
    e = EnsembleDecider(members, min_agree=1, min_confidence=60, weights={"technical": 0, "llm:gpt": 0})
    assert e.decide(ctx).action == "buy"


def test_ensemble_failing_member_abstains_but_budget_skipped_member_is_left_out():
    ctx = _snap_ctx()
    failing = [Voter("technical", "buy", 70), Voter("llm:claude", "hold", 0)]
    assert EnsembleDecider(failing, min_agree=2).decide(ctx).action == "hold"
    skipped = [Voter("technical", "buy", 70), Voter("llm:claude", "hold", 0, skipped="daily budget reached")]
    d = EnsembleDecider(skipped, min_agree=2).decide(ctx)
    assert d.action == "buy" and "left out: LLM budget reached" in d.reasoning


# --- factory and sharing ---

def test_factory_names_and_shared_answers(gpt, claude):
    providers = {
        "llm": ProviderSettings(base_url=gpt.base_url, api_key=KEY, model="legacy"),
        "claude": ProviderSettings(protocol="anthropic", base_url=claude.base_url, api_key=KEY, model="c"),
        "gpt": ProviderSettings(base_url=gpt.base_url, api_key=KEY, model="g"),
    }
    llm_cfg = type("L", (), {"providers": providers, "max_prompt_chars": 6000})()
    f = DeciderFactory(llm_cfg, {"members": ["technical", "claude", "llm:gpt"], "min_agree": 2,
                                 "weights": {"claude": 2}})
    assert f.build("llm").name == "llm:legacy"
    assert f.build("llm:claude").name == "llm:claude" and f.build("claude").name == "llm:claude"
    e = f.build("ensemble")
    assert [m.name for m in e.members] == ["technical", "llm:claude", "llm:gpt"] and e.weights == [1, 2, 1]
    with pytest.raises(ValueError, match="unknown decider"):
        f.build("grok")
    claude.answer_json(BUY)
    gpt.answer_json(BUY)
    ctx = _snap_ctx()
    e.decide(ctx)
    f.build("llm:claude").decide(ctx)  # another decider of the same provider: same prompt, shared answer
    assert len(claude.requests) == 1 and len(gpt.requests) == 1


def test_single_flight_many_threads_one_call(gpt):
    gpt.answer_delay(0.3, BUY)
    answers = SharedAnswers()
    dec = LLMDecider(ProviderSettings(base_url=gpt.base_url, api_key=KEY, model="m"), answers)
    ctx = _snap_ctx()
    out = []
    threads = [threading.Thread(target=lambda: out.append(dec.decide(ctx))) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(gpt.requests) == 1 and answers.calls == {"llm:m": 1}
    assert [d.action for d in out] == ["buy"] * 20 and sum(d.call.paid for d in out) == 1
    # another position state is another question
    dec.decide(_snap_ctx(holding=True))
    assert len(gpt.requests) == 2


def test_prompt_holds_no_per_pair_money(gpt):
    gpt.answer_json(BUY)
    candles = _load("binance-spot-BTCUSDT-1h-2022-01.csv.gz", 60)
    ctx = DecisionContext("BTC/USDT", "1h", candles, None, None, Decimal("1234.5"), Decimal("9876.5"),
                          Decimal(str(candles[-1].close)))
    dec = LLMDecider(ProviderSettings(base_url=gpt.base_url, api_key=KEY, model="m"))
    dec.decide(ctx)
    prompt = gpt.requests[0]["json"]["messages"][1]["content"]
    assert "1234.5" not in prompt and "9876.5" not in prompt and "Cash" not in prompt
    # another pair of the same market: other budget, a ticker read a few seconds later -> the same call
    other = DecisionContext("BTC/USDT", "1h", candles, None, None, Decimal("50"), Decimal("50"),
                            Decimal(str(candles[-1].close)) + 7)
    assert dec.decide(other).action == "buy" and len(gpt.requests) == 1
