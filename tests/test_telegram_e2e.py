"""End to end: `tradebot run` wiring (tradebot.app.run_forever) with real TeleBot polling against the fake
Bot API over HTTP, and the real exchange hub + engine against the fake exchange.

One bot process is shared by the tests of this module (start-up costs seconds); every test uses its own
Telegram users so they cannot see each other's state.
"""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from tests.fakes.exchange import FakeExchange
from tests.fakes.telegram import FakeTelegram
from tests.fixtures_telegram import plain
from tradebot import events
from tradebot.models import ExchangeCredential, Notification, User, UserConfig, UserState

pytestmark = pytest.mark.slow

KEY, SECRET = "abc123key", "xyz789secret"  # the brief's example keys, accepted by the fake exchange




class Session:
    def __init__(self, fake: FakeTelegram, log_file, data_dir):
        self.fake = fake
        self.log_file = log_file
        self.data_dir = data_dir

    def say(self, user_id: int, text: str, n: int = 1, timeout: float = 15, **kw) -> list[str]:
        chat_id = kw.get("chat_id") or user_id
        before = len(self.fake.replies(chat_id))
        self.mid = self.fake.push_message(user_id, text, **kw)
        got = self.fake.wait_for_replies(chat_id, n, timeout=timeout, since=before)
        return [plain(t) for t in got]

    def one(self, user_id: int, text: str, **kw) -> str:
        replies = self.say(user_id, text, **kw)
        assert len(replies) == 1, replies
        return replies[0]


def set_equity(user_tid: int, symbol: str, equity: str) -> None:
    cfg = (
        UserConfig.select()
        .join(User)
        .where((User.telegram_id == user_tid) & (UserConfig.symbol == symbol))
        .get()
    )
    UserState.update(equity=Decimal(equity)).where(UserState.config == cfg.id).execute()


@pytest.fixture(scope="module")
def bot(tmp_path_factory):
    from tradebot.app import run_forever
    from tradebot.config import load_config
    from tradebot.vault import generate_key_file

    tmp = tmp_path_factory.mktemp("e2e")
    exchange = FakeExchange().start()
    exchange.add_account(KEY, SECRET, {"USDT": "100000"}, exchange="binance")
    exchange.add_account("bybitkey123", "bybitsecret456", {"USDT": "100000"}, exchange="bybit")
    fake = FakeTelegram().start()
    (tmp / "config.toml").write_text(
        f"""
data_dir = "{tmp}"
[telegram]
token = "{fake.token}"
api_url = "{fake.api_url}"
admin_ids = [900]
poll_timeout = 1
rate_limit_per_minute = 600
workers = 4
[database]
url = "sqlite:///{tmp}/tradebot.db"
[logging]
level = "DEBUG"
[trading]
default_interval_seconds = 86400
[exchanges.binance]
api_url = "{exchange.url}"
testnet_api_url = "{exchange.url}"
timeout_ms = 3000
[exchanges.bybit]
api_url = "{exchange.url}"
testnet_api_url = "{exchange.url}"
timeout_ms = 3000
"""
    )
    cfg = load_config(tmp / "config.toml", env={})
    generate_key_file(cfg.key_file)
    stop = threading.Event()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", run_forever(cfg, stop)), daemon=True)
    thread.start()
    fake.wait_for(lambda: fake.calls_of("getUpdates"), timeout=30)
    session = Session(fake, cfg.log_file, tmp)
    session.exchange = exchange
    yield session
    stop.set()
    thread.join(30)
    fake.stop()
    exchange.stop()
    assert not thread.is_alive()
    assert result.get("rc") == 0
    import gc

    assert gc.get_freeze_count() == 0  # unfrozen again at stop (the test process lives on)


def test_the_start_up_heap_is_kept_out_of_garbage_collections_while_running(bot):
    import gc

    # frozen right after start-up: a full collection at 20,000 pairs no longer walks ccxt's markets
    assert bot.fake.wait_for(lambda: gc.get_freeze_count() > 10_000, timeout=10)
    # and the WAL is checkpointed on a thread of its own, not inside the cycles' commits
    assert any(t.name == "wal-checkpoint" and t.is_alive() for t in threading.enumerate())


def test_command_menu_is_set_at_start(bot):
    sets = bot.fake.calls_of("setMyCommands")
    assert sets
    names = [c["command"] for c in sets[0].params["commands"]]
    for name in (
        "start",
        "connect",
        "addpair",
        "listpairs",
        "removepair",
        "start_trading",
        "stop_trading",
        "status",
        "config",
        "mystats",
        "position",
        "help",
    ):
        assert name in names


def test_single_pair_flow_from_the_brief(bot):
    u = 101
    assert bot.one(u, "/start").startswith("👋 Welcome! You've been registered.")
    connected = bot.one(u, f"/connect binance {KEY} {SECRET} true")
    connect_mid = bot.mid
    assert connected.startswith("✅ Exchange Connected")
    assert "deleted your message" in connected
    assert (u, connect_mid) in bot.fake.deleted
    assert bot.one(u, "/addpair BTC/USDT 1000") == (
        "✅ Trading Pair Added\nSymbol: BTC/USDT\nExchange: binance\nBalance: $1000.00"
    )
    assert bot.one(u, "/start_trading") == "🚀 Trading Started: BTC/USDT"
    set_equity(u, "BTC/USDT", "1050")
    assert bot.one(u, "/status") == (
        "📊 Your Trading Pairs (1)\n"
        "1. BTC/USDT 🟢 Running\n"
        "   Balance: $1000.00 → Equity: $1050.00\n"
        "   PnL: $50.00 (5.00%)"
    )
    # the secret: only ciphertext in the database, nowhere in replies or logs
    cred = ExchangeCredential.select().join(User).where(User.telegram_id == u).get()
    assert KEY not in cred.api_key_enc and SECRET not in cred.secret_enc
    for chat_text in bot.fake.replies(u):
        assert SECRET not in chat_text and KEY not in chat_text
    config = bot.one(u, "/config")
    assert "• binance (testnet), key …ey" in config  # mask("abc123key"): the last two characters only
    assert SECRET not in config


def test_multiple_pairs_flow_from_the_brief(bot):
    u = 102
    # As the brief writes it: no /start; in open access mode the first command registers the user.
    assert User.get_or_none(User.telegram_id == u) is None
    assert bot.one(u, f"/connect binance {KEY} {SECRET} true").startswith("✅ Exchange Connected")
    assert User.get(User.telegram_id == u).status == "active"
    for symbol, budget in (("BTC/USDT", 1000), ("ETH/USDT", 500), ("SOL/USDT", 300)):
        added = bot.one(u, f"/addpair {symbol} {budget}")
        assert added.startswith("✅ Trading Pair Added")  # the brief's short form is the first line's prefix
        assert f"Symbol: {symbol}" in added
    assert bot.one(u, "/listpairs") == (
        "📊 Your Trading Pairs (3)\n"
        "1. BTC/USDT 🔴 Stopped\n   Balance: $1000.00\n"
        "2. ETH/USDT 🔴 Stopped\n   Balance: $500.00\n"
        "3. SOL/USDT 🔴 Stopped\n   Balance: $300.00"
    )
    buttons = bot.fake.sent_to(u)[-1].reply_markup["inline_keyboard"]
    assert [b[0]["text"] for b in buttons] == ["▶️ Start BTC/USDT", "▶️ Start ETH/USDT", "▶️ Start SOL/USDT"]
    assert bot.one(u, "/start_trading") == "🚀 Trading Started\n3 pairs now trading."
    set_equity(u, "BTC/USDT", "1050")
    set_equity(u, "ETH/USDT", "480")
    set_equity(u, "SOL/USDT", "315")
    assert bot.one(u, "/status") == (
        "📊 Your Trading Pairs (3)\n"
        "1. BTC/USDT 🟢 Running\n   Equity: $1050.00 | PnL: $50.00 (5.00%)\n"
        "2. ETH/USDT 🟢 Running\n   Equity: $480.00 | PnL: -$20.00 (-4.00%)\n"
        "3. SOL/USDT 🟢 Running\n   Equity: $315.00 | PnL: $15.00 (5.00%)"
    )
    assert bot.one(u, "/stop_trading ETH/USDT") == "⏸️ Trading Stopped: ETH/USDT"
    assert bot.one(u, "/removepair SOL/USDT") == (
        "⚠️ Cannot remove SOL/USDT while trading is active.\nUse /stop_trading SOL/USDT first."
    )
    # the engine really runs the pairs
    ids = [c.id for c in UserConfig.select().join(User).where(User.telegram_id == u)]
    trading = {c.symbol: c.is_trading for c in UserConfig.select().where(UserConfig.id.in_(ids))}
    assert trading == {"BTC/USDT": True, "ETH/USDT": False, "SOL/USDT": True}


def test_inline_buttons_and_confirmations(bot):
    u = 103
    bot.one(u, "/start")
    bot.one(u, "/connect bybit paper")
    bot.one(u, "/addpair ethusdt 200")
    bot.one(u, "/listpairs")
    listing = bot.fake.sent_to(u)[-1]
    data = listing.reply_markup["inline_keyboard"][0][0]["callback_data"]
    bot.fake.push_callback(u, data, message_id=listing.message_id)
    bot.fake.wait_for(lambda: "🟢 Running" in listing.text)
    assert UserConfig.select().join(User).where(User.telegram_id == u).get().is_trading
    # /stop_trading of all pairs asks first
    ask = bot.one(u, "/stop_trading")
    assert ask.startswith("❓ Stop trading all 1 running pairs")
    confirm = bot.fake.sent_to(u)[-1]
    yes = confirm.reply_markup["inline_keyboard"][0][0]["callback_data"]
    bot.fake.push_callback(u, yes, message_id=confirm.message_id)
    bot.fake.wait_for(lambda: confirm.text.startswith("⏸️ Trading Stopped"))
    # /removepair asks first; Cancel keeps the pair
    assert bot.one(u, "/removepair ETH/USDT").startswith("❓ Remove ETH/USDT")
    ask = bot.fake.sent_to(u)[-1]
    bot.fake.push_callback(u, "cancel", message_id=ask.message_id)
    bot.fake.wait_for(lambda: ask.text == "Cancelled.")
    assert bot.one(u, "/removepair ETH/USDT").startswith("❓ Remove ETH/USDT")
    ask = bot.fake.sent_to(u)[-1]
    bot.fake.push_callback(
        u, ask.reply_markup["inline_keyboard"][0][0]["callback_data"], message_id=ask.message_id
    )
    bot.fake.wait_for(lambda: ask.text.startswith("🗑️ Trading Pair Removed: ETH/USDT"))
    assert not UserConfig.select().join(User).where(User.telegram_id == u).exists()


def test_connect_in_a_group_is_refused_and_the_secret_deleted(bot):
    u, group = 104, -1001
    bot.one(u, "/start")
    reply = bot.one(u, "/connect binance groupkey123 groupsecret456 true", chat_type="group", chat_id=group)
    assert "Message me directly" in reply
    assert (group, bot.mid) in bot.fake.deleted
    assert not ExchangeCredential.select().join(User).where(User.telegram_id == u).exists()


def test_two_users_at_once_are_isolated(bot):
    a, b = 105, 106
    for u in (a, b):
        bot.one(u, "/start")
        bot.one(u, f"/connect binance {KEY} {SECRET} true")
    bot.one(a, "/addpair BTC/USDT 100")
    bot.one(b, "/addpair ETH/USDT 200")
    # interleaved, concurrently in flight
    bot.fake.push_message(a, "/start_trading")
    bot.fake.push_message(b, "/start_trading")
    ra = bot.fake.wait_for_replies(a, 1, since=len(bot.fake.replies(a)) - 0 - 1)[-1]
    rb = bot.fake.wait_for_replies(b, 1, since=len(bot.fake.replies(b)) - 1)[-1]
    bot.fake.wait_for(lambda: "Started" in bot.fake.replies(a)[-1] and "Started" in bot.fake.replies(b)[-1])
    assert plain(bot.fake.replies(a)[-1]) == "🚀 Trading Started: BTC/USDT", ra
    assert plain(bot.fake.replies(b)[-1]) == "🚀 Trading Started: ETH/USDT", rb
    # b cannot see, stop, change or remove a's pair
    for text in (
        "/status BTC/USDT",
        "/stop_trading BTC/USDT",
        "/removepair BTC/USDT",
        "/config BTC/USDT",
        "/position BTC/USDT",
        "/set BTC/USDT stop_loss 3",
        "/reset BTC/USDT",
        "/start_trading BTC/USDT",
    ):
        assert "You have no pair BTC/USDT" in bot.one(b, text), text
    assert "BTC/USDT" not in bot.one(b, "/status")
    assert "Symbol: BTC/USDT" in bot.one(b, "/addpair btcusdt 50")  # b's own pair, a separate row
    assert "already have" in bot.one(b, "/addpair BTC/USDT 60")
    assert plain(bot.one(a, "/status BTC/USDT")).startswith("📊 Your Trading Pairs (1)\n1. BTC/USDT 🟢 Running")
    a_pair = UserConfig.select().join(User).where(User.telegram_id == a).get()
    assert a_pair.is_trading and a_pair.stop_loss_percent == Decimal("2")


def test_messages_of_one_user_are_handled_in_order(bot):
    u = 107
    bot.one(u, "/start")
    before = len(bot.fake.replies(u))
    words = ["on", "off"] * 10
    for w in words:
        bot.fake.push_message(u, f"/notify {w}")
    got = [plain(t) for t in bot.fake.wait_for_replies(u, len(words), since=before)]
    assert [t.startswith("🔔") for t in got] == [w == "on" for w in words]


def test_429_retry_after_is_honoured(bot):
    u = 108
    bot.one(u, "/start")
    bot.fake.inject_status("sendMessage", 429, retry_after=2)
    t0 = time.monotonic()
    reply = bot.one(u, "/help")
    assert reply.startswith("🤖 Commands")
    calls = [c for c in bot.fake.calls_of("sendMessage") if c.params.get("chat_id") == str(u)]
    failed = [c for c in calls if c.status == 429][-1]
    ok = [c for c in calls if c.status == 200][-1]
    assert ok.at - failed.at >= 2.0
    assert time.monotonic() - t0 >= 2.0


def test_5xx_is_retried(bot):
    u = 109
    bot.one(u, "/start")
    bot.fake.inject_status("sendMessage", 502, count=2)
    assert bot.one(u, "/help").startswith("🤖 Commands")
    statuses = [c.status for c in bot.fake.calls_of("sendMessage") if c.params.get("chat_id") == str(u)]
    assert statuses[-3:] == [502, 502, 200]


def test_dropped_polling_connection_does_not_stop_the_bot(bot):
    u = 110
    bot.fake.inject_drop("getUpdates", count=2)
    bot.fake.inject_status("getUpdates", 502, count=1)
    assert bot.one(u, "/start", timeout=30).startswith("👋 Welcome")
    assert bot.one(u, "/help").startswith("🤖 Commands")


def test_engine_events_reach_the_owner_and_respect_notify(bot):
    u = 111
    bot.one(u, "/start")
    bot.one(u, "/connect binance paper")
    bot.one(u, "/addpair BTC/USDT 500")
    user = User.get(User.telegram_id == u)
    cfg = UserConfig.get(UserConfig.user == user.id)
    before = len(bot.fake.replies(u))
    events.emit(
        user.id,
        "trade_opened",
        {
            "symbol": "BTC/USDT",
            "exchange": "binance",
            "amount": Decimal("0.01"),
            "price": Decimal("50000"),
            "cost": Decimal("500"),
            "fee": Decimal("0.5"),
        },
        cfg.id,
    )
    got = plain(bot.fake.wait_for_replies(u, 1, since=before)[0])
    assert got.startswith("🟢 Bought BTC/USDT (binance)")
    assert "Amount: 0.01 @ 50000" in got
    bot.one(u, "/notify off")
    before = len(bot.fake.replies(u))
    quiet = events.emit(
        user.id,
        "trade_closed",
        {
            "symbol": "BTC/USDT",
            "exchange": "binance",
            "amount": "0.01",
            "price": "51000",
            "pnl": "9.5",
            "pnl_percent": "1.9",
            "reason": "take_profit",
        },
        cfg.id,
    )
    events.emit(
        user.id,
        "breaker_tripped",
        {
            "scope": "pair",
            "symbol": "BTC/USDT",
            "reason": "3 losses in a row",
            "until": "2026-01-01T12:00:00",
        },
        cfg.id,
    )
    got = plain(bot.fake.wait_for_replies(u, 1, since=before)[0])
    assert got.startswith("⚡ Circuit breaker tripped")
    assert Notification.get_by_id(quiet.id).sent_at is not None  # skipped, not lost in a loop
    assert len(bot.fake.replies(u)) == before + 1


def test_no_secret_in_the_log(bot):
    u = 112
    bot.one(u, "/start")
    bot.one(u, "/connect binance wrongkey123456 wrongsecret789 true")  # rejected by the exchange
    bot.one(u, f"/connect binance {KEY} {SECRET} false")
    for handler in __import__("logging").getLogger().handlers:
        handler.flush()
    text = bot.log_file.read_text()
    assert text, "the log file is empty"
    for secret in (SECRET, "wrongsecret789", "groupsecret456", bot.fake.token.split(":")[1]):
        assert secret not in text


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_chart_refresh_export_and_daily_chart_over_the_bot_api(bot):
    """The real telebot uploads the PNG (multipart sendPhoto), replaces it on Refresh (editMessageMedia) and
    sends the CSV (sendDocument); candles come from the fake exchange through the shared candle cache."""
    from tradebot.charts.render import HEIGHT, WIDTH

    u = 113
    bot.one(u, "/start")
    bot.one(u, "/connect binance paper")
    bot.one(u, "/addpair ETH/USDT 500")
    bot.one(u, "/set ETH/USDT timeframe 1m")  # 150 candles of the fake's history (new pairs default to 1h)
    assert bot.one(u, "/chart ETH/USDT") == "ETH/USDT (binance) 1m, last 150 candles"
    photo = bot.fake.sent_to(u)[-1]
    assert _png_size(photo.photo) == (WIDTH, HEIGHT)
    (refresh,) = [b for row in photo.reply_markup["inline_keyboard"] for b in row]
    first = photo.photo
    bot.fake.push_callback(u, refresh["callback_data"], message_id=photo.message_id)
    bot.fake.wait_for(lambda: any(a.get("text") == "Refreshed" for a in bot.fake.callback_answers))
    assert bot.fake.calls_of("editMessageMedia")
    assert _png_size(photo.photo) == (WIDTH, HEIGHT) and photo.photo == first  # same candles: same picture

    user = User.get(User.telegram_id == u)
    cfg = UserConfig.get(UserConfig.user == user.id)
    from tradebot.models import Order, Trade

    order = Order.create(user=user.id, config=cfg.id, client_order_id="e2e-export-1", exchange="binance",
                         network="paper", symbol="ETH/USDT", side="buy", status="filled")
    Trade.create(user=user.id, config=cfg.id, order=order.id, exchange="binance", symbol="ETH/USDT", side="buy",
                 amount=Decimal("0.1"), price=Decimal("1500"), cost=Decimal("150"), fee=Decimal("0.15"),
                 client_order_id="e2e-export-1")
    assert bot.one(u, "/export").startswith("📄 tradebot-all-")
    doc = bot.fake.sent_to(u)[-1]
    assert doc.filename.endswith(".csv") and b"e2e-export-1" in doc.document and b"0.15" in doc.document

    bot.one(u, "/help")
    keyboard = bot.fake.sent_to(u)[-1].reply_markup["keyboard"]
    assert [b["text"] for b in keyboard[0]] == ["/status", "/position", "/chart"]

    bot.one(u, "/notify chart on")
    # added two hours ago on the fake exchange's market clock (its candles are dated in the data's past):
    # a pair added within the current candle has no curve to draw yet
    import datetime as dt

    added = dt.datetime.fromtimestamp(bot.exchange.now_ms / 1000 - 7200, dt.timezone.utc).replace(tzinfo=None)
    UserConfig.update(created_at=added).where(UserConfig.id == cfg.id).execute()
    before = len(bot.fake.replies(u))
    events.emit(user.id, "daily_summary", {"day": "2026-01-01", "pairs": [], "total_equity": "500",
                                           "total_pnl": "0"})
    bot.fake.wait_for_replies(u, 2, since=before, timeout=60)
    summary_chart = bot.fake.sent_to(u)[-1]
    assert summary_chart.photo is not None and _png_size(summary_chart.photo) == (WIDTH, HEIGHT)
