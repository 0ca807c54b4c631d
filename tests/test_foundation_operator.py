"""The operator's first hour: `tradebot init` prompts, the key canary, admin unblock / forget-credentials,
and private file modes. Through the real command (subprocess) and click's CliRunner."""

from __future__ import annotations

import os
import sqlite3
import stat

from click.testing import CliRunner

from tests.fixtures_cli import tb
from tradebot.cli import main

TOKEN = "123456:ABCdefGHIjklMNOpqrSTUvwx"


def _init(cfg, data, *extra):
    res = tb("--config", str(cfg), "init", "--non-interactive", "--telegram-token", TOKEN, "--admin-id", "1",
             "--data-dir", str(data), *extra)
    assert res.returncode == 0, res.stderr
    return res


def _db(data):
    return sqlite3.connect(str(data / "tradebot.db"))


def _add_user_with_keys(cfg, data, telegram_id=555, username="bob", trading=True):
    """A user with encrypted Binance keys and one trading pair, written with the config's key."""
    from tradebot import db as dbmod
    from tradebot.config import load_config
    from tradebot.models import ExchangeCredential, User, UserConfig, UserState
    from tradebot.vault import Vault

    conf = load_config(cfg, env={})
    vault = Vault.load(conf.key_file, env={})
    dbmod.open_database(conf.database_url)
    try:
        user = User.create(telegram_id=telegram_id, username=username, status="active")
        ExchangeCredential.create(user=user.id, exchange="binance", network="testnet",
                                  api_key_enc=vault.encrypt("Ak7Bk8Ck9Dk0Ek1Fk2"),
                                  secret_enc=vault.encrypt("Sx1Sy2Sz3Sa4Sb5Sc6"))
        pair = UserConfig.create(user=user.id, exchange="binance", symbol="BTC/USDT", budget=100, timeframe="1h",
                                 interval_seconds=3600, decider="technical", is_trading=trading)
        UserState.create(user=user.id, config=pair.id, status="running" if trading else "stopped", mode="testnet",
                         balance=100, cash=100, equity=100, peak_equity=100)
    finally:
        dbmod.close_database()
    return conf


# ---------------------------------------------------------------- init


def test_init_prompts_in_the_readme_order_with_piped_answers(tmp_path):
    cfg = tmp_path / "config.toml"
    data = tmp_path / "D"
    answers = f"not-a-token\n{TOKEN}\n4242\n{data}\n"
    res = tb("--config", str(cfg), "init", stdin=answers)
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    token_at, admin_at, data_at = (out.index("Telegram bot token"), out.index("Telegram user id"),
                                   out.index("Data directory"))
    assert token_at < admin_at < data_at
    assert "does not look like a bot token" in out  # re-asked with run's rule
    assert "Warning" not in out and "GetPassWarning" not in out  # no getpass noise on piped stdin
    text = cfg.read_text()
    assert f'token = "{TOKEN}"' in text and "admin_ids = [4242]" in text and str(data.resolve()) in text


def test_init_shows_the_default_data_directory(tmp_path):
    cfg = tmp_path / "config.toml"
    res = CliRunner().invoke(main, ["--config", str(cfg), "init"], input=f"{TOKEN}\n7\n\n",
                             env={"TRADEBOT_DATA_DIR": str(tmp_path / "default-data")})
    assert res.exit_code == 0, res.output
    assert f"Data directory [{tmp_path / 'default-data'}]" in res.output
    assert (tmp_path / "default-data" / "tradebot.db").exists()


def test_an_existing_config_is_refused_before_any_question(tmp_path):
    cfg = tmp_path / "config.toml"
    _init(cfg, tmp_path / "D")
    before = cfg.read_bytes()
    res = CliRunner().invoke(main, ["--config", str(cfg), "init"], input="")
    assert res.exit_code == 2
    assert "already exists" in res.output
    assert "Telegram bot token" not in res.output and "Data directory" not in res.output
    assert cfg.read_bytes() == before


def test_a_malformed_token_flag_is_refused_with_runs_rule(tmp_path):
    res = tb("--config", str(tmp_path / "c.toml"), "init", "--non-interactive", "--telegram-token", "abc:def",
             "--data-dir", str(tmp_path / "D"))
    assert res.returncode == 2
    assert "does not look like a bot token" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "c.toml").exists()


# ---------------------------------------------------------------- key canary


def test_init_force_refuses_a_new_key_when_the_old_one_is_lost(tmp_path):
    cfg, data = tmp_path / "config.toml", tmp_path / "D"
    _init(cfg, data)
    conf = _add_user_with_keys(cfg, data)
    conf.key_file.unlink()
    before = cfg.read_bytes()
    res = tb("--config", str(cfg), "init", "--non-interactive", "--force", "--telegram-token", TOKEN,
             "--data-dir", str(data))
    assert res.returncode == 2
    line = res.stderr.strip()
    assert len(line.splitlines()) == 1 and "missing" in line and "2 encrypted" in line
    assert "restore" in line.lower() and "forget-credentials" in line
    assert "created" not in res.stdout
    assert not conf.key_file.exists()  # no new key was made
    assert cfg.read_bytes() == before


def test_run_refuses_a_key_that_cannot_decrypt_the_stored_secrets(tmp_path):
    from tradebot.vault import generate_key_file

    cfg, data = tmp_path / "config.toml", tmp_path / "D"
    _init(cfg, data)
    conf = _add_user_with_keys(cfg, data)
    conf.key_file.unlink()
    generate_key_file(conf.key_file)  # e.g. the operator made a new key by hand
    res = tb("--config", str(cfg), "run")
    assert res.returncode == 2
    last = res.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the key file") and "cannot decrypt the 2 exchange secret(s)" in last
    assert "TRADEBOT_SECRET_KEY" in last and "forget-credentials" in last
    # init refuses such a key too, also one given through the environment
    from cryptography.fernet import Fernet

    res = tb("--config", str(cfg), "init", "--non-interactive", "--force", "--telegram-token", TOKEN,
             "--data-dir", str(data), env_extra={"TRADEBOT_SECRET_KEY": Fernet.generate_key().decode()})
    assert res.returncode == 2 and "TRADEBOT_SECRET_KEY cannot decrypt the 2" in res.stderr


def test_forget_credentials_wipes_stops_and_tells_the_users(tmp_path):
    cfg, data = tmp_path / "config.toml", tmp_path / "D"
    _init(cfg, data)
    conf = _add_user_with_keys(cfg, data)
    conf.key_file.unlink()
    res = tb("--config", str(cfg), "admin", "forget-credentials", stdin="n\n")
    assert res.returncode == 1  # declined: nothing changed
    assert _db(data).execute("SELECT COUNT(*) FROM exchange_credentials").fetchone() == (1,)
    res = tb("--config", str(cfg), "admin", "forget-credentials", "--yes")
    assert res.returncode == 0, res.stderr
    assert "1 user(s)" in res.stdout and "stopped 1 pair(s)" in res.stdout
    db = _db(data)
    assert db.execute("SELECT COUNT(*) FROM exchange_credentials").fetchone() == (0,)
    assert db.execute("SELECT is_trading FROM user_configs").fetchone() == (0,)
    kind, payload = db.execute("SELECT kind, payload FROM notifications").fetchone()
    assert kind == "credentials_forgotten" and "BTC/USDT" in payload
    from tradebot.telegram.format import event

    assert "/connect again" in event(kind, payload)
    # now init makes a fresh key, and run's canary has nothing to refuse
    res = tb("--config", str(cfg), "init", "--non-interactive", "--force", "--telegram-token", TOKEN,
             "--data-dir", str(data))
    assert res.returncode == 0 and "created" in res.stdout


# ---------------------------------------------------------------- admin unblock


def test_admin_unblock_as_in_the_chat(tmp_path):
    cfg, data = tmp_path / "config.toml", tmp_path / "D"
    _init(cfg, data)
    _add_user_with_keys(cfg, data, trading=False)
    assert tb("--config", str(cfg), "admin", "block", "555").returncode == 0
    res = tb("--config", str(cfg), "admin", "unblock", "@bob")
    assert res.returncode == 0, res.stderr
    assert "unblocked 555 (@bob)" in res.stdout
    db = _db(data)
    assert db.execute("SELECT status FROM users WHERE telegram_id = 555").fetchone() == ("active",)
    kind, payload = db.execute("SELECT kind, payload FROM notifications").fetchone()
    assert kind == "user_approved" and "blocked" in payload  # the chat says "An admin unblocked you"
    res = tb("--config", str(cfg), "admin", "unblock", "555")
    assert res.returncode == 0 and "not blocked" in res.stdout
    res = tb("--config", str(cfg), "admin", "unblock", "777")
    assert res.returncode == 1 and "no user" in res.stderr


# ---------------------------------------------------------------- private files


def test_files_are_private_in_a_world_readable_data_dir(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from tests.fakes.telegram import FakeTelegram

    data = tmp_path / "D"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)  # as a container volume
    (data / "logs").mkdir(mode=0o755)
    old_log = data / "logs" / "bot.log"
    old_log.write_text("earlier\n")
    os.chmod(old_log, 0o644)
    cfg = tmp_path / "config.toml"
    _init(cfg, data)
    backup = tmp_path / "backup.db"
    backup.write_text("")
    os.chmod(backup, 0o644)  # overwritten by the backup: must not stay readable by all
    assert tb("--config", str(cfg), "db", "backup", str(backup)).returncode == 0

    fake = FakeTelegram(token=TOKEN).start()
    cfg.write_text(cfg.read_text().replace('api_url = "https://api.telegram.org"', f'api_url = "{fake.api_url}"'))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    proc = subprocess.Popen([sys.executable, "-m", "tradebot", "--config", str(cfg), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        fake.wait_for(lambda: fake.calls_of("getUpdates"), timeout=30)
        time.sleep(0.3)
        files = [p for p in data.rglob("*") if p.is_file()] + [backup]
        names = {p.name for p in files}
        assert {"tradebot.db", "tradebot.db-wal", "tradebot.db-shm", "secret.key", "bot.log"} <= names, names
        loose = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
                 if stat.S_IMODE(p.stat().st_mode) != 0o600}
        assert not loose
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        fake.stop()


def test_admin_user_and_users_print_exact_numbers_like_the_views(tmp_path):
    cfg, data = tmp_path / "config.toml", tmp_path / "D"
    _init(cfg, data)
    _add_user_with_keys(cfg, data, trading=False)
    db = _db(data)
    db.execute("UPDATE user_states SET equity = '99.60981514'")
    db.commit()
    users = tb("--config", str(cfg), "admin", "users").stdout
    view = tb("--config", str(cfg), "admin", "sql", "SELECT total_equity, total_pnl FROM user_overview").stdout
    one = tb("--config", str(cfg), "admin", "user", "555").stdout
    for out in (users, view, one):
        assert "99.60981514" in out and "-0.39018486" in out, out
        assert "100.00" not in out and "99.61" not in out
