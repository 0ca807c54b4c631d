"""Issue 10 item 11: crashes and validation gaps found by the review, each answered with one clear line."""

from __future__ import annotations

import gzip
import socket
import tracemalloc
from decimal import Decimal

import click
import pytest

from tests.fixtures_cli import tb
from tests.fixtures_telegram import setup_user
from tradebot import admin as uc
from tradebot import db as dbmod
from tradebot.backtest.data import DataError, load_candles, parse_date
from tradebot.cli.setup import _admin_ids
from tradebot.config import ConfigError, load_config
from tradebot.models import UserConfig
from tradebot.services import find_user
from tradebot.telegram.parsing import ParseError, parse_amount, parse_user_ref

# ------------------------------------------------------------------ Unicode digits

NOT_ASCII = ["²", "١", "١٢", "１２", "𝟏", "߁"]  # superscript, Arabic-Indic, fullwidth, math bold, N'Ko


@pytest.mark.parametrize("data", ["start:²", "stop:²", "rm:²", "stopmany:²", "stopmany:all:²", "cancel:²",
                                  "adm:ok:²", "start:١", "start:１"])
def test_callback_data_with_unicode_digits(chat, data):
    setup_user(chat, pairs=[("BTC/USDT", 100)])
    edits, answers = chat.press(1, data)
    assert answers and answers[-1][1] in ("That button is no longer valid.", "That button is not for you."), answers
    assert not edits
    assert not UserConfig.get().is_trading  # 'start:١' must not start pair 1


@pytest.mark.parametrize("ref", NOT_ASCII)
def test_admin_user_with_unicode_digits(initialized, ref):
    cfg, _ = initialized
    assert tb("--config", str(cfg), "admin", "approve", "1").returncode == 0  # user id 1, Telegram id 1
    res = tb("--config", str(cfg), "admin", "user", ref)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().startswith("error: no user") and len(res.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("ref", NOT_ASCII)
def test_parsers_take_ascii_digits_only(database, ref):
    with pytest.raises(uc.AdminError):
        uc.find_user(ref)
    assert find_user(ref) is None
    with pytest.raises(ParseError):
        parse_user_ref(ref)
    with pytest.raises(ParseError):
        parse_amount(ref + "0")
    with pytest.raises(click.BadParameter):
        _admin_ids(ref)
    assert parse_user_ref("12") == 12 and parse_amount("10") == Decimal("10") and _admin_ids("7, 8") == (7, 8)


@pytest.mark.parametrize("env", [{"TRADEBOT_TELEGRAM_WORKERS": "²"}, {"TRADEBOT_TELEGRAM_WORKERS": "١٢"},
                                 {"TRADEBOT_ADMIN_IDS": "１２"}, {"TRADEBOT_RISK_STOP_LOSS_PERCENT": "٣"},
                                 {"TRADEBOT_LLM_TEMPERATURE": "٠.٥"}])
def test_config_numbers_are_ascii(tmp_path, env):
    with pytest.raises(ConfigError, match=r"^(telegram|risk|llm)\.\w+: "):
        load_config(_empty(tmp_path), env=env)


# ------------------------------------------------------------------ config: finite, bounded, no unknown keys


def _empty(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("")
    return path


@pytest.mark.parametrize("toml, key", [
    ("[llm]\ntemperature = nan\n", "llm.temperature"),
    ("[llm]\ntemperature = -inf\n", "llm.temperature"),
    ('[trading]\nmax_budget = "1e999999999"\n', "trading.max_budget"),
    ("[trading]\nmax_budget = 1e300\n", "trading.max_budget"),
    ('[trading]\nmin_budget = "1e-999999999"\n', "trading.min_budget"),
    ('[risk]\nstop_loss_percent = "NaN"\n', "risk.stop_loss_percent"),
    ("[logging]\nmax_bytes = 9223372036854775807\n", "logging.max_bytes"),
])
def test_config_numbers_are_finite_and_bounded(tmp_path, toml, key):
    path = tmp_path / "c.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={})
    assert str(info.value).startswith(key + ":") and len(str(info.value)) < 200


@pytest.mark.parametrize("name", ["TRADEBOT_EXCHANGES_BINANCE_API_KEY", "TRADEBOT_EXCHANGES_BYBIT_TIMEOUT",
                                  "TRADEBOT_EXCHANGES_KRAKEN_API_URL", "TRADEBOT_TELEGRAM_ADMINS",
                                  "TRADEBOT_DATABASE_PASSWORD"])
def test_unknown_environment_keys_are_refused_everywhere(tmp_path, name):
    with pytest.raises(ConfigError, match=rf"^{name}: unknown"):
        load_config(_empty(tmp_path), env={name: "1"})
    cfg = load_config(_empty(tmp_path), env={"TRADEBOT_EXCHANGES_BYBIT_TIMEOUT_MS": "2000"})
    assert cfg.exchanges["bybit"].timeout_ms == 2000


# ------------------------------------------------------------------ backtest data


@pytest.mark.parametrize("row", [
    "9999-12-31T23:59:00-01:00,1,2,1,1.5,1",
    "0001-01-01T00:00:00+01:00,1,2,1,1.5,1",
    "²,1,2,1,1.5,1",
])
def test_candle_times_at_the_datetime_limits(tmp_path, row):
    path = tmp_path / "c.csv"
    path.write_text("2024-01-01 00:00:00,1,2,1,1.5,1\n" + row + "\n")
    with pytest.raises(DataError, match=r"c\.csv:2: "):
        load_candles(path)


@pytest.mark.parametrize("date", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00", "²"])
def test_from_dates_at_the_datetime_limits(date):
    with pytest.raises(ValueError, match="bad time"):
        parse_date(date)


def test_backtest_from_date_overflow_is_one_line(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("".join(f"{1704067200000 + i * 60000},1,2,1,1.5,1\n" for i in range(5)))
    res = tb("backtest", "--symbol", "BTC/USDT", "--data", str(path), "--from", "0001-01-01T00:00:00+01:00",
             env_extra={"TRADEBOT_DATA_DIR": str(tmp_path)})
    assert res.returncode == 2 and "bad time" in res.stderr and "Traceback" not in res.stderr, res.stderr


@pytest.mark.parametrize("args", [("--set", "interval_seconds=١٢"), ("--set", "stop_loss_percent=٣"),
                                  ("--set", "amount_step=1e999999"), ("--balance", "١٠٠٠")])
def test_backtest_options_take_ascii_sane_numbers(tmp_path, args):
    path = tmp_path / "c.csv"
    path.write_text("".join(f"{1704067200000 + i * 60000},1,2,1,1.5,1\n" for i in range(5)))
    res = tb("backtest", "--symbol", "BTC/USDT", "--data", str(path), *args,
             env_extra={"TRADEBOT_DATA_DIR": str(tmp_path)})
    assert res.returncode == 2 and "Invalid value" in res.stderr and "Traceback" not in res.stderr, res.stderr


def test_gzip_bomb_is_streamed_and_refused(tmp_path):
    path = tmp_path / "bomb.csv.gz"
    size = 64 << 20  # 64 MB of one line from a file of ~64 KB
    with gzip.open(path, "wb", compresslevel=9) as fh:
        fh.write(b"2024-01-01 00:00:00,1,2,1,1.5,1\n")
        chunk = b"9" * (1 << 20)
        for _ in range(size >> 20):
            fh.write(chunk)
    assert path.stat().st_size < 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(DataError, match=r"bomb\.csv\.gz:2: malformed row \(longer than"):
            load_candles(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, peak  # never the whole 64 MB


def test_gzip_and_zip_streams_still_load(tmp_path):
    import zipfile

    rows = "".join(f"{1704067200000 + i * 60000},1,2,1,1.5,1\n" for i in range(1000))
    gz = tmp_path / "c.csv.gz"
    gz.write_bytes(gzip.compress(rows.encode()))
    zp = tmp_path / "c.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("c.csv", rows)
    assert len(load_candles(gz)) == len(load_candles(zp)) == 1000


# ------------------------------------------------------------------ corrupted database, log directory, URLs


def test_corrupted_database_is_one_line(initialized):
    cfg, data = initialized
    (data / "tradebot.db").write_bytes(b"this is not a database" * 500)
    for args in (("admin", "users"), ("admin", "user", "1"), ("admin", "sql", "SELECT 1"), ("run",),
                 ("admin", "approve", "5")):
        res = tb("--config", str(cfg), *args)
        assert res.returncode == 2, (args, res.returncode, res.stderr)
        assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1, (args, res.stderr)
        assert "not a database" in res.stderr, (args, res.stderr)


def test_unwritable_log_directory_is_one_line(initialized):
    cfg, data = initialized
    blocker = data / "not-a-dir"
    blocker.write_text("")  # a file where the log directory should be: refused even for root
    res = tb("--config", str(cfg), "run", env_extra={"TRADEBOT_LOGGING_FILE": str(blocker / "bot.log")})
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip().splitlines()[-1]]
    assert "logging.file: cannot write" in res.stderr


@pytest.mark.parametrize("password", ["p@ss", "a@b@c", "x:y@z", "@@"])
def test_database_password_with_at_sign_is_masked(tmp_path, password):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    free = sock.getsockname()[1]
    sock.close()
    url = f"postgresql://u:{password}@127.0.0.1:{free}/x"
    assert dbmod.redact_url(url) == f"postgresql://u:***@127.0.0.1:{free}/x"
    for args in (("admin", "users"), ("admin", "sql", "SELECT 1"), ("db", "migrate"), ("admin", "approve", "5")):
        res = tb(*args, env_extra={"TRADEBOT_DATABASE_URL": url, "TRADEBOT_DATA_DIR": str(tmp_path)})
        assert res.returncode == 2 and "Traceback" not in res.stderr, (args, res.stderr)
        shown = res.stderr + res.stdout
        tail = password.rsplit("@", 1)[-1]  # what a mask ending at the first '@' leaves visible
        assert password not in shown and (not tail or tail + "@" not in shown), (args, shown)
        assert "u:***@127.0.0.1" in shown, (args, shown)
