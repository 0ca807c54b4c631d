"""HTTP clients of the LLM providers: OpenAI-compatible chat completions and Anthropic's Messages API.

`complete()` asks once and retries within a small bound on what may pass (429 with its retry-after, 5xx,
Anthropic's 529 overloaded, timeouts, a refused connection); anything else, or the bound spent, raises
CallFailed and the member abstains. The API key goes only into its header and is masked in whatever we keep.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

ANTHROPIC_VERSION = "2023-06-01"
MAX_RETRY_WAIT = 10.0  # seconds: a retry-after longer than this is not waited for (the member abstains)
MILLION = Decimal(1_000_000)


@dataclass(frozen=True)
class ProviderSettings:
    name: str = "llm"
    protocol: str = "openai"  # openai | anthropic
    base_url: str = "https://api.openai.com/v1"
    api_key: str = ""
    model: str = "gpt-4o-mini"
    timeout_seconds: float = 20.0
    temperature: float = 0.2
    max_tokens: int = 300
    price_input_per_million: Decimal = Decimal("0")
    price_output_per_million: Decimal = Decimal("0")
    max_retries: int = 2
    json_mode: bool = True  # openai: response_format=json_object (retried without on HTTP 400)
    history: int = 24  # candles summarised in the prompt

    def __repr__(self) -> str:  # never print the key
        return f"ProviderSettings(name={self.name!r}, protocol={self.protocol!r}, model={self.model!r}, api_key=***)"

    @classmethod
    def from_any(cls, value: Any, **over) -> ProviderSettings:
        if isinstance(value, cls) and not over:
            return value
        get = (value.get if isinstance(value, dict) else (lambda k, d: getattr(value, k, d))) \
            if value is not None else (lambda k, d: d)
        kw = {f: get(f, None) for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in kw.items() if v is not None}
        for k in ("price_input_per_million", "price_output_per_million"):
            if k in kw:
                kw[k] = Decimal(str(kw[k]))
        if "timeout_seconds" in kw:
            kw["timeout_seconds"] = float(kw["timeout_seconds"])
        kw.update(over)
        return cls(**kw)

    def cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return (Decimal(input_tokens) * self.price_input_per_million
                + Decimal(output_tokens) * self.price_output_per_million) / MILLION

    def scrub(self, text: str) -> str:
        """Mask the key in text we store or log (a very short key would only mangle ordinary words)."""
        key = self.api_key
        return text.replace(key, "***") if key and len(key) >= 8 else text


@dataclass(frozen=True)
class CallResult:
    text: str
    refusal: str
    input_tokens: int
    output_tokens: int
    latency_ms: int
    attempts: int
    raw: str  # the provider's whole response body (scrubbed)


class CallFailed(Exception):
    def __init__(self, message: str, raw: str = "", status: int | None = None, retriable: bool = False,
                 retry_after: float | None = None, attempts: int = 1, latency_ms: int = 0):
        super().__init__(message)
        self.raw = raw
        self.status = status
        self.retriable = retriable
        self.retry_after = retry_after
        self.attempts = attempts
        self.latency_ms = latency_ms


def complete(s: ProviderSettings, system: str, user: str, *, sleep=time.sleep) -> CallResult:
    """Ask `s` once, retrying transient failures up to `s.max_retries` times."""
    t0 = time.monotonic()
    attempt = 0
    json_mode = s.json_mode
    while True:
        attempt += 1
        try:
            res = _ask(s, system, user, json_mode)
            return CallResult(res[0], res[1], res[2], res[3], int((time.monotonic() - t0) * 1000), attempt, res[4])
        except CallFailed as e:
            e.attempts = attempt
            e.latency_ms = int((time.monotonic() - t0) * 1000)
            if e.status == 400 and json_mode and s.protocol == "openai":  # server may not know response_format
                json_mode = False
                continue
            if not e.retriable or attempt > s.max_retries:
                raise
            wait = e.retry_after if e.retry_after is not None else min(0.25 * 2 ** (attempt - 1), 2.0)
            if wait > MAX_RETRY_WAIT:
                raise CallFailed(f"{e} (retry-after {wait:g}s is too long)", e.raw, e.status, False,
                                 attempts=attempt, latency_ms=e.latency_ms) from None
            sleep(wait)


def _ask(s: ProviderSettings, system: str, user: str, json_mode: bool) -> tuple[str, str, int, int, str]:
    base = s.base_url.rstrip("/")
    if s.protocol == "anthropic":
        url = base + ("/messages" if base.endswith("/v1") else "/v1/messages")
        body = {"model": s.model, "max_tokens": s.max_tokens, "temperature": s.temperature, "system": system,
                "messages": [{"role": "user", "content": user}]}
        headers = {"x-api-key": s.api_key, "anthropic-version": ANTHROPIC_VERSION}
    else:
        url = base + "/chat/completions"
        body = {"model": s.model, "temperature": s.temperature, "max_tokens": s.max_tokens,
                "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}
        if json_mode:
            body["response_format"] = {"type": "json_object"}
        headers = {"Authorization": f"Bearer {s.api_key}"}
    text = _post(s, url, body, headers)
    try:
        obj = json.loads(text)
        if s.protocol == "anthropic":
            blocks = obj["content"]
            content = "".join(b.get("text", "") for b in blocks if isinstance(b, dict) and b.get("type") == "text")
            refusal = "model refused" if obj.get("stop_reason") == "refusal" and not content else ""
            usage = obj.get("usage") or {}
            tin, tout = usage.get("input_tokens"), usage.get("output_tokens")
        else:
            msg = obj["choices"][0]["message"]
            content, refusal = msg.get("content") or "", msg.get("refusal") or ""
            usage = obj.get("usage") or {}
            tin, tout = usage.get("prompt_tokens"), usage.get("completion_tokens")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        raise CallFailed("unexpected API response", s.scrub(text[:2000])) from None
    return content, refusal, _count(tin), _count(tout), s.scrub(text[:8000])


def _count(v) -> int:
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else 0


def _post(s: ProviderSettings, url: str, body: dict, headers: dict) -> str:
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json", **headers}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=s.timeout_seconds) as resp:
            return resp.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        detail = s.scrub(e.read().decode("utf-8", "replace")[:500])
        kind = _error_type(detail)
        retriable = e.code == 429 or e.code >= 500
        msg = f"HTTP {e.code}" + (f" {kind}" if kind else "")
        raise CallFailed(msg, detail, e.code, retriable, _retry_after(e.headers)) from None
    except TimeoutError:
        raise CallFailed(f"timeout after {s.timeout_seconds:g}s", retriable=True) from None
    except urllib.error.URLError as e:
        if isinstance(e.reason, TimeoutError):
            raise CallFailed(f"timeout after {s.timeout_seconds:g}s", retriable=True) from None
        raise CallFailed(s.scrub(f"connection failed: {e.reason}"), retriable=True) from None
    except OSError as e:
        raise CallFailed(s.scrub(f"connection failed: {e}"), retriable=True) from None


def _error_type(body: str) -> str:
    try:
        err = json.loads(body).get("error")
    except (ValueError, AttributeError):
        return ""
    return str(err.get("type") or "")[:40] if isinstance(err, dict) else ""


def _retry_after(headers) -> float | None:
    if headers is None:
        return None
    ms = headers.get("retry-after-ms")
    value = headers.get("retry-after")
    try:
        if ms is not None:
            return max(0.0, float(ms) / 1000)
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
