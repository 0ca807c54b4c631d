"""Technical, LLM (against a fake OpenAI-compatible server) and ensemble deciders."""

import logging
from decimal import Decimal

import pytest

from tests.fakes.llm import FakeLLM
from tests.test_strategy_indicators import _load
from tradebot.strategy import build_decider
from tradebot.strategy.base import Decision, DecisionContext, PositionView
from tradebot.strategy.ensemble import EnsembleDecider
from tradebot.strategy.indicators import IndicatorSet
from tradebot.strategy.llm import LLMDecider, LLMSettings, parse_answer
from tradebot.strategy.technical import TechnicalDecider

KEY = "sk-test-SECRET-123"


def _ctx(candles, holding=False, indicators=None):
    last = Decimal(str(candles[-1].close))
    pos = PositionView(Decimal("0.5"), last) if holding else None
    return DecisionContext("BTC/USDT", "1h", candles, indicators, pos, Decimal("1000"), Decimal("1000"), last)


# --- technical ---

def test_technical_long_only_and_fast_path_agrees():
    candles = _load("binance-spot-BTCUSDT-1h-2024-01-01_2024-06-10.csv.gz")
    dec, iset = TechnicalDecider(), IndicatorSet()
    holding, actions = False, []
    for i, c in enumerate(candles):
        iset.update(c.ts, c.high, c.low, c.close)
        quick = dec.quick_action(iset, holding)
        if i % 50 == 0 or quick != "hold":
            d = dec.decide(_ctx(candles[: i + 1], holding, iset.snapshot()))
            assert d.action == quick and 0 <= d.confidence <= 100 and d.provider == "technical"
            if d.action != "hold":
                assert "EMA12" in d.reasoning and "RSI" in d.reasoning and "MACD hist" in d.reasoning
        assert quick != ("buy" if holding else "sell")  # buy only when flat, sell only when holding
        if quick != "hold":
            actions.append(quick)
            holding = quick == "buy"
    assert actions.count("buy") >= 10 and actions.count("sell") >= 10


def test_technical_holds_while_warming_up():
    candles = _load("binance-spot-BTCUSDT-1h-2022-01.csv.gz", 20)
    iset = IndicatorSet()
    iset.feed(candles)
    d = TechnicalDecider().decide(_ctx(candles, indicators=iset.snapshot()))
    assert (d.action, d.confidence) == ("hold", 0)


# --- LLM ---

@pytest.fixture
def llm():
    with FakeLLM() as fake:
        yield fake


def _llm_decider(fake, **kw):
    return LLMDecider(LLMSettings(base_url=fake.base_url, api_key=KEY, model="fake-1", **kw))


def _snap_ctx(holding=False):
    candles = _load("binance-spot-BTCUSDT-1h-2022-01.csv.gz", 100)
    iset = IndicatorSet()
    iset.feed(candles)
    return _ctx(candles, holding, iset.snapshot())


def test_llm_valid_json_becomes_decision(llm, caplog):
    llm.answer_json({"action": "buy", "confidence": 77, "reasoning": "breakout", "stop_loss": 45000,
                     "take_profit": "52000.5"})
    with caplog.at_level(logging.DEBUG):
        d = _llm_decider(llm).decide(_snap_ctx())
    assert (d.action, d.confidence, d.reasoning, d.provider) == ("buy", 77, "breakout", "llm:fake-1")
    assert d.stop_loss == Decimal("45000") and d.take_profit == Decimal("52000.5")
    assert '"action": "buy"' in d.response and "Last price" in d.inputs and "RSI=" in d.inputs
    (req,) = llm.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    assert req["json"]["model"] == "fake-1" and req["json"]["response_format"] == {"type": "json_object"}
    assert "Position: none" in req["json"]["messages"][1]["content"]
    assert KEY not in caplog.text and KEY not in repr(LLMSettings(api_key=KEY))


@pytest.mark.parametrize("script,why", [
    (lambda f: f.answer_text("Sure! I think you should buy."), "rejected"),
    (lambda f: f.answer_text('{"action": "moon", "confidence": 90, "reasoning": "x"}'), "invalid action"),
    (lambda f: f.answer_text('{"action": "buy", "confidence": 190, "reasoning": "x"}'), "invalid confidence"),
    (lambda f: f.answer_text("I can't help with trading advice."), "refused"),
    (lambda f: f.answer_refusal("I'm unable to assist with that."), "refused"),
    (lambda f: f.answer_status(500), "HTTP 500"),
    (lambda f: f.answer_delay(1.5), "timeout"),
])
def test_llm_bad_answers_hold(llm, script, why, caplog):
    script(llm)
    with caplog.at_level(logging.DEBUG):
        d = _llm_decider(llm, timeout_seconds=0.3).decide(_snap_ctx())
    assert d.action == "hold" and d.confidence == 0 and why in d.reasoning
    assert KEY not in caplog.text + d.reasoning + d.response + d.inputs
    if why in ("rejected", "refused") and "I'm unable" not in d.reasoning:
        assert d.response  # raw text kept


def test_llm_retries_without_json_mode_on_400(llm):
    llm.answer_status(400, '{"error": {"message": "response_format not supported"}}')
    llm.answer_json({"action": "sell", "confidence": 65, "reasoning": "overbought"})
    d = _llm_decider(llm).decide(_snap_ctx(holding=True))
    assert d.action == "sell" and len(llm.requests) == 2
    assert "response_format" not in llm.requests[1]["json"]


def test_llm_long_only_guard(llm):
    llm.answer_json({"action": "buy", "confidence": 80, "reasoning": "more"})
    d = _llm_decider(llm).decide(_snap_ctx(holding=True))
    assert d.action == "hold" and "already holding" in d.reasoning


def test_parse_answer_accepts_fenced_json_only_when_valid():
    assert parse_answer('```json\n{"action":"HOLD","confidence":50.4,"reasoning":"wait"}\n```')["action"] == "hold"
    for bad in ('[]', '{"action":"buy","confidence":true,"reasoning":"x"}',
                '{"action":"buy","confidence":5,"reasoning":""}',
                '{"action":"buy","confidence":5,"reasoning":"x","stop_loss":-1}'):
        with pytest.raises(ValueError):
            parse_answer(bad)


# --- ensemble ---

class Scripted:
    def __init__(self, name, action, conf):
        self.name, self.action, self.conf = name, action, conf

    def decide(self, ctx):
        return Decision(self.action, self.conf, f"{self.name} says {self.action}", self.name)


def test_ensemble_two_of_three():
    ctx = _snap_ctx()
    e = EnsembleDecider([Scripted("a", "buy", 70), Scripted("b", "buy", 90), Scripted("c", "sell", 99)])
    d = e.decide(ctx)
    assert (d.action, d.confidence, d.provider) == ("buy", 80, "ensemble") and len(d.parts) == 3
    assert "2/3 agree buy" in d.reasoning
    # one of the two buyers below min_confidence: no agreement
    e = EnsembleDecider([Scripted("a", "buy", 59), Scripted("b", "buy", 90), Scripted("c", "hold", 99)])
    assert e.decide(ctx).action == "hold"
    e = EnsembleDecider([Scripted("a", "sell", 60), Scripted("b", "hold", 90), Scripted("c", "sell", 61)])
    assert (e.decide(ctx).action, e.decide(ctx).confidence) == ("sell", 60)


def test_ensemble_with_llm_member(llm):
    llm.answer_json({"action": "buy", "confidence": 90, "reasoning": "llm likes it", "take_profit": 99999})
    e = EnsembleDecider([Scripted("t", "buy", 70), _llm_decider(llm), Scripted("x", "hold", 50)])
    d = e.decide(_snap_ctx())
    assert d.action == "buy" and d.confidence == 80 and d.take_profit == Decimal("99999")


def test_build_decider():
    assert build_decider("technical").name == "technical"
    assert build_decider("llm", {"model": "deepseek-chat", "api_key": KEY}).name == "llm:deepseek-chat"
    e = build_decider("ensemble", LLMSettings(api_key=KEY),
                      {"members": ["technical", "llm:Qwen2", "llm"], "min_agree": 2, "min_confidence": 70})
    assert [m.name for m in e.members] == ["technical", "llm:Qwen2", "llm:gpt-4o-mini"]
    assert (e.min_agree, e.min_confidence) == (2, 70)
    with pytest.raises(ValueError):
        build_decider("magic")


def test_llm_key_echoed_by_the_model_is_masked_but_answer_parsed(llm):
    llm.answer_json({"action": "buy", "confidence": 70, "reasoning": f"your key is {KEY}", "take_profit": 60000})
    d = _llm_decider(llm).decide(_snap_ctx())
    assert d.action == "buy" and d.take_profit == Decimal("60000")
    assert KEY not in d.reasoning + d.response and "***" in d.response
