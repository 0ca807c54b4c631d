"""LLM side of bench/engine.py (`--llm`): two fake providers (OpenAI-compatible and Anthropic Messages) on
127.0.0.1, the config sections that point an ensemble at them, and the figure the issue asks for: LLM
calls per candle next to the distinct (provider, exchange, symbol, timeframe, position state) per candle."""

from __future__ import annotations

import hashlib

from tests.fakes.llm import FakeAnthropic, FakeLLM


def _answer(body: dict) -> dict:
    """A deterministic decision from the prompt: buy when flat, sell when long, one candle in three."""
    messages = body.get("messages") or []
    prompt = messages[-1].get("content", "") if messages else ""
    turn = int(hashlib.sha256(prompt.encode()).hexdigest(), 16) % 3 == 0
    if "Position: none" in prompt:
        return {"action": "buy" if turn else "hold", "confidence": 75, "reasoning": "bench"}
    return {"action": "sell" if turn else "hold", "confidence": 75, "reasoning": "bench"}


def start():
    gpt, claude = FakeLLM().__enter__(), FakeAnthropic().__enter__()
    gpt.answer_with(_answer)
    claude.answer_with(_answer)
    return gpt, claude


def stop(servers) -> None:
    for s in servers:
        s.__exit__(None, None, None)


def config_text(servers) -> str:
    gpt, claude = servers
    return (
        f'[llm.providers.gpt]\nbase_url = "{gpt.base_url}"\nmodel = "fake-gpt"\napi_key = "sk-bench-0000"\n'
        'price_input_per_million = "0.15"\nprice_output_per_million = "0.6"\n\n'
        f'[llm.providers.claude]\nprotocol = "anthropic"\nbase_url = "{claude.base_url}"\nmodel = "fake-claude"\n'
        'api_key = "ak-bench-0000"\nprice_input_per_million = 3\nprice_output_per_million = 15\n\n'
        '[ensemble]\nmembers = ["technical", "gpt", "claude"]\nmin_agree = 2\n\n'
    )


def report(db, since_ts_ms: int, n_pairs: int, servers) -> list[str]:
    """Lines for the bench report from llm_answers (one row per call) over the candles since `since_ts_ms`."""
    rows = db.execute_sql(
        "SELECT candle_ts, COUNT(*), COUNT(DISTINCT provider || '|' || exchange || '|' || symbol || '|' || "
        "timeframe || '|' || state) FROM llm_answers WHERE candle_ts >= ? GROUP BY candle_ts ORDER BY candle_ts",
        (since_ts_ms,)).fetchall()
    sent = sum(len(s.requests) for s in servers)
    if not rows:
        return [f"LLM: no calls recorded ({sent} requests reached the fake providers)"]
    calls = [r[1] for r in rows]
    distinct = [r[2] for r in rows]
    return [
        f"LLM ensemble (technical + 2 fake providers): {n_pairs} pairs; over {len(rows)} candles "
        f"LLM calls per candle avg {sum(calls) / len(rows):.2f} (max {max(calls)}) vs distinct (provider, "
        f"exchange, symbol, timeframe, state) per candle avg {sum(distinct) / len(rows):.2f}; "
        f"{sent} requests reached the fake providers in the whole run",
    ]
