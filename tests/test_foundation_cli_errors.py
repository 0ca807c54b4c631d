"""Operator mistakes the admin CLI must answer with one line, never a traceback (review findings)."""

import sqlite3

import pytest

from tests.fixtures_cli import tb
from tradebot import db as dbmod
from tradebot.models import User
from tradebot.readonly_sql import ReadOnlyViolation


def one_line(res, code=2):
    assert res.returncode == code, (res.returncode, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    return res.stderr.strip()


# ------------------------------------------------------------------ read-only SQL


@pytest.mark.parametrize("query", [
    "SELECT '/*' ; DELETE FROM users; SELECT '*/'",
    "SELECT '--'; DELETE FROM users",
    "SELECT 1; --'\n DELETE FROM users",
])
def test_comment_markers_inside_strings_do_not_hide_a_second_statement(database, sqlite_url, query):
    User.create(telegram_id=5)
    with pytest.raises(ReadOnlyViolation):
        dbmod.readonly_query(sqlite_url, query)
    assert User.select().count() == 1


@pytest.mark.parametrize("query", [
    "SELECT * FROM users WHERE username = 'x'' ; delete from users; --'",  # one string literal
    'SELECT "delete" FROM (SELECT 1 AS "delete")',  # a quoted identifier, not the keyword
    "SELECT 'it''s -- fine', 'a;b' -- trailing ; comment",
    "SELECT 1 /* ; drop */",
])
def test_read_only_queries_with_quotes_and_comments_pass(database, sqlite_url, query):
    columns, rows = dbmod.readonly_query(sqlite_url, query)
    assert columns and len(rows) <= 1


def test_sneaky_write_is_refused_end_to_end(initialized):
    cfg, data = initialized
    res = tb("--config", str(cfg), "admin", "sql", "SELECT '/*' ; DELETE FROM users; SELECT '*/'")
    assert "refused" in one_line(res)
    res = tb("--config", str(cfg), "admin", "sql", "SELECT 'x;y' AS v, \"delete\" FROM (SELECT 1 AS \"delete\")")
    assert res.returncode == 0 and "x;y" in res.stdout


# ------------------------------------------------------------------ admin ids, backups


@pytest.mark.parametrize("cmd", ["approve", "block"])
def test_out_of_range_telegram_id_is_a_usage_error(initialized, cmd):
    cfg, _ = initialized
    res = tb("--config", str(cfg), "admin", cmd, "99999999999999999999999")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "range" in res.stderr


def test_admin_user_with_a_huge_id_is_not_found(initialized):
    cfg, _ = initialized
    assert "no user" in one_line(tb("--config", str(cfg), "admin", "user", "99999999999999999999999"), code=1)


def test_backup_errors_are_one_line(initialized, tmp_path):
    cfg, data = initialized
    not_a_db = tmp_path / "notes.txt"
    not_a_db.write_text("hello\n")
    assert "cannot back up" in one_line(tb("--config", str(cfg), "db", "backup", str(not_a_db)), code=1)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert "cannot write" in one_line(tb("--config", str(cfg), "db", "backup", str(blocker / "b.db")), code=1)
    assert "the database itself" in one_line(tb("--config", str(cfg), "db", "backup", str(data / "tradebot.db")))
    assert tb("--config", str(cfg), "admin", "approve", "4711").returncode == 0
    res = tb("--config", str(cfg), "db", "backup", str(tmp_path / "ok.db"))
    assert res.returncode == 0
    rows = sqlite3.connect(tmp_path / "ok.db").execute("SELECT telegram_id, status FROM users").fetchall()
    assert rows == [(4711, "active")]  # the backup holds the data, not just a valid empty file


# ------------------------------------------------------------------ config and init


def test_config_file_that_is_not_utf8(tmp_path):
    cfg = tmp_path / "config.toml"
    cfg.write_bytes(b"\xff\xfe[risk]\n")
    assert "not UTF-8" in one_line(tb("--config", str(cfg), "admin", "users"))


@pytest.mark.parametrize("value", ["7m", "1w", "90s"])
def test_default_timeframe_must_be_one_a_pair_can_use(tmp_path, value):
    cfg = tmp_path / "config.toml"
    cfg.write_text(f'[trading]\ndefault_timeframe = "{value}"\n')
    assert "trading.default_timeframe" in one_line(tb("--config", str(cfg), "admin", "users"))


def test_init_with_an_uncreatable_data_dir_leaves_the_config_alone(initialized, tmp_path):
    cfg, _ = initialized
    before = cfg.read_bytes()
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = tb("--config", str(cfg), "init", "--non-interactive", "--force", "--data-dir", str(blocker / "sub"))
    assert "data directory" in one_line(res)
    assert cfg.read_bytes() == before


def test_init_interactive_asks_again_for_a_bad_admin_id(tmp_path):
    cfg = tmp_path / "config.toml"
    answers = f"123456:ABC\n@alice\n111, 222\n{tmp_path / 'D'}\n"  # the README's order: token, admin, data
    res = tb("--config", str(cfg), "init", stdin=answers)
    assert res.returncode == 0, res.stderr
    assert "is not a Telegram user id" in res.stdout + res.stderr
    assert "admin_ids = [111, 222]" in cfg.read_text()


def test_init_admin_id_flag_must_be_positive(tmp_path):
    res = tb("--config", str(tmp_path / "c.toml"), "init", "--non-interactive", "--admin-id", "-5",
             "--data-dir", str(tmp_path / "D"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert not (tmp_path / "c.toml").exists()


# ------------------------------------------------------------------ key file


def test_key_file_that_cannot_be_created_is_a_vault_error(tmp_path):
    from tradebot.vault import VaultError, generate_key_file

    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(VaultError, match="cannot create it"):
        generate_key_file(blocker / "sub" / "secret.key")


def test_init_with_an_uncreatable_key_file_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    res = tb("--config", str(tmp_path / "c.toml"), "init", "--non-interactive", "--data-dir", str(tmp_path / "D"),
             env_extra={"TRADEBOT_SECURITY_KEY_FILE": str(blocker / "k")})
    assert "encryption key file" in one_line(res)


def test_two_rotations_in_one_second_keep_both_key_backups(tmp_path, monkeypatch):
    import datetime as dt

    from tradebot import vault as vmod

    class Frozen(dt.datetime):
        @classmethod
        def now(cls, tz=None):
            return dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)

    monkeypatch.setattr(vmod.dt, "datetime", Frozen)
    key_file = tmp_path / "secret.key"
    vmod.generate_key_file(key_file)
    first = key_file.read_bytes()
    v = vmod.Vault.load(key_file, env={})
    b1 = v.rotate({}, lambda tokens: None)
    second = key_file.read_bytes()
    b2 = vmod.Vault.load(key_file, env={}).rotate({}, lambda tokens: None)
    assert b1 != b2 and b1.read_bytes() == first and b2.read_bytes() == second


def test_key_file_path_that_is_a_directory_is_not_kept_as_a_key(tmp_path):
    from tradebot.vault import VaultError, generate_key_file

    (tmp_path / "k").mkdir()
    with pytest.raises(VaultError, match="is a directory"):
        generate_key_file(tmp_path / "k")


@pytest.mark.parametrize("url,ok", [("http://", False), ("https://exa mple.com", False), ("http://:80", False),
                                    ("https://api.binance.com:99999", False), ("http://127.0.0.1:9", True),
                                    ("http://[::1]:8080/v1", True), ("https://api.example.com/v1", True)])
def test_urls_need_a_host(tmp_path, url, ok):
    from tradebot.config import ConfigError, load_config

    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    env = {"TRADEBOT_EXCHANGES_BINANCE_API_URL": url, "TRADEBOT_LLM_BASE_URL": url}
    if ok:
        assert load_config(cfg, env=env).exchanges["binance"].api_url == url
    else:
        with pytest.raises(ConfigError, match="not a valid URL"):
            load_config(cfg, env=env)


def test_ensemble_min_agree_cannot_exceed_its_members(tmp_path):
    from tradebot.config import ConfigError, load_config

    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    with pytest.raises(ConfigError, match="ensemble.min_agree: must not exceed"):
        load_config(cfg, env={"TRADEBOT_ENSEMBLE_MIN_AGREE": "3"})  # default members: technical, llm
    assert load_config(cfg, env={"TRADEBOT_ENSEMBLE_MIN_AGREE": "2"}).ensemble.min_agree == 2


@pytest.mark.parametrize("key", ["TRADEBOT_TELEGRAM_ADMIN_IDS", "TRADEBOT_TELEGRAM_ALLOWLIST"])
def test_telegram_ids_in_the_config_must_be_positive(tmp_path, key):
    from tradebot.config import ConfigError, load_config

    cfg = tmp_path / "config.toml"
    cfg.write_text("")
    with pytest.raises(ConfigError, match="Telegram user ids are positive"):
        load_config(cfg, env={key: "1,-5"})
    with pytest.raises(ConfigError, match="Telegram user ids are positive"):
        load_config(cfg, env={key: str(2**64)})
    assert load_config(cfg, env={key: "1, 22"})


def test_admin_block_refuses_a_config_admin(initialized):
    cfg, data = initialized  # admin_ids = [1]
    assert "is an admin" in one_line(tb("--config", str(cfg), "admin", "block", "1"), code=1)
    res = tb("--config", str(cfg), "admin", "sql", "SELECT count(*) FROM users WHERE status = 'blocked'")
    assert res.returncode == 0 and "\n0" in res.stdout
    assert tb("--config", str(cfg), "admin", "block", "2").returncode == 0
