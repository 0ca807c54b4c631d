"""The AI side in the chat and the CLI: /set <symbol> decider with configured providers, /help and /config
listing them, /why <symbol> after real cycles (fake Anthropic + OpenAI-compatible servers), the admin /llm
report and `tradebot admin llm` showing the same numbers."""

from __future__ import annotations

import dataclasses

import pytest

from tests.fakes.llm import FakeAnthropic, FakeLLM
from tests.fixtures_cli import tb
from tests.fixtures_engine import StubVault, make_pair, make_user
from tests.fixtures_telegram import ChatHarness, one
from tradebot import db as dbmod
from tradebot.config import load_config
from tradebot.engine.manager import BotManager
from tradebot.models import UserConfig


def _write_config(path, claude_url, gpt_url, db_url=None):
    text = f"""
[telegram]
token = "123456:TEST-token-abcdefghijklmnopqrstuvwxyz"
admin_ids = [900]
rate_limit_per_minute = 1000

[llm.providers.claude]
protocol = "anthropic"
base_url = "{claude_url}"
model = "claude-test"
api_key = "ak-test-123456"
price_input_per_million = 3
price_output_per_million = 15
max_retries = 0

[llm.providers.gpt]
base_url = "{gpt_url}"
model = "gpt-test"
price_input_per_million = "0.15"
price_output_per_million = "0.6"
max_retries = 0

[ensemble]
members = ["technical", "claude", "gpt"]
min_agree = 2
weights = {{ claude = 2 }}
"""
    if db_url:
        text = f'[database]\nurl = "{db_url}"\n' + text
    path.write_text(text)
    return path


@pytest.fixture
def servers():
    with FakeAnthropic() as claude, FakeLLM() as gpt:
        yield claude, gpt


@pytest.fixture
def ai_chat(database, replay_hub, clock, servers, tmp_path):
    claude, gpt = servers
    cfg = load_config(_write_config(tmp_path / "config.toml", claude.base_url, gpt.base_url), env={})
    mgr = BotManager(replay_hub, cfg, vault=StubVault(), clock=clock, max_workers=2)
    chat = ChatHarness(cfg, hub=replay_hub, manager=mgr)
    yield chat, mgr
    mgr.shutdown(2)


def test_set_decider_takes_the_configured_names(ai_chat):
    chat, _ = ai_chat
    make_pair(make_user(1), "BTC/USDT", "1000")
    help_text = one(chat, 1, "/help")
    assert "Deciders for /set <symbol> decider: technical, llm:claude, llm:gpt, ensemble" in help_text
    assert "/why <symbol>" in help_text
    assert "Deciders for /set <symbol> decider: technical, llm:claude" in one(chat, 1, "/config")
    assert "llm:claude" in one(chat, 1, "/set BTC/USDT decider claude")
    assert UserConfig.get().decider == "llm:claude"
    assert "technical → ensemble" in one(chat, 1, "/set BTC/USDT decider ensemble").replace("llm:claude", "technical")
    reply = one(chat, 1, "/set BTC/USDT decider grok")
    assert "must be one of: technical, llm:claude, llm:gpt, ensemble" in reply
    reply = one(chat, 1, "/set BTC/USDT decider llm")  # the plain [llm] section has no key here
    assert "not configured" in reply and UserConfig.get().decider == "ensemble"


def test_why_shows_each_members_vote_and_admin_llm_the_usage(ai_chat, servers, clock):
    chat, mgr = ai_chat
    claude, gpt = servers
    claude.answer_json({"action": "buy", "confidence": 82, "reasoning": "higher lows\nsecond line"})
    gpt.answer_json({"action": "hold", "confidence": 55, "reasoning": "unclear"})
    admin = make_user(900)
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="ensemble")
    other = make_pair(make_user(2), "BTC/USDT", "1000", decider="ensemble")
    assert "No decision stored" in one(chat, 1, "/why BTC/USDT")
    mgr.run_cycle(other.id)
    mgr.run_cycle(cfg.id)
    why = one(chat, 1, "/why BTC/USDT")
    assert "decider ensemble" in why
    assert "llm:claude: buy 82 (claude-test, 120 tokens" in why and "shared answer" in why
    assert "higher lows" in why and "second line" not in why
    assert "llm:gpt: hold 55" in why and "technical:" in why
    # weights: claude (2) alone outweighs nobody agreeing, but min_agree 2 is not met -> hold
    assert "Last decision" in why and ": hold (confidence 0)" in why
    assert "Unknown command" in one(chat, 1, "/llm")  # admin commands are hidden from users
    report = one(chat, admin.telegram_id, "/llm")
    assert "llm:claude: 1 calls, 0 errors (0%), 120 tokens (100 in / 20 out), $0.0006" in report
    assert "llm:gpt: 1 calls" in report and "$0.000027" in report


def test_cli_admin_llm_prints_the_same_numbers(tmp_path, servers, clock):
    from tests.fixtures_engine import ReplayHub

    claude, gpt = servers
    claude.answer_json({"action": "buy", "confidence": 82, "reasoning": "r"})
    gpt.answer_status(503)
    url = f"sqlite:///{tmp_path / 'bot.db'}"
    path = _write_config(tmp_path / "config.toml", claude.base_url, gpt.base_url, db_url=url)
    cfg = load_config(path, env={})
    dbmod.open_database(url)
    dbmod.migrate()
    try:
        mgr = BotManager(ReplayHub(clock), cfg, vault=StubVault(), clock=clock, max_workers=1)
        mgr.run_cycle(make_pair(make_user(1), "BTC/USDT", "1000", decider="ensemble").id)
        mgr.shutdown(2)
    finally:
        dbmod.close_database()
    res = tb("--config", str(path), "admin", "llm", "--days", "3650")  # the replay clock is in the past
    assert res.returncode == 0, res.stderr
    lines = {ln.split()[1]: ln.split() for ln in res.stdout.splitlines()[2:] if ln.strip()}
    assert lines["llm:claude"][2:8] == ["1", "0", "0.0", "100", "20", "0.0006"]
    assert lines["llm:gpt"][2:6] == ["1", "1", "100.0", "0"]  # the 503 counts as an error, no tokens
    assert "cost_usd" in res.stdout.splitlines()[0]


def test_llm_config_errors_are_one_clear_line(tmp_path):
    bad = tmp_path / "c.toml"
    for text, msg in [
        ('[llm.providers.x]\nprotocol = "grpc"\nmodel = "m"\n', "llm.providers.x.protocol: must be one of"),
        ('[llm.providers.x]\nprotocol = "anthropic"\n', "llm.providers.x.model: not set"),
        ('[llm.providers.Technical]\nmodel = "m"\n', "a provider name is lowercase"),
        ('[ensemble]\nmembers = ["technical", "nope"]\n', "ensemble.members: unknown decider 'nope'"),
        ('[ensemble]\nmembers = ["technical"]\nmin_agree = 1\nweights = { llm = 2 }\n',
         "ensemble.weights: 'llm' is not one of ensemble.members"),
        ('[llm]\ndaily_cost_budget = -1\n', "llm.daily_cost_budget: must be >= 0"),
    ]:
        bad.write_text(text)
        with pytest.raises(Exception, match=msg.replace("(", r"\(")):
            load_config(bad, env={})
    good = tmp_path / "g.toml"
    good.write_text('[llm.providers.deepseek]\nbase_url = "https://api.deepseek.com/v1"\nmodel = "deepseek-chat"\n')
    cfg = load_config(good, env={"TRADEBOT_LLM_PROVIDERS_DEEPSEEK_API_KEY": "sk-env-987654321"})
    p = cfg.llm.providers["deepseek"]
    assert p.api_key == "sk-env-987654321" and p.protocol == "openai" and "sk-env" not in repr(cfg.llm) + repr(p)
    cfg = load_config(good, env={"TRADEBOT_LLM_PROVIDERS_CLAUDE_MODEL": "claude-x",
                                 "TRADEBOT_LLM_PROVIDERS_CLAUDE_PROTOCOL": "anthropic"})
    assert cfg.llm.providers["claude"].base_url == "https://api.anthropic.com"
    with pytest.raises(Exception, match="TRADEBOT_LLM_PROVIDERS_<NAME>_<KEY>"):
        load_config(good, env={"TRADEBOT_LLM_PROVIDERS_CLAUDE": "x"})
    assert dataclasses.is_dataclass(cfg.llm)


def test_llm_notices_read_plainly():
    import json

    from tradebot.telegram import format as fmt

    text = fmt.event("llm_budget", json.dumps({"scope": "user", "why": "240 of 200 tokens used today"}))
    assert "Your daily LLM budget is reached (240 of 200 tokens used today)" in text and "midnight UTC" in text
    text = fmt.event("llm_budget", json.dumps({"scope": "instance", "why": "$1 of $1 spent today"}))
    assert text.startswith("💸 The bot's daily LLM budget")
    text = fmt.event("llm_provider_failing", json.dumps({"provider": "llm:<b>", "minutes": 61, "error": "HTTP 529"}))
    assert "llm:&lt;b&gt; has failed every call for 61 minutes: HTTP 529" in text
    assert {"llm_budget", "llm_provider_failing"} <= fmt.ALWAYS_DELIVERED
