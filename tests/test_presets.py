"""[presets.<name>] in the config: validation, /set <symbol> preset, /config, the engine's decider, evaluate."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.fixtures_telegram import ChatHarness, make_cfg, one, setup_user
from tradebot import db as dbmod
from tradebot.config import ConfigError, load_config
from tradebot.engine.manager import _deciders
from tradebot.models import UserConfig
from tradebot.presets import parse_presets

DATA = Path(__file__).resolve().parent / "data"
BTC_1H = str(DATA / "binance-spot-BTCUSDT-1h-2024-01-01_2024-06-10.csv.gz")

SWING = """
[presets.swing]
timeframe = "4h"
stop_loss_percent = 4
take_profit_percent = 12
max_position_percent = 50
ema_fast = 20
ema_slow = 50
min_edge = 2
"""


def _config(tmp_path, text=SWING):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_config(path, env={})


def test_presets_load_and_bad_ones_stop_the_start_with_one_line(tmp_path):
    p = _config(tmp_path).presets["swing"]
    assert p.timeframe == "4h" and p.columns == {"stop_loss_percent": Decimal(4), "take_profit_percent": Decimal(12),
                                                 "max_position_percent": Decimal(50)}
    assert (p.technical.ema_fast, p.technical.ema_slow, p.technical.min_edge, p.technical.rsi_exit) == (20, 50, 2.0, 80.0)
    assert "ema_fast=20" in p.summary() and "timeframe=4h" in p.summary()
    for text, problem in (
        ('[presets.x]\ntimeframe = "7m"', "presets.x.timeframe: must be one of"),
        ("[presets.x]\nleverage = 3", "presets.x.leverage: unknown key"),
        ("[presets.x]\nema_fast = 30", "presets.x: ema_fast must be below ema_slow"),
        ("[presets.x]\nstop_loss_percent = 70", "presets.x.stop_loss_percent: must be a number between 0 and 50"),
        ("[presets.x]\nmax_consecutive_losses = 2.5", "whole number"),
        ('[presets.x]\nema_fast = "fast"', "presets.x.ema_fast: expected a number"),
        ("[presets.x]\nema_slow = 95", "warm up"),
        ('[presets."Bad Name"]\nema_fast = 5', "a preset name is"),
        ('presets = 3', "expected tables"),
    ):
        with pytest.raises(ConfigError, match=problem):
            _config(tmp_path, text)
    assert parse_presets(None) == {}


@pytest.fixture
def preset_chat(database, tmp_path):
    cfg = make_cfg(admin_ids=[900], rate_limit_per_minute=1000)
    return ChatHarness(dataclasses.replace(cfg, presets=_config(tmp_path).presets))


def test_set_preset_copies_settings_and_config_shows_it(preset_chat):
    chat = preset_chat
    setup_user(chat, pairs=[("BTC/USDT", 100)])
    assert "Preset: none (defaults)" in one(chat, 1, "/config")
    reply = one(chat, 1, "/set BTC/USDT preset swing")
    assert reply.startswith("⚙️ BTC/USDT (binance): preset none → swing (") and "ema_slow=50" in reply
    c = UserConfig.get()
    assert (c.preset, c.timeframe, c.stop_loss_percent, c.take_profit_percent, c.max_position_percent) == (
        "swing", "4h", Decimal(4), Decimal(12), Decimal(50))
    assert c.min_confidence == 60  # what the preset does not name stays
    assert "Preset: swing" in one(chat, 1, "/config")
    assert "Unknown preset 'nope'. Presets: swing." in one(chat, 1, "/set BTC/USDT preset nope")
    assert one(chat, 1, "/set BTC/USDT preset none").endswith("preset swing → none")
    c = UserConfig.get()
    assert c.preset is None and c.timeframe == "4h"  # forgetting the preset keeps the copied settings


def test_engine_builds_the_pairs_technical_decider_from_its_preset(tmp_path, caplog):
    cfg = _config(tmp_path)
    decider_for = _deciders(cfg)
    plain, swing = decider_for("technical"), decider_for("technical@swing")
    assert plain.params.ema_slow == 26 and (swing.params.ema_fast, swing.params.ema_slow) == (20, 50)
    assert decider_for("technical@swing") is swing  # built once, shared by every pair with that preset
    gone = decider_for("technical@removed")  # the preset left the config: defaults, and a warning
    assert gone.params.ema_slow == 26 and "not in the config any more" in caplog.text
    # a plain factory (tests, embedding) never sees the preset suffix
    assert _deciders(lambda name: name)("technical@swing") == "technical"


def test_migration_6_adds_the_preset_column_to_an_older_database(sqlite_url):
    database = dbmod.open_database(sqlite_url)
    try:
        dbmod.migrate()
        database.execute_sql('ALTER TABLE "user_configs" DROP COLUMN "preset"')
        database.execute_sql("DELETE FROM schema_migrations WHERE version = 6")
        assert "preset" not in {c.name for c in database.get_columns("user_configs")}
        assert dbmod.migrate() == [6]
        assert "preset" in {c.name for c in database.get_columns("user_configs")}
    finally:
        dbmod.close_database()


def test_evaluate_starts_from_a_preset(tmp_path):
    from tradebot.cli import main

    path = tmp_path / "config.toml"
    path.write_text(SWING)
    r = CliRunner().invoke(main, ["--config", str(path), "evaluate", "--data", BTC_1H, "--preset", "swing",
                                  "--train", "30d", "--test", "30d", "--grid", "min_edge=0,2", "--json", "--quiet",
                                  "--jobs", "1"], env={}, catch_exceptions=False)
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert {w["timeframe"] for w in rep["results"][0]["windows"]} == {"4h"}  # the preset's timeframe
    r = CliRunner().invoke(main, ["--config", str(path), "evaluate", "--data", BTC_1H, "--preset", "nope"], env={},
                           catch_exceptions=False)
    assert r.exit_code == 2 and "not a [presets.<name>]" in r.stderr
