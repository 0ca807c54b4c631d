"""`tradebot run` stops at once: a real process against the fake Telegram and exchange servers."""

import signal
import time

import pytest

from tests.fixtures_run import TOKEN, start_run

pytestmark = pytest.mark.slow

def _config(tmp_path, telegram, exchange_url, poll_timeout=20):
    data = tmp_path / "data"
    cfg = tmp_path / "config.toml"
    cfg.write_text(
        f'data_dir = "{data}"\n'
        f'[telegram]\ntoken = "{TOKEN}"\napi_url = "{telegram.api_url}"\nadmin_ids = [1]\n'
        f"poll_timeout = {poll_timeout}\n"
        f'[exchanges.binance]\napi_url = "{exchange_url}"\ntestnet_api_url = "{exchange_url}"\ntimeout_ms = 60000\n'
        f'[exchanges.bybit]\napi_url = "{exchange_url}"\ntestnet_api_url = "{exchange_url}"\n'
    )
    from tradebot.vault import generate_key_file

    generate_key_file(data / "secret.key")
    return cfg


def _wait_long_poll(telegram, timeout=30):
    """Until a getUpdates is open on the fake server (nothing queued, so it waits its poll_timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if telegram.calls_of("getUpdates"):
            time.sleep(0.5)  # well inside the 20 s long poll
            return
        time.sleep(0.05)
    raise AssertionError("tradebot run never started polling")


def test_sigterm_during_a_long_poll_exits_at_once(tmp_path, telegram, fake_exchange):
    proc = start_run(_config(tmp_path, telegram, fake_exchange.url))
    try:
        _wait_long_poll(telegram)
        polls = len(telegram.calls_of("getUpdates"))
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        took = time.monotonic() - sent
        assert proc.returncode == 0, proc.stderr.read()
        assert took < 3.0, f"took {took:.1f}s to stop"  # it used to wait out the 20 s long poll
        assert len(telegram.calls_of("getUpdates")) == polls  # no new poll (it would confirm updates)
        log = (tmp_path / "data" / "logs" / "bot.log").read_text()
        assert "stopped" in log
    finally:
        if proc.poll() is None:
            proc.kill()


def test_an_update_arriving_during_shutdown_is_not_lost(tmp_path, telegram, fake_exchange):
    """A message that the abandoned long poll brings in is not confirmed: the next start answers it."""
    cfg = _config(tmp_path, telegram, fake_exchange.url)
    proc = start_run(cfg)
    try:
        _wait_long_poll(telegram)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        telegram.push_message(501, "/start")  # arrives after the stop: nobody confirmed it
        assert telegram.pending_updates() == 1
        again = start_run(cfg)
        try:
            assert "Welcome" in telegram.wait_for_replies(501, 1, timeout=30)[0]
        finally:
            again.send_signal(signal.SIGTERM)
            again.wait(timeout=60)
        assert again.returncode == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_a_second_interrupt_forces_the_exit(tmp_path, telegram, fake_exchange):
    fake_exchange.add_account("slowkey1234567", "slowsecret7654321", {"USDT": "1000"}, exchange="binance")
    proc = start_run(_config(tmp_path, telegram, fake_exchange.url, poll_timeout=1))
    try:
        _wait_long_poll(telegram)
        telegram.push_message(1, "/start")
        assert "Welcome" in telegram.wait_for_replies(1, 1, timeout=30)[0]
        # /connect checks the keys with the exchange, which now answers after 30 s: a chat task in flight
        fake_exchange.latency_ms = 30_000
        telegram.push_message(1, "/connect binance slowkey1234567 slowsecret7654321 true")
        telegram.wait_for(lambda: not telegram.pending_updates(), timeout=30)
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        time.sleep(1.0)
        assert proc.poll() is None  # still waiting for the /connect in flight
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
        assert time.monotonic() - sent < 3.0
        assert "forcing exit" in err
        assert proc.returncode == 130
    finally:
        if proc.poll() is None:
            proc.kill()
