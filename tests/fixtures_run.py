"""A real `tradebot run` subprocess against the fake Telegram server: the token, the fake's fixture, the start."""

import os
import subprocess
import sys

import pytest

from tests.fakes.telegram import FakeTelegram

TOKEN = "123456:TESTTOKENabcdefghijklmnopqrstuvwxyz"


@pytest.fixture
def telegram():
    fake = FakeTelegram(token=TOKEN).start()
    yield fake
    fake.stop()


def start_run(cfg):
    """`tradebot --config CFG run` with no TRADEBOT_* variables of the test environment leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    return subprocess.Popen([sys.executable, "-m", "tradebot", "--config", str(cfg), "run"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
