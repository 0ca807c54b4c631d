"""One market analysis per situation, shared by every pair in it.

An answer is keyed by (provider, model, prompt hash). The prompt holds only what is common to the market
(exchange, symbol, timeframe, the closed candles, indicators, the optional context and the position
state flat/long/short); per-pair facts (budget, entry price, amount) are applied after the answer, by
sizing and risk. So 100 pairs on BTC/USDT 1h in the same state make one call per candle per provider.

`SharedAnswers.get` is single-flight: the first pair asks, the others wait for its answer. A failed call
is shared too (the other pairs abstain with it instead of hammering a failing provider), except an answer
that was not asked at all (a user's budget reached): that one is private to its pair.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal


def prompt_hash(system: str, prompt: str) -> str:
    return hashlib.sha256(f"{system}\n\n{prompt}".encode()).hexdigest()[:32]


@dataclass
class Answer:
    """A provider's answer to one prompt, as shared by the pairs that use it."""

    provider: str
    model: str
    prompt_hash: str
    ok: bool  # a valid decision was parsed
    action: str = "hold"
    confidence: int = 0
    reasoning: str = ""
    stop_loss: Decimal | None = None
    take_profit: Decimal | None = None
    error: str = ""  # why not ok: unavailable / refused / rejected / skipped
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal = Decimal("0")
    latency_ms: int = 0
    raw: str = ""
    called: bool = True  # False: nothing was sent (budget reached, or replayed from a backtest cache)
    skipped: bool = False  # not asked because a budget was reached
    answer_id: int | None = None  # its llm_answers row, once stored
    meta: dict = field(default_factory=dict)  # what the prompt was about (exchange, symbol, candle, state)


@dataclass(frozen=True)
class MemberCall:
    """What a member decision carries about its LLM answer (Decision.call)."""

    answer: Answer
    paid: bool  # this pair's cycle made the call (it is charged for it)
    skipped: str = ""  # not asked for this pair: budget reached (the ensemble leaves the member out)


class SharedAnswers:
    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self._lock = threading.Lock()
        self._done: OrderedDict[tuple, Answer] = OrderedDict()
        self._inflight: dict[tuple, threading.Event] = {}
        self.calls: dict[str, int] = {}  # provider -> calls actually sent (for benches and tests)

    def peek(self, key: tuple) -> Answer | None:
        with self._lock:
            return self._done.get(key)

    def get(self, key: tuple, ask: Callable[[], tuple[Answer, bool]]) -> tuple[Answer, bool]:
        """(answer, asked_here). `ask` returns (answer, shareable)."""
        while True:
            with self._lock:
                hit = self._done.get(key)
                if hit is not None:
                    self._done.move_to_end(key)
                    return hit, False
                ev = self._inflight.get(key)
                if ev is None:
                    ev = self._inflight[key] = threading.Event()
                    break
            ev.wait()  # another pair is asking: take its answer (or ask ourselves if it was private)
            with self._lock:
                hit = self._done.get(key)
                if hit is not None:
                    return hit, False
        try:
            answer, shareable = ask()
        except BaseException:
            with self._lock:
                self._inflight.pop(key, None)
            ev.set()
            raise
        with self._lock:
            if answer.called:
                self.calls[answer.provider] = self.calls.get(answer.provider, 0) + 1
            if shareable:
                self._done[key] = answer
                while len(self._done) > self.max_entries:
                    self._done.popitem(last=False)
            self._inflight.pop(key, None)
        ev.set()
        return answer, True
