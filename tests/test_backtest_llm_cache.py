"""`tradebot backtest --llm-cache FILE [--llm-cache-only]` with an ensemble of named providers over real HTTP:
the second run replays every answer (identical report, zero calls), cache-only never calls."""

import json

from tests.fakes.llm import FakeAnthropic, FakeLLM
from tests.test_backtest_cli import BTC_1H
from tests.test_backtest_cli_errors import run_main

ARGS = ["backtest", "--symbol", "BTC/USDT", "--data", BTC_1H, "--from", "2024-02-01", "--to", "2024-02-03",
        "--json"]


def _config(tmp_path, claude, gpt):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"""
[llm.providers.claude]
protocol = "anthropic"
base_url = "{claude.base_url}"
model = "claude-test"
api_key = "ak-test-123456"
max_retries = 0

[llm.providers.gpt]
base_url = "{gpt.base_url}"
model = "gpt-test"
api_key = "sk-test-123456"
max_retries = 0

[ensemble]
members = ["claude", "gpt"]
min_agree = 2
""")
    return str(cfg)


def _script(claude, gpt):
    # answers that depend on nothing but the call order: a replay must not ask again to get them right
    for i in range(60):
        action = "buy" if i % 6 == 0 else "sell" if i % 6 == 3 else "hold"
        claude.answer_json({"action": action, "confidence": 70 + i % 20, "reasoning": f"claude {i}"})
        gpt.answer_json({"action": action, "confidence": 65, "reasoning": f"gpt {i}"})


def test_second_run_replays_every_answer_without_calls(tmp_path):
    cache = tmp_path / "answers.jsonl"
    with FakeAnthropic() as claude, FakeLLM() as gpt:
        cfg = _config(tmp_path, claude, gpt)
        _script(claude, gpt)
        first = run_main("--config", cfg, *ARGS, "--decider", "ensemble", "--llm-cache", str(cache))
        assert first.exit_code == 0, first.output
        calls = (len(claude.requests), len(gpt.requests))
        assert calls[0] == calls[1] == 72  # one per candle of the three days
        report1 = json.loads(first.stdout)
        assert report1["trades"] > 0
        assert len(cache.read_text().splitlines()) == 144
        second = run_main("--config", cfg, *ARGS, "--decider", "ensemble", "--llm-cache", str(cache))
        assert second.exit_code == 0, second.output
        assert (len(claude.requests), len(gpt.requests)) == calls  # zero network calls
        assert json.loads(second.stdout) == report1
        assert "144 answers replayed, 0 new calls" in second.stderr
    # the servers are gone: cache-only still replays, and identically
    only = run_main("--config", cfg, *ARGS, "--decider", "ensemble", "--llm-cache", str(cache), "--llm-cache-only")
    assert only.exit_code == 0, only.output
    assert json.loads(only.stdout) == report1


def test_cache_only_refuses_to_call_on_a_miss(tmp_path):
    cache = tmp_path / "answers.jsonl"
    with FakeAnthropic() as claude, FakeLLM() as gpt:
        cfg = _config(tmp_path, claude, gpt)
        _script(claude, gpt)
        r = run_main("--config", cfg, *ARGS, "--decider", "llm:gpt", "--llm-cache", str(cache), "--llm-cache-only")
        assert r.exit_code == 2 and "no such file" in r.output
        cache.write_text("")
        r = run_main("--config", cfg, *ARGS, "--decider", "llm:gpt", "--llm-cache", str(cache), "--llm-cache-only")
        assert r.exit_code == 1 and "not in the LLM cache" in r.output and "Traceback" not in r.output
        assert len(gpt.requests) == 0
        r = run_main("--config", cfg, *ARGS, "--decider", "llm:gpt", "--llm-cache-only")
        assert r.exit_code == 2 and "needs --llm-cache FILE" in r.output
