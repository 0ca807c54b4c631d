"""LLM decider: one provider (OpenAI-compatible or Anthropic Messages, see llm_client.py) asked about the
market, its answer shared by every pair in the same situation (llm_shared.py).

Fail-safe: a malformed, refused, HTTP-error or timed-out answer (after the client's bounded retries) makes the
member abstain: a `hold` with confidence 0 whose reasoning says why; `response` keeps the raw text. Never a
trade on a half answer. The API key is sent only in its header and masked in anything stored or logged.

Vocabulary: buy | sell | short | close | hold. Checked against this pair's position state: buy when already
long, sell when not long, close when flat, short when shorts are not allowed or already short -> hold.
"""

from __future__ import annotations

import json
import logging
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from .base import Decision, DecisionContext
from .llm_client import CallFailed, ProviderSettings, complete
from .llm_prompt import SYSTEM_PROMPT, MarketInfo, market_prompt, position_state
from .llm_shared import Answer, MemberCall, SharedAnswers, prompt_hash

log = logging.getLogger(__name__)

ACTIONS = ("buy", "sell", "short", "close", "hold")

# A plain-text answer that reads as a refusal (reported as such, still a hold).
_REFUSAL = re.compile(r"\b(I can(?:no|[’'])t|I[’']m sorry|I am sorry|I am unable|I[’']m unable|as an AI)\b", re.I)

LLMSettings = ProviderSettings  # the name earlier releases used


def market_summary(ctx: DecisionContext, history: int = 24) -> str:
    return market_prompt(ctx, None, history)


class AnswerError(ValueError):
    """The model's answer is not a valid decision."""


def parse_answer(text: str) -> dict:
    """Validate the model's JSON strictly; returns the normalized fields."""
    body = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", body, re.S)
    if fenced:  # tolerate a markdown fence around an otherwise valid object
        body = fenced.group(1)
    try:
        obj = json.loads(body)
    except ValueError:
        raise AnswerError("answer is not JSON") from None
    if not isinstance(obj, dict):
        raise AnswerError("answer is not a JSON object")
    action = obj.get("action")
    if not isinstance(action, str) or action.strip().lower() not in ACTIONS:
        raise AnswerError(f"invalid action {action!r}")
    conf = obj.get("confidence")
    if isinstance(conf, bool) or not isinstance(conf, int | float) or not 0 <= conf <= 100:
        raise AnswerError(f"invalid confidence {conf!r}")
    reasoning = obj.get("reasoning")
    if not isinstance(reasoning, str) or not reasoning.strip():
        raise AnswerError("missing reasoning")
    out = {"action": action.strip().lower(), "confidence": int(round(conf)), "reasoning": reasoning.strip()}
    for key in ("stop_loss", "take_profit"):
        out[key] = _price(obj.get(key), key)
    return out


def _price(value: Any, key: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise AnswerError(f"invalid {key} {value!r}")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise AnswerError(f"invalid {key} {value!r}") from None
    if not d.is_finite() or d <= 0:
        raise AnswerError(f"invalid {key} {value!r}")
    return d



class LLMDecider:
    """One provider as a decider. `label` names it in decisions and stats: llm:<provider> for a named
    provider; the plain [llm] section keeps its earlier label llm:<model>."""

    wants_market = True  # decide(ctx, market): the engine passes exchange, context and the budget gate

    def __init__(self, settings: ProviderSettings | dict | None = None, answers: SharedAnswers | None = None,
                 label: str | None = None, max_prompt_chars: int = 6000, cache=None):
        self.settings = ProviderSettings.from_any(settings)
        self.name = label or f"llm:{self.settings.model}"
        self.answers = answers if answers is not None else SharedAnswers()
        self.max_prompt_chars = max_prompt_chars
        self.cache = cache  # backtest answer file (backtest/llm_cache.py), or None

    def decide(self, ctx: DecisionContext, market: MarketInfo | None = None) -> Decision:
        s = self.settings
        prompt = market_prompt(ctx, market, s.history, self.max_prompt_chars)
        key = (self.name, s.model, prompt_hash(SYSTEM_PROMPT, prompt))
        gate = getattr(market, "gate", None)
        meta = {"exchange": getattr(market, "exchange", ""), "symbol": ctx.symbol, "timeframe": ctx.timeframe,
                "candle_ts": ctx.candles[-1].ts if ctx.candles else None, "state": position_state(ctx)}

        def ask() -> tuple[Answer, bool]:
            skip = gate.skip_reason(self.name) if gate is not None else ""
            if skip:  # private: another user's pair may still ask
                return Answer(self.name, s.model, key[2], False, error=skip, called=False, skipped=True,
                              meta=meta), False
            answer = self._ask(prompt, key[2], meta)
            if gate is not None:
                gate.record(answer)
            return answer, True

        answer, asked = self.answers.get(key, ask)
        call = MemberCall(answer, paid=asked and answer.called, skipped=answer.error if answer.skipped else "")
        return self._decision(answer, ctx, prompt, call)

    def _ask(self, prompt: str, phash: str, meta: dict) -> Answer:
        s = self.settings
        if self.cache is not None:
            hit = self.cache.get(self.name, s.model, phash)
            if hit is not None:
                return hit
        try:
            res = complete(s, SYSTEM_PROMPT, prompt)
        except CallFailed as e:
            why = s.scrub(f"LLM unavailable: {e}")
            log.warning("%s: %s", self.name, why)
            answer = Answer(self.name, s.model, phash, False, error=why, raw=s.scrub(e.raw),
                            latency_ms=e.latency_ms, meta=meta)
        else:
            answer = self._parse(res, phash, meta)
        if self.cache is not None:
            self.cache.put(answer)
        return answer

    def _parse(self, res, phash: str, meta: dict) -> Answer:
        s = self.settings
        text = res.text
        common = dict(input_tokens=res.input_tokens, output_tokens=res.output_tokens,
                      cost=s.cost(res.input_tokens, res.output_tokens), latency_ms=res.latency_ms,
                      raw=res.raw, meta=meta)
        if res.refusal:
            why = s.scrub(f"LLM refused: {res.refusal[:200]}")
            log.warning("%s: %s", self.name, why)
            return Answer(self.name, s.model, phash, False, error=why, **common)
        try:
            ans = parse_answer(text)
        except AnswerError as e:
            if _REFUSAL.search(text[:300]):
                why = f"LLM refused: {text.strip()[:200]}"
            else:
                why = f"LLM answer rejected ({e})"
            why = s.scrub(why)
            log.warning("%s: %s", self.name, why)
            return Answer(self.name, s.model, phash, False, error=why, **common)
        return Answer(self.name, s.model, phash, True, ans["action"], ans["confidence"], s.scrub(ans["reasoning"]),
                      ans["stop_loss"], ans["take_profit"], **common)

    def _decision(self, a: Answer, ctx: DecisionContext, prompt: str, call: MemberCall) -> Decision:
        response = self.settings.scrub(_content(a.raw) or a.raw)
        if not a.ok:
            return Decision("hold", 0, a.error, self.name, inputs=prompt, response=response, call=call)
        action, reasoning = a.action, a.reasoning
        state = position_state(ctx)
        allow_short = getattr(ctx, "allow_short", False)
        why = None
        if action == "buy" and state == "long":
            why = "already holding"
        elif action == "sell" and state != "long":
            why = "nothing to sell"
        elif action == "close" and state == "flat":
            why = "nothing to close"
        elif action == "short" and not allow_short:
            why = "shorts not allowed for this pair"
        elif action == "short" and state == "short":
            why = "already short"
        if why:
            reasoning = f"{action} ignored ({why}): {reasoning}"
            action = "hold"
        elif action == "close" and state == "long":
            action = "sell"  # closing a long is a sell, on spot and futures alike
        return Decision(action, a.confidence, reasoning, self.name, inputs=prompt, response=response,
                        stop_loss=a.stop_loss, take_profit=a.take_profit, call=call)


def _content(raw: str) -> str:
    """The model's text inside a provider's response body (what `response` showed before: the answer)."""
    try:
        obj = json.loads(raw)
    except (ValueError, TypeError):
        return ""
    if not isinstance(obj, dict):
        return ""
    if isinstance(obj.get("content"), list):
        return "".join(b.get("text", "") for b in obj["content"] if isinstance(b, dict))
    try:
        msg = obj["choices"][0]["message"]
        return msg.get("content") or msg.get("refusal") or ""
    except (KeyError, IndexError, TypeError):
        return ""

