"""A real `tradebot run` (against the fake Telegram and exchange servers) seen from the operator's side:
`tradebot status` (issue 9.10), `admin rotate-key` refused while it runs (10.3), admin rights synced from
the config at start (10.8)."""

from __future__ import annotations

import hashlib
import signal
import sqlite3
import time

import pytest

from tests.fixtures_cli import tb
from tests.fixtures_run import start_run
from tests.test_foundation_run import _config, _wait_polling
from tradebot import db as dbmod
from tradebot.health import HealthRecorder, format_status, read_status
from tradebot.instance_lock import InstanceLease


def _files_digest(data_dir):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(data_dir.glob("tradebot.db*"))}


def _wait_status(cfg, want: str, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        res = tb("--config", str(cfg), "status")
        if want in res.stdout:
            return res
        assert time.monotonic() < deadline, res.stdout + res.stderr
        time.sleep(0.3)


def test_status_rotate_key_and_admin_sync_around_a_running_bot(tmp_path, telegram, fake_exchange):
    cfg = _config(tmp_path, telegram, fake_exchange.url)  # admin_ids = [1]
    data = tmp_path / "data"
    db_file = data / "tradebot.db"
    # a former admin, still flagged in the database but no longer in telegram.admin_ids
    conn = sqlite3.connect(db_file)
    conn.execute("INSERT INTO users (telegram_id, username, status, is_admin, notify, created_at, updated_at) "
                 "VALUES (7, 'formeradmin', 'active', 1, 1, '2026-01-01 00:00:00', '2026-01-01 00:00:00')")
    conn.commit()
    conn.close()

    never = tb("--config", str(cfg), "status")
    assert never.returncode == 1 and "running:    no" in never.stdout

    key_before = (data / "secret.key").read_bytes()
    run = start_run(cfg)
    try:
        _wait_polling(telegram)
        res = _wait_status(cfg, "telegram:   reachable")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "running:    yes (host " in res.stdout and f"pid {run.pid}" in res.stdout
        assert "pairs:      0 active" in res.stdout and "cycle lag:  0 s" in res.stdout
        assert "heartbeat:" in res.stdout

        # 10.8: the flag is reset from the config at start
        conn = sqlite3.connect(f"file:{db_file}?mode=ro", uri=True)
        assert conn.execute("SELECT is_admin FROM users WHERE telegram_id = 7").fetchone()[0] == 0
        conn.close()

        # 10.3: no rotation under a running bot
        rot = tb("--config", str(cfg), "admin", "rotate-key")
        assert rot.returncode == 1
        lines = rot.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: refused: tradebot is already running")
        assert f"pid {run.pid}" in lines[0] and "stop `tradebot run` first" in lines[0]
        assert (data / "secret.key").read_bytes() == key_before
        assert not list(data.glob("secret.key.*")), "no key backup for a refused rotation"

        blocked = tb("--config", str(cfg), "admin", "block", "@formeradmin")
        assert blocked.returncode == 0, blocked.stderr
        assert "blocked 7" in blocked.stdout

        run.send_signal(signal.SIGTERM)
        run.wait(timeout=60)
        assert run.returncode == 0
    finally:
        if run.poll() is None:
            run.kill()

    before = _files_digest(data)
    stopped = tb("--config", str(cfg), "status")
    assert stopped.returncode == 1
    assert stopped.stdout.startswith("running:    no; stopped cleanly")
    assert _files_digest(data) == before, "status must not write"
    rot = tb("--config", str(cfg), "admin", "rotate-key")
    assert rot.returncode == 0, rot.stderr
    assert (data / "secret.key").read_bytes() != key_before


def test_status_of_a_crashed_run_is_stale(tmp_path, telegram, fake_exchange):
    cfg = _config(tmp_path, telegram, fake_exchange.url)
    cfg.write_text(cfg.read_text() + "\n[database]\nlease_seconds = 3\n")
    run = start_run(cfg)
    try:
        _wait_polling(telegram)
        _wait_status(cfg, "running:    yes")
        run.send_signal(signal.SIGKILL)
        run.wait(30)
        res = _wait_status(cfg, "stale", timeout=15)
        assert res.returncode == 1
        assert f"pid {run.pid}" in res.stdout
    finally:
        if run.poll() is None:
            run.kill()


def test_status_without_a_database_creates_nothing(tmp_path):
    data = tmp_path / "nothing"
    res = tb("status", env_extra={"TRADEBOT_DATA_DIR": str(data)})
    assert res.returncode == 1
    assert "no database yet" in res.stdout
    assert not data.exists() or not list(data.iterdir())


@pytest.mark.pg
def test_status_reads_health_on_postgres(pg_url):
    dbmod.open_database(pg_url)
    dbmod.migrate()
    st = read_status(pg_url)
    assert not st.running and "no `tradebot run`" in st.message
    lease = InstanceLease(pg_url, ttl=30)
    lease.acquire()
    try:
        HealthRecorder(lease, lambda: 3, lambda: False).record()
        st = read_status(pg_url)
        assert st.running and st.active_pairs == 3 and st.telegram_ok is False and st.cycle_lag == 0
        text = "\n".join(format_status(st))
        assert "pairs:      3 active" in text and "telegram:   UNREACHABLE" in text
        assert 0 < st.expires_in <= 30 and st.heartbeat_age < 5
        # `tradebot run` passes the engine's own figure (from memory, no scan of every pair's state)
        HealthRecorder(lease, lambda: 3, None, cycle_lag=lambda: 7).record()
        assert read_status(pg_url).cycle_lag == 7
    finally:
        lease.release()
        dbmod.close_database()
    assert read_status(pg_url).message == "stopped cleanly"


def test_dockerfile_pins_its_base_by_digest_and_checks_health():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "Dockerfile").read_text()
    base = re.search(r"^FROM (\S+)", text, re.M).group(1)
    assert re.fullmatch(r"python:3\.11[\w.-]*@sha256:[0-9a-f]{64}", base), base
    assert 'HEALTHCHECK' in text and '["tradebot", "status"]' in text
