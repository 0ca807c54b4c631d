"""Telegram-area fixtures: the fake Bot API server, a recording sender, and a chat harness that drives
the real Dispatcher (services + handlers) with telebot Update objects, without HTTP.

    def test_x(chat):
        assert chat.send(1, "/start") == ["👋 Welcome! You've been registered.\\n..."]
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import re
import time
from decimal import Decimal

import pytest
from telebot import types, util

from tests.fakes.telegram import FakeTelegram
from tradebot.config import load_config
from tradebot.exchange.errors import AuthenticationFailed, PermissionDenied
from tradebot.exchange.rules import resolve_symbol

SYMBOLS = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "BNB/USDT", "XRP/USDT", "DOGE/USDT", "ETH/BTC", "BTC/USDC"]


class StubMarketData:
    """Seeded synthetic closed candles per (symbol, timeframe), ending at the last closed candle of `now_ms`.
    Counts the fetches it answers."""

    max_candles = 300

    def __init__(self, now_ms: int = 1_767_225_600_000):
        self.now = now_ms
        self.requests: list[tuple] = []

    def now_ms(self) -> int:
        return self.now

    def candles(self, exchange, network, symbol, timeframe, limit=100):
        import random

        from tradebot.exchange.market_data import timeframe_ms
        from tradebot.strategy.base import Candle

        self.requests.append((exchange, network, symbol, timeframe, limit))
        tf = timeframe_ms(timeframe)
        limit = min(limit, self.max_candles)
        end = self.now - self.now % tf  # open time of the candle in progress
        rng = random.Random(f"{symbol}/{timeframe}")
        price = 100.0 + len(symbol)
        out = []
        for i in range(self.max_candles):
            ts = end - (self.max_candles - i) * tf
            o = price
            price = max(1.0, price * (1 + rng.gauss(0, 0.004)))
            out.append(Candle(ts, o, max(o, price) * 1.001, min(o, price) * 0.999, price, 10.0))
        return out[-limit:]


class StubHub:
    """Just enough of ExchangeHub for chat tests: markets, symbol resolution, credential check, candles."""

    def __init__(self, symbols=SYMBOLS):
        self.market_data = StubMarketData()
        self._markets = {
            s: {"id": s.replace("/", ""), "symbol": s, "spot": True, "active": True} for s in symbols
        }
        self.credential_checks: list[tuple] = []

    def markets(self, exchange, network):
        return self._markets

    def resolve_symbol(self, exchange, network, text):
        return resolve_symbol(self._markets, text, exchange)

    def check_credentials(self, exchange, network, api_key, secret):
        self.credential_checks.append((exchange, network))
        if api_key.startswith("bad") or secret.startswith("bad"):
            raise AuthenticationFailed(f"{exchange.title()} rejected the API key or secret.")
        return {"can_trade": True}

    def check_futures_permission(self, exchange, network, api_key, secret):
        self.credential_checks.append((exchange, network, "futures"))
        if api_key.startswith("nofut"):
            raise PermissionDenied(f"The {exchange.title()} API key cannot trade USDⓈ-M futures: enable Futures.")


class StubVault:
    def encrypt(self, text: str) -> str:
        return "enc:" + text[::-1]

    def decrypt(self, token: str) -> str:
        return token[4:][::-1]


class RecordingSender:
    """The Sender interface, recording instead of calling Telegram."""

    def __init__(self):
        self.sent: list[tuple[int, str, object]] = []
        self.edits: list[tuple[int, int, str, object]] = []
        self.deleted: list[tuple[int, int]] = []
        self.answers: list[tuple[str, str | None]] = []
        self.photos: list[tuple[int, bytes, str | None, object]] = []
        self.photo_edits: list[tuple[int, int, bytes, object]] = []
        self.documents: list[tuple[int, str, bytes, str | None]] = []
        self._ids = itertools.count(1000)
        self.fail_delete = False

    def send(self, chat_id, text, reply_markup=None, parse_mode="HTML"):
        assert isinstance(text, str) and text.strip(), "empty reply"
        parts = util.smart_split(text, 4096) if len(text) > 4096 else [text]
        out = []
        for i, part in enumerate(parts):
            assert len(part) <= 4096
            self.sent.append((chat_id, part, reply_markup if i == len(parts) - 1 else None))
            out.append(next(self._ids))
        return out

    def edit(self, chat_id, message_id, text, reply_markup=None, parse_mode="HTML"):
        self.edits.append((chat_id, message_id, text, reply_markup))

    def send_photo(self, chat_id, png, caption=None, reply_markup=None, parse_mode="HTML"):
        assert isinstance(png, bytes) and png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
        self.photos.append((chat_id, png, caption, reply_markup))
        self.sent.append((chat_id, caption or "[photo]", reply_markup))
        return next(self._ids)

    def edit_photo(self, chat_id, message_id, png, caption=None, reply_markup=None, parse_mode="HTML"):
        assert isinstance(png, bytes) and png[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
        self.photo_edits.append((chat_id, message_id, png, reply_markup))

    def send_document(self, chat_id, filename, data, caption=None, parse_mode="HTML"):
        self.documents.append((chat_id, filename, data, caption))
        self.sent.append((chat_id, caption or "[document]", None))
        return next(self._ids)

    def delete(self, chat_id, message_id):
        if self.fail_delete:
            return False
        self.deleted.append((chat_id, message_id))
        return True

    def answer_callback(self, callback_id, text=None):
        self.answers.append((callback_id, text))

    def texts(self, chat_id) -> list[str]:
        return [t for c, t, _ in self.sent if c == chat_id]


def make_cfg(**telegram):
    """The real Config (defaults) with telegram settings overridden."""
    cfg = load_config(None, env={})
    tg = dataclasses.replace(cfg.telegram, token="123456:TEST-token-abcdefghijklmnopqrstuvwxyz", **telegram)
    return dataclasses.replace(cfg, telegram=tg)


@dataclasses.dataclass
class StubApp:
    cfg: object
    vault: object
    hub: object
    manager: object


def build_manager(hub, vault):
    """The real BotManager, not started: start/stop write the database, no scheduler runs."""
    from tradebot.engine.manager import BotManager

    return BotManager(hub, lambda name: None, vault=vault, max_workers=1)


class ChatHarness:
    """Drives Dispatcher.handle_update synchronously; `send` returns the replies it produced."""

    def __init__(self, cfg, hub=None, vault=None, manager=None):
        from tradebot.services import Services
        from tradebot.telegram.handlers import Dispatcher

        self.hub = hub or StubHub()
        self.vault = vault or StubVault()
        self.manager = manager or build_manager(self.hub, self.vault)
        self.app = StubApp(cfg, self.vault, self.hub, self.manager)
        self.sender = RecordingSender()
        self.services = Services(self.app)
        self.dispatcher = Dispatcher(self.services, self.sender, cfg, bot_username="tradebot_test_bot")
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)

    def update(self, user_id, text, chat_type="private", username=None, first_name=None, chat_id=None):
        chat_id = user_id if chat_id is None else chat_id
        message_id = next(self._message_ids)
        sender = {"id": user_id, "is_bot": False, "first_name": first_name or f"User{user_id}"}
        if username:
            sender["username"] = username
        data = {
            "update_id": next(self._update_ids),
            "message": {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": chat_type},
                "from": sender,
                "text": text,
            },
        }
        return types.Update.de_json(data), message_id

    def send(self, user_id, text, **kw) -> list[str]:
        chat_id = kw.get("chat_id") or user_id
        before = len(self.sender.texts(chat_id))
        update, self.last_message_id = self.update(user_id, text, **kw)
        self.dispatcher.handle_update(update)
        return self.sender.texts(chat_id)[before:]

    def press(self, user_id, data, message_id=1, chat_id=None):
        """An inline button press; returns (edits, answers) it produced."""
        chat_id = user_id if chat_id is None else chat_id
        e0, a0 = len(self.sender.edits), len(self.sender.answers)
        payload = {
            "update_id": next(self._update_ids),
            "callback_query": {
                "id": f"cb{next(self._update_ids)}",
                "from": {"id": user_id, "is_bot": False, "first_name": f"User{user_id}"},
                "message": {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": {"id": chat_id, "type": "private"},
                    "text": "x",
                },
                "chat_instance": "1",
                "data": data,
            },
        }
        self.dispatcher.handle_update(types.Update.de_json(payload))
        return self.sender.edits[e0:], self.sender.answers[a0:]

    def last_markup(self, chat_id):
        for c, _t, m in reversed(self.sender.sent):
            if c == chat_id:
                return m
        return None

    def buttons(self, chat_id) -> list[tuple[str, str]]:
        markup = self.last_markup(chat_id)
        if markup is None:
            return []
        return [(b.text, b.callback_data) for row in markup.keyboard for b in row]


@pytest.fixture
def tg_cfg():
    return make_cfg(admin_ids=[900], rate_limit_per_minute=1000)


@pytest.fixture
def chat(database, tg_cfg):
    return ChatHarness(tg_cfg)


@pytest.fixture
def fake_telegram():
    fake = FakeTelegram().start()
    yield fake
    fake.stop()


D = Decimal


def plain(text: str) -> str:
    """A reply as the user reads it: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", text))


def one(chat, user, text, **kw) -> str:
    replies = chat.send(user, text, **kw)
    assert len(replies) == 1, replies
    return plain(replies[0])


def setup_user(chat, user=1, exchange="binance", pairs=()):
    chat.send(user, "/start")
    chat.send(user, f"/connect {exchange} paper")
    for symbol, budget in pairs:
        assert "Trading Pair Added" in one(chat, user, f"/addpair {symbol} {budget}")
