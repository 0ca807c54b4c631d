"""`tradebot run` as the admin starts it: a real process against fake Telegram and exchange servers."""

import signal
import subprocess
import sys
import time

from tests.fixtures_run import TOKEN, start_run


def _config(tmp_path, telegram, exchange_url):
    """Run `tradebot init`, then point the config at the fake servers."""
    cfg = tmp_path / "config.toml"
    res = subprocess.run([sys.executable, "-m", "tradebot", "--config", str(cfg), "init", "--non-interactive",
                          "--data-dir", str(tmp_path / "data"), "--telegram-token", TOKEN],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    cfg.write_text(
        f'data_dir = "{tmp_path / "data"}"\n'
        f'[telegram]\ntoken = "{TOKEN}"\napi_url = "{telegram.api_url}"\nadmin_ids = [1]\npoll_timeout = 1\n'
        f'[exchanges.binance]\napi_url = "{exchange_url}"\ntestnet_api_url = "{exchange_url}"\n'
        f'[exchanges.bybit]\napi_url = "{exchange_url}"\ntestnet_api_url = "{exchange_url}"\n'
    )
    return cfg


def _wait_polling(telegram, since=0, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if len(telegram.calls_of("getUpdates")) > since:
            return
        time.sleep(0.05)
    raise AssertionError("tradebot run never started polling")


def test_run_serves_chat_refuses_second_instance_and_stops_cleanly(tmp_path, telegram, fake_exchange):
    cfg = _config(tmp_path, telegram, fake_exchange.url)
    first = start_run(cfg)
    try:
        _wait_polling(telegram)
        assert telegram.calls_of("setMyCommands"), "command menu not set at start"
        telegram.push_message(501, "/start", username="alice")
        assert "Welcome" in telegram.wait_for_replies(501, 1, timeout=15)[0]

        second = start_run(cfg)
        out, err = second.communicate(timeout=60)
        assert second.returncode == 1
        assert "already running" in err and f"pid {first.pid}" in err and "since" in err
        assert "Traceback" not in err

        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
        assert first.returncode == 0
        log = (tmp_path / "data" / "logs" / "bot.log").read_text()
        assert "stopped" in log
        assert TOKEN not in log and TOKEN.split(":")[1] not in log  # the token never reaches the log
    finally:
        if first.poll() is None:
            first.kill()


def test_bad_token_is_one_clear_line(tmp_path, telegram, fake_exchange):
    cfg = _config(tmp_path, telegram, fake_exchange.url)
    cfg.write_text(cfg.read_text().replace(TOKEN, "999:wrongtoken"))
    proc = start_run(cfg)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: telegram: cannot start the bot") and "401" in last
    assert "Traceback" not in err and "wrongtoken" not in err


def test_killed_run_does_not_leave_a_blocking_lock(tmp_path, telegram, fake_exchange):
    cfg = _config(tmp_path, telegram, fake_exchange.url)
    first = start_run(cfg)
    try:
        _wait_polling(telegram)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        polls = len(telegram.calls_of("getUpdates"))
        again = start_run(cfg)
        try:
            _wait_polling(telegram, since=polls + 1)
            assert again.poll() is None
        finally:
            again.send_signal(signal.SIGTERM)
            again.wait(timeout=60)
        assert again.returncode == 0
    finally:
        if first.poll() is None:
            first.kill()
