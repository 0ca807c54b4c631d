"""The Bot API HTTP session: one connection-pool key per origin, not a CA-bundle stat per call."""

from __future__ import annotations

import requests.adapters

from tests.fakes.telegram import FakeTelegram
from tradebot.telegram.bot import _http_session

TOKEN = "123456:AAhttptesthttptesthttptesthttptes0"


def test_the_pool_key_is_built_once_per_origin(monkeypatch, tmp_path):
    fake = FakeTelegram(token=TOKEN).start()
    try:
        bundle = tmp_path / "ca.pem"
        bundle.write_text("")
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
        session = _http_session(fake.api_url)
        assert session.verify == str(bundle)
        stats = []
        real = requests.adapters.os.path.isdir
        monkeypatch.setattr(requests.adapters.os.path, "isdir", lambda p: stats.append(p) or real(p))
        url = f"{fake.api_url}/bot{TOKEN}/getMe"
        for _ in range(5):
            assert session.get(url, timeout=5).json()["ok"] is True
        assert stats == [str(bundle)]  # requests alone: one stat per call
    finally:
        fake.stop()
