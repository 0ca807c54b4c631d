"""Config: defaults, environment overrides, and one clear line per bad value."""

from decimal import Decimal

import pytest

from tradebot.config import ConfigError, load_config, require_telegram_token


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_example_config_loads_with_documented_defaults():
    cfg = load_config("config.example.toml", env={})
    assert cfg.risk.max_position_percent == Decimal("30")
    assert cfg.risk.stop_loss_percent == Decimal("2")
    assert cfg.telegram.access == "open"
    assert set(cfg.exchanges) == {"binance", "bybit"}


def test_every_documented_key_is_known(tmp_path):
    # each key in the example must be accepted on its own (i.e. documented == implemented)
    import tomllib

    raw = tomllib.loads(open("config.example.toml").read())
    sections = {k: v for k, v in raw.items() if isinstance(v, dict) and k != "exchanges"}
    assert set(sections) == {"telegram", "database", "ha", "security", "logging", "trading", "risk", "llm",
                             "ensemble"}
    for ex in raw["exchanges"].values():
        assert set(ex) == {"api_url", "testnet_api_url", "timeout_ms", "markets_refresh_seconds", "paper_data_network",
                           "paper_futures_taker_fee", "paper_funding_rate"}


def test_ha_section_defaults_range_and_environment(tmp_path):
    cfg = load_config(write(tmp_path, ""), env={})
    assert (cfg.ha.enabled, cfg.ha.lease_seconds) == (True, 20)
    with pytest.raises(ConfigError, match=r"ha\.lease_seconds"):
        load_config(write(tmp_path, "[ha]\nlease_seconds = 2\n"), env={})
    cfg = load_config(write(tmp_path, ""), env={"TRADEBOT_HA_LEASE_SECONDS": "45", "TRADEBOT_HA_ENABLED": "false"})
    assert cfg.ha.lease_seconds == 45 and cfg.ha.enabled is False


def test_env_overrides_file(tmp_path):
    path = write(tmp_path, '[telegram]\ntoken = "1:file"\n[database]\nurl = "sqlite:///a.db"\n')
    env = {
        "TRADEBOT_TELEGRAM_TOKEN": "2:env",
        "TRADEBOT_DATABASE_URL": "postgresql://u:p@localhost/x",
        "TRADEBOT_DATA_DIR": str(tmp_path / "data"),
        "TRADEBOT_RISK_STOP_LOSS_PERCENT": "3.5",
        "TRADEBOT_TELEGRAM_ADMIN_IDS": "7,8",
        "TRADEBOT_EXCHANGES_BINANCE_API_URL": "http://127.0.0.1:9",
    }
    cfg = load_config(path, env=env)
    assert cfg.telegram.token == "2:env"
    assert cfg.database_url == "postgresql://u:p@localhost/x"
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.risk.stop_loss_percent == Decimal("3.5")
    assert cfg.telegram.admin_ids == [7, 8]
    assert cfg.exchanges["binance"].api_url == "http://127.0.0.1:9"


def test_default_database_is_sqlite_in_data_dir(tmp_path):
    cfg = load_config(write(tmp_path, f'data_dir = "{tmp_path}"\n'), env={})
    assert cfg.database_url == f"sqlite:///{tmp_path / 'tradebot.db'}"


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[telegram]\ntokn = 'x'\n", "telegram.tokn: unknown key"),
        ("bogus = 1\n", "bogus: unknown key"),
        ("[risk]\nstop_loss_percent = 'abc'\n", "risk.stop_loss_percent: expected Decimal"),
        ("[telegram]\nworkers = 'four'\n", "telegram.workers: expected int"),
        ("[telegram]\nworkers = 0\n", "telegram.workers: must be >= 1"),
        ("[risk]\nmax_position_percent = 150\n", "risk.max_position_percent: must be <= 100"),
        ("[telegram]\naccess = 'everyone'\n", "telegram.access: must be one of open, approval, allowlist"),
        ("[database]\nurl = 'mysql://x'\n", "database.url: unsupported database scheme"),
        ("[database]\nurl = 'sqlite://'\n", "database.url:"),
        ("[exchanges.kraken]\napi_url = ''\n", "exchanges.kraken: unknown exchange"),
        ("[telegram]\nadmin_ids = [1, 'x']\n", "telegram.admin_ids: expected list of integers"),
        ("[telegram\n", "invalid TOML"),
    ],
)
def test_bad_config_is_one_line_naming_the_key(tmp_path, text, needle):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env={})
    message = str(info.value)
    assert needle in message
    assert "\n" not in message


def test_bad_env_value_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="trading.default_interval_seconds: expected int"):
        load_config(write(tmp_path, ""), env={"TRADEBOT_TRADING_DEFAULT_INTERVAL_SECONDS": "soon"})


def test_missing_or_unreadable_named_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml", env={})
    with pytest.raises(ConfigError, match="is a directory"):
        load_config(tmp_path, env={})


def test_missing_token_explains_botfather(tmp_path):
    cfg = load_config(write(tmp_path, ""), env={})
    with pytest.raises(ConfigError, match="BotFather") as info:
        require_telegram_token(cfg)
    assert "TRADEBOT_TELEGRAM_TOKEN" in str(info.value)
