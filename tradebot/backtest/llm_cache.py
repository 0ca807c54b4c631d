"""`tradebot backtest --llm-cache FILE`: LLM answers recorded by (provider, model, prompt hash), so a rerun
over the same candles replays them, reproducible and free. `--llm-cache-only` never calls a provider: a
prompt missing from the file stops the backtest with a clear error instead of trading on a guess.

The file is JSON lines, one answer each, appended as answers come (an interrupted run keeps what it paid
for); a damaged line is skipped.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from ..strategy.llm_shared import Answer


class CacheMiss(Exception):
    """--llm-cache-only and the prompt is not in the file."""


_FIELDS = ("provider", "model", "prompt_hash", "ok", "action", "confidence", "reasoning", "stop_loss",
           "take_profit", "error", "input_tokens", "output_tokens", "cost", "latency_ms", "raw")


class AnswerCache:
    def __init__(self, path: str | Path, only: bool = False):
        self.path = Path(path)
        self.only = only
        self.hits = self.misses = self.stored = 0
        self._lock = threading.Lock()
        self._answers: dict[tuple[str, str, str], dict] = {}
        if self.path.exists():
            with self.path.open(encoding="utf-8") as fh:
                for line in fh:
                    try:
                        obj = json.loads(line)
                        self._answers[(obj["provider"], obj["model"], obj["prompt_hash"])] = obj
                    except (ValueError, KeyError, TypeError):
                        continue

    def __len__(self) -> int:
        return len(self._answers)

    def get(self, provider: str, model: str, prompt_hash: str) -> Answer | None:
        obj = self._answers.get((provider, model, prompt_hash))
        if obj is None:
            self.misses += 1
            if self.only:
                raise CacheMiss(f"{provider} ({model}): an answer is not in the LLM cache {self.path} "
                                f"and --llm-cache-only forbids calling the provider")
            return None
        self.hits += 1
        kw = {k: obj.get(k) for k in _FIELDS if k in obj}
        for k in ("stop_loss", "take_profit"):
            kw[k] = Decimal(kw[k]) if kw.get(k) is not None else None
        kw["cost"] = Decimal(kw.get("cost") or "0")
        return replace(Answer(**kw), called=False)

    def put(self, answer: Answer) -> None:
        if not answer.called:
            return
        obj = {k: getattr(answer, k) for k in _FIELDS}
        for k in ("stop_loss", "take_profit", "cost"):
            obj[k] = None if obj[k] is None else str(obj[k])
        with self._lock:
            self._answers[(answer.provider, answer.model, answer.prompt_hash)] = obj
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(obj, sort_keys=True) + "\n")
            self.stored += 1
