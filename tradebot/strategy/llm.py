"""LLM decider over any OpenAI-compatible chat-completions API (OpenAI, DeepSeek, local servers).

Fail-safe: any malformed, refused, HTTP-error or timed-out answer becomes a
`hold` whose reasoning says why; `response` keeps the raw text. The API key is
sent only in the Authorization header and is scrubbed from anything stored.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from .base import Decision, DecisionContext

log = logging.getLogger(__name__)

ACTIONS = ("buy", "sell", "hold")
# A plain-text answer that reads as a refusal (reported as such, still a hold).
_REFUSAL = re.compile(r"\b(I can(?:no|[’'])t|I[’']m sorry|I am sorry|I am unable|I[’']m unable|as an AI)\b", re.I)

SYSTEM_PROMPT = (
    "You are the decision module of a long-only spot crypto trading bot. "
    "Given the market summary, position and budget, answer with ONE JSON object and nothing else: "
    '{"action": "buy" | "sell" | "hold", "confidence": integer 0-100, "reasoning": short text, '
    '"stop_loss": optional absolute price or null, "take_profit": optional absolute price or null}. '
    "Only buy when there is no position; only sell when there is one."
)


@dataclass(frozen=True)
class LLMSettings:
    base_url: str = "https://api.openai.com/v1"
    api_key: str = ""
    model: str = "gpt-4o-mini"
    timeout_seconds: float = 20.0
    temperature: float = 0.2
    max_tokens: int = 300
    json_mode: bool = True  # send response_format=json_object (retried without on HTTP 400)
    history: int = 24  # candles summarised in the prompt

    def __repr__(self) -> str:  # never print the key
        return f"LLMSettings(base_url={self.base_url!r}, model={self.model!r}, api_key=***)"

    @classmethod
    def from_any(cls, value: Any) -> LLMSettings:
        """Accept an LLMSettings, a mapping or any object with those attributes."""
        if isinstance(value, cls):
            return value
        if value is None:
            return cls()
        get = value.get if isinstance(value, dict) else (lambda k, d: getattr(value, k, d))
        kw = {f: get(f, None) for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in kw.items() if v is not None})


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


def market_summary(ctx: DecisionContext, history: int = 24) -> str:
    """The user message: last price, recent OHLC, indicators, position and budget."""
    lines = [f"Symbol: {ctx.symbol}, timeframe {ctx.timeframe}", f"Last price: {ctx.last_price}"]
    recent = list(ctx.candles[-history:])
    if recent:
        hi = max(c.high for c in recent)
        lo = min(c.low for c in recent)
        first, last = recent[0], recent[-1]
        chg = (last.close / first.open - 1.0) * 100 if first.open else 0.0
        lines.append(
            f"Last {len(recent)} candles: open {first.open:.8g}, high {hi:.8g}, low {lo:.8g}, "
            f"close {last.close:.8g}, change {chg:+.2f}%"
        )
        lines.append("Recent closes: " + ", ".join(f"{c.close:.8g}" for c in recent[-10:]))
    ind = ctx.indicators
    if ind is not None:
        describe = getattr(ind, "describe", None)
        lines.append("Indicators: " + (describe() if describe else str(ind)))
    if ctx.position is not None:
        p = ctx.position
        pnl = (ctx.last_price / p.entry_price - 1) * 100 if p.entry_price else Decimal(0)
        lines.append(f"Position: holding {p.amount} at entry {p.entry_price} (unrealized {pnl:+.2f}%)")
    else:
        lines.append("Position: none (flat)")
    lines.append(f"Cash: {ctx.cash}, equity: {ctx.equity}")
    return "\n".join(lines)


class LLMDecider:
    def __init__(self, settings: LLMSettings | dict | None = None):
        self.settings = LLMSettings.from_any(settings)
        self.name = f"llm:{self.settings.model}"

    def decide(self, ctx: DecisionContext) -> Decision:
        prompt = market_summary(ctx, self.settings.history)
        try:
            raw = self._complete(prompt)
        except _CallFailed as e:
            return self._hold(f"LLM unavailable: {e}", prompt, e.raw)
        text, refusal = raw.text, raw.refusal  # parsed as received; scrubbed where stored
        if refusal:
            return self._hold(f"LLM refused: {refusal[:200]}", prompt, text or refusal)
        try:
            ans = parse_answer(text)
        except AnswerError as e:
            if _REFUSAL.search(text[:300]):
                return self._hold(f"LLM refused: {text.strip()[:200]}", prompt, text)
            return self._hold(f"LLM answer rejected ({e})", prompt, text)
        action, reasoning = ans["action"], self._scrub(ans["reasoning"])
        holding = ctx.position is not None
        if (action == "buy" and holding) or (action == "sell" and not holding):
            reasoning = f"{action} ignored ({'already holding' if holding else 'nothing to sell'}): {reasoning}"
            action = "hold"
        return Decision(action, ans["confidence"], reasoning, self.name, inputs=prompt, response=self._scrub(text),
                        stop_loss=ans["stop_loss"], take_profit=ans["take_profit"])

    def _hold(self, why: str, prompt: str, raw: str) -> Decision:
        why, raw = self._scrub(why), self._scrub(raw)
        log.warning("%s: %s", self.name, why)
        return Decision("hold", 0, why, self.name, inputs=prompt, response=raw)

    def _complete(self, prompt: str) -> _Raw:
        s = self.settings
        body = {
            "model": s.model,
            "messages": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": prompt}],
            "temperature": s.temperature,
            "max_tokens": s.max_tokens,
        }
        if s.json_mode:
            body["response_format"] = {"type": "json_object"}
        try:
            return self._post(body)
        except _CallFailed as e:
            if e.status == 400 and s.json_mode:  # server may not support response_format
                body.pop("response_format")
                return self._post(body)
            raise

    def _post(self, body: dict) -> _Raw:
        s = self.settings
        req = urllib.request.Request(
            s.base_url.rstrip("/") + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {s.api_key}"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=s.timeout_seconds) as resp:
                text = resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            detail = self._scrub(e.read().decode("utf-8", "replace")[:500])
            raise _CallFailed(f"HTTP {e.code}", detail, e.code) from None
        except TimeoutError:
            raise _CallFailed(f"timeout after {s.timeout_seconds:g}s", "") from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, TimeoutError):
                raise _CallFailed(f"timeout after {s.timeout_seconds:g}s", "") from None
            raise _CallFailed(self._scrub(f"connection failed: {reason}"), "") from None
        except OSError as e:
            raise _CallFailed(self._scrub(f"connection failed: {e}"), "") from None
        try:
            msg = json.loads(text)["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _CallFailed("unexpected API response", self._scrub(text[:2000])) from None
        content = msg.get("content") or ""
        return _Raw(content, msg.get("refusal") or "")

    def _scrub(self, text: str) -> str:
        """Mask the API key in text we store or log. Too short a key (tests, local servers
        without auth) would only mangle ordinary words."""
        key = self.settings.api_key
        return text.replace(key, "***") if key and len(key) >= 8 else text


@dataclass(frozen=True)
class _Raw:
    text: str
    refusal: str


class _CallFailed(Exception):
    def __init__(self, message: str, raw: str, status: int | None = None):
        super().__init__(message)
        self.raw = raw
        self.status = status
