"""The admin's first steps, as a user meets them: through the installed `tradebot` command."""

import os
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from tests.fixtures_cli import tb
from tradebot import db as dbmod
from tradebot.instance_lock import InstanceLease, InstanceLocked


def test_version_and_help():
    res = tb("--version")
    assert res.returncode == 0 and "tradebot, version" in res.stdout
    res = tb("--help")
    for cmd in ("init", "run", "admin", "db"):
        assert cmd in res.stdout


def test_init_creates_config_key_and_database(initialized):
    cfg, data = initialized
    assert stat.S_IMODE(os.stat(data / "secret.key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cfg).st_mode) == 0o600  # holds the bot token
    assert (data / "tradebot.db").exists()
    text = cfg.read_text()
    assert 'token = "123:abc"' in text and "admin_ids = [1]" in text
    key_before = (data / "secret.key").read_bytes()
    res = tb("--config", str(cfg), "init", "--non-interactive", "--data-dir", str(data), "--force")
    assert res.returncode == 0, res.stderr
    assert (data / "secret.key").read_bytes() == key_before  # never overwritten
    res = tb("--config", str(cfg), "init", "--non-interactive", "--data-dir", str(data))
    assert res.returncode == 2 and "already exists" in res.stderr


def test_admin_users_and_sql(initialized):
    cfg, _ = initialized
    res = tb("--config", str(cfg), "admin", "users")
    assert res.returncode == 0, res.stderr
    assert "telegram id" in res.stdout and "(0 rows)" in res.stdout
    res = tb("--config", str(cfg), "admin", "sql", "SELECT * FROM user_overview")
    assert res.returncode == 0 and "total_equity" in res.stdout
    res = tb("--config", str(cfg), "admin", "sql", "DELETE FROM users")
    assert res.returncode == 2 and "refused" in res.stderr
    assert tb("--config", str(cfg), "admin", "approve", "42").returncode == 0
    res = tb("--config", str(cfg), "admin", "users")
    assert "42" in res.stdout and "active" in res.stdout and "(1 row)" in res.stdout
    res = tb("--config", str(cfg), "admin", "block", "42")
    assert res.returncode == 0
    assert "blocked" in tb("--config", str(cfg), "admin", "user", "42").stdout
    assert tb("--config", str(cfg), "admin", "user", "@nobody").returncode == 1


def test_backup_and_rotate(initialized, tmp_path):
    cfg, data = initialized
    assert tb("--config", str(cfg), "admin", "approve", "4242").returncode == 0
    res = tb("--config", str(cfg), "db", "backup", str(tmp_path / "b.db"))
    assert res.returncode == 0
    import sqlite3

    assert sqlite3.connect(tmp_path / "b.db").execute("SELECT telegram_id FROM users").fetchall() == [(4242,)]
    res = tb("--config", str(cfg), "admin", "rotate-key")
    assert res.returncode == 0, res.stderr
    assert list(data.glob("secret.key.*.bak"))
    res = tb("db", "backup", "x.db", env_extra={"TRADEBOT_DATABASE_URL": "postgresql://u:p@h:5433/prod"})
    assert "pg_dump" in res.stdout and "--port=5433" in res.stdout and "p@" not in res.stdout


@pytest.mark.parametrize("content, needle", [
    ("[risk]\nstop_loss_percent = 'x'\n", "risk.stop_loss_percent"),
    ("[database]\nurl = 'oracle://x'\n", "database.url"),
    ("[telegram\n", "invalid TOML"),
])
def test_bad_config_one_line_exit_2(tmp_path, content, needle):
    cfg = tmp_path / "c.toml"
    cfg.write_text(content)
    res = tb("--config", str(cfg), "admin", "users")
    assert res.returncode == 2
    assert needle in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_unreachable_database_is_one_line(tmp_path):
    port = socket.socket()
    port.bind(("127.0.0.1", 0))
    free = port.getsockname()[1]
    port.close()
    res = tb("admin", "users", env_extra={"TRADEBOT_DATABASE_URL": f"postgresql://u:secretpw@127.0.0.1:{free}/x",
                                          "TRADEBOT_DATA_DIR": str(tmp_path)})
    assert res.returncode == 2 and "database.url" in res.stderr and "secretpw" not in res.stderr
    assert "Traceback" not in res.stderr


def test_run_without_token_explains(tmp_path):
    res = tb("run", env_extra={"TRADEBOT_DATA_DIR": str(tmp_path)})
    assert res.returncode == 2
    assert "BotFather" in res.stderr and "TRADEBOT_TELEGRAM_TOKEN" in res.stderr


HOLD = """
import sys, time
from tradebot import db
from tradebot.instance_lock import InstanceLease
db.open_database(sys.argv[1]); db.migrate()
handle = InstanceLease(sys.argv[1])
handle.acquire()
print("locked", flush=True)
time.sleep(60)
"""


def _lock_roundtrip(url):
    holder = subprocess.Popen([sys.executable, "-c", HOLD, url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        dbmod.open_database(url)
        with pytest.raises(InstanceLocked) as info:
            InstanceLease(url).acquire()
        message = str(info.value)
        assert f"pid {holder.pid}" in message and socket.gethostname() in message and "since" in message
        holder.send_signal(signal.SIGKILL)  # a killed holder must not block forever
        holder.wait(10)
        deadline = time.monotonic() + 10
        while True:
            try:
                handle = InstanceLease(url)
                handle.acquire()
                break
            except InstanceLocked:
                assert time.monotonic() < deadline, "stale lock never released"
                time.sleep(0.1)
        handle.release()
    finally:
        holder.kill()
        dbmod.close_database()


def test_instance_lock_sqlite(sqlite_url):
    dbmod.open_database(sqlite_url)
    dbmod.migrate()
    dbmod.close_database()
    _lock_roundtrip(sqlite_url)


@pytest.mark.pg
def test_instance_lock_postgres(pg_url):
    _lock_roundtrip(pg_url)
