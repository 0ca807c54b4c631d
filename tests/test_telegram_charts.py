"""/chart, /equity, /trades, /export and the chart buttons through the real Dispatcher and Services (candles
from a seeded stub market data; rows booked in the user's own tables). PNGs are checked as images of the
stated size, and the plotted fills as the data handed to the renderer, not pixel by pixel."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from decimal import Decimal

import pytest

from tests.fixtures_telegram import one, plain, setup_user
from tradebot.charts import render
from tradebot.models import Order, Position, RiskEvent, Trade, User, UserConfig, UserState

PNG = b"\x89PNG\r\n\x1a\n"


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG and data[12:16] == b"IHDR", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def config_of(tid: int, symbol: str) -> UserConfig:
    return (UserConfig.select().join(User).where((User.telegram_id == tid) & (UserConfig.symbol == symbol)).get())


def book_round_trip(config: UserConfig, opened: dt.datetime, closed: dt.datetime | None, buy_price: str,
                    sell_price: str | None = None, amount: str = "0.5", reason: str = "take_profit"):
    """A buy (and a sell) as the engine books them: order, trade and position rows of the pair's owner."""
    amount_d, buy = Decimal(amount), Decimal(buy_price)
    pos = Position.create(user=config.user_id, config=config.id, exchange=config.exchange, symbol=config.symbol,
                          amount=amount_d, entry_price=buy, cost_basis=amount_d * buy,
                          stop_loss_price=buy * Decimal("0.98"), take_profit_price=buy * Decimal("1.05"),
                          opened_at=opened)
    trades = []
    for side, price, at in (("buy", buy, opened), ("sell", Decimal(sell_price or 0), closed)):
        if at is None:
            continue
        coid = f"t{config.id}-{side}-{int(at.timestamp())}"
        order = Order.create(user=config.user_id, config=config.id, client_order_id=coid, exchange=config.exchange,
                             network="paper", symbol=config.symbol, side=side, status="filled",
                             fee=Decimal("0.1"), fee_currency="USDT", reason=reason if side == "sell" else "signal")
        pnl = (price - buy) * amount_d - Decimal("0.2") if side == "sell" else None
        trades.append(Trade.create(user=config.user_id, config=config.id, order=order.id, position=pos.id,
                                   exchange=config.exchange, symbol=config.symbol, side=side, amount=amount_d,
                                   price=price, cost=amount_d * price, fee=Decimal("0.1"), pnl=pnl,
                                   reason=order.reason, client_order_id=coid, executed_at=at))
    if closed is not None:
        Position.update(status="closed", exit_price=Decimal(sell_price), realized_pnl=trades[-1].pnl,
                        close_reason=reason, closed_at=closed).where(Position.id == pos.id).execute()
    return pos, trades


def ago(chat, minutes: int) -> dt.datetime:
    now = dt.datetime.fromtimestamp(chat.hub.market_data.now / 1000, dt.timezone.utc).replace(tzinfo=None)
    return now - dt.timedelta(minutes=minutes)


@pytest.fixture
def two_users(chat):
    setup_user(chat, 1, pairs=[("BTC/USDT", 1000), ("ETH/USDT", 500)])
    setup_user(chat, 2, pairs=[("BTC/USDT", 2000)])
    # the fills below are minutes apart: draw them on 1m candles (new pairs default to 1h since presets/evaluate)
    UserConfig.update(timeframe="1m", interval_seconds=60).execute()
    return chat


def test_chart_sends_a_png_of_the_stated_size_with_the_users_own_fills(two_users, monkeypatch):
    chat = two_users
    mine = config_of(1, "BTC/USDT")
    theirs = config_of(2, "BTC/USDT")
    _pos, my_trades = book_round_trip(mine, ago(chat, 90), ago(chat, 30), "100", "104")
    book_round_trip(mine, ago(chat, 20), None, "103")  # open: entry, stop-loss and take-profit lines
    book_round_trip(theirs, ago(chat, 60), ago(chat, 10), "99", "101")
    handed = []
    real = render.render_price
    monkeypatch.setattr("tradebot.services.charts.render_price", lambda data: handed.append(data) or real(data))

    assert chat.send(1, "/chart BTC/USDT") == ["BTC/USDT (binance) 1m, last 150 candles"]
    (chat_id, png, _caption, markup) = chat.sender.photos[-1]
    assert chat_id == 1 and png_size(png) == (render.WIDTH, render.HEIGHT)
    data = handed[-1]
    assert len(data.ts) == 150 and data.timeframe == "1m"
    theirs_ids = {t.id for t in Trade.select().where(Trade.config == theirs.id)}
    assert {m.trade_id for m in data.markers} == {t.id for t in my_trades} | {
        t.id for t in Trade.select().where((Trade.config == mine.id) & (Trade.id.not_in([x.id for x in my_trades])))}
    assert not theirs_ids & {m.trade_id for m in data.markers}
    assert [m.kind for m in data.markers] == ["buy", "sell", "buy"]
    assert [lv.label for lv in data.levels] == ["entry", "stop-loss", "take-profit"]
    assert data.levels[0].price == Decimal("103")
    assert set(data.lines) == {"EMA 12", "EMA 26"} and all(v is not None for v in data.lines["EMA 12"])
    assert [(b.text, b.callback_data) for row in markup.keyboard for b in row] == [("🔄 Refresh", f"chr:{mine.id}:")]


def test_futures_chart_marks_long_and_short_entries_and_exits(two_users, monkeypatch):
    chat = two_users
    assert "Trading Pair Added" in one(chat, 1, "/addpair BTC/USDT 1000 futures")
    fut = UserConfig.get(UserConfig.market_type == "futures")
    UserConfig.update(timeframe="1m", interval_seconds=60).where(UserConfig.id == fut.id).execute()
    book_round_trip(fut, ago(chat, 90), ago(chat, 60), "100", "104")  # a long: buy, then sell
    pos, (opened, closed) = book_round_trip(fut, ago(chat, 40), ago(chat, 20), "103", "101")
    Position.update(side="short").where(Position.id == pos.id).execute()  # a short: sell to open, buy to close
    Trade.update(side="sell").where(Trade.id == opened.id).execute()
    Trade.update(side="buy").where(Trade.id == closed.id).execute()
    handed = []
    real = render.render_price
    monkeypatch.setattr("tradebot.services.charts.render_price", lambda data: handed.append(data) or real(data))
    chat.send(1, "/chart btcusdt.p")
    assert [m.kind for m in handed[-1].markers] == ["long_entry", "long_exit", "short_entry", "short_exit"]
    chat.send(1, "/chart BTC/USDT")  # the spot pair of the same symbol: its own (no) fills
    assert handed[-1].markers == []


def test_same_chart_twice_is_drawn_once_and_a_new_fill_draws_again(two_users):
    chat = two_users
    chat.send(1, "/chart BTC/USDT 5m")
    chat.send(1, "/chart btcusdt 5m")
    worker = chat.services.chart_worker
    assert worker.renders == 1 and chat.sender.photos[-1][1] == chat.sender.photos[-2][1]
    book_round_trip(config_of(1, "BTC/USDT"), ago(chat, 40), None, "101")
    chat.send(1, "/chart BTC/USDT 5m")
    assert worker.renders == 2


def test_chart_timeframe_and_errors(two_users):
    chat = two_users
    assert chat.send(1, "/chart ETH/USDT 1h") == ["ETH/USDT (binance) 1h, last 150 candles"]
    assert chat.hub.market_data.requests[-1][2:4] == ("ETH/USDT", "1h")
    assert "Timeframe must be one of" in one(chat, 1, "/chart BTC/USDT 7m")
    assert "You have no BTC" not in one(chat, 1, "/chart DOGE/USDT") and len(chat.sender.photos) == 1
    assert one(chat, 3, "/chart")  # a stranger: refused, no photo
    assert len(chat.sender.photos) == 1


def test_chart_without_symbol_offers_a_pick_list_of_own_pairs(two_users):
    chat = two_users
    assert plain(chat.send(1, "/chart 15m")[0]) == "📈 Which pair do you want a chart of?"
    btc, eth = config_of(1, "BTC/USDT"), config_of(1, "ETH/USDT")
    assert chat.buttons(1) == [("BTC/USDT", f"cp:{btc.id}:15m"), ("ETH/USDT", f"cp:{eth.id}:15m"),
                               ("Cancel", "cancel:1")]
    edits, answers = chat.press(1, f"cp:{eth.id}:15m")
    assert chat.sender.photos[-1][2] == "ETH/USDT (binance) 15m, last 150 candles"
    assert "ETH/USDT" in edits[-1][2]
    # user 2 has one pair: no question
    assert chat.send(2, "/chart") == ["BTC/USDT (binance) 1m, last 150 candles"]


def test_forged_chart_buttons_never_show_another_users_pair(two_users):
    chat = two_users
    theirs = config_of(2, "BTC/USDT")
    photos = len(chat.sender.photos)
    for data in (f"cp:{theirs.id}", f"chr:{theirs.id}:", f"chr:{theirs.id}:1h", f"pos:{theirs.id}",
                 f"st:{theirs.id}", f"rmq:{theirs.id}", f"stop1:{theirs.id}", "rfs:2", "rfp:2", "rfs:2:binance"):
        edits, answers = chat.press(1, data)
        assert not edits, data
        assert answers and answers[-1][1], data  # a refusal toast
    assert len(chat.sender.photos) == photos and not chat.sender.photo_edits
    # in a group: user 1 presses the buttons user 2 got
    for data in (f"cp:{theirs.id}", "rfs:2", "rfp:2"):
        edits, answers = chat.press(1, data, chat_id=-100)
        assert not edits and "not for you" in answers[-1][1], data


def test_chart_refresh_replaces_the_picture_in_place(two_users):
    chat = two_users
    btc = config_of(1, "BTC/USDT")
    chat.send(1, "/chart BTC/USDT")
    edits, answers = chat.press(1, f"chr:{btc.id}:", message_id=77)
    assert answers[-1][1] == "Refreshed"
    (chat_id, message_id, png, markup) = chat.sender.photo_edits[-1]
    assert (chat_id, message_id) == (1, 77) and png_size(png) == (render.WIDTH, render.HEIGHT)


def test_equity_curve_with_buy_and_hold_and_breaker_trips(two_users, monkeypatch):
    chat = two_users
    btc = config_of(1, "BTC/USDT")
    UserConfig.update(created_at=ago(chat, 240)).where(UserConfig.user == btc.user_id).execute()
    book_round_trip(btc, ago(chat, 200), ago(chat, 100), "100", "110", amount="2")
    RiskEvent.create(user=btc.user_id, config=btc.id, scope="pair", kind="drawdown", created_at=ago(chat, 90))
    RiskEvent.create(user=btc.user_id, config=btc.id, scope="pair", kind="reset", created_at=ago(chat, 80))
    other = config_of(2, "BTC/USDT")
    RiskEvent.create(user=other.user_id, config=other.id, scope="pair", kind="drawdown", created_at=ago(chat, 70))
    handed = []
    real = render.render_equity
    monkeypatch.setattr("tradebot.services.charts.render_equity", lambda data: handed.append(data) or real(data))
    chat.send(1, "/equity BTC/USDT")
    assert png_size(chat.sender.photos[-1][1]) == (render.WIDTH, render.HEIGHT)
    data = handed[-1]
    (s,) = data.series
    assert s.label == "BTC/USDT" and len(s.ts) == len(s.equity) == len(s.hold) >= 240
    assert s.equity[0] == pytest.approx(1000) and s.hold[0] == pytest.approx(1000, rel=0.02)
    # after the round trip the pair holds cash only: 1000 - 200.1 + 220 - 0.1 (quote fees)
    assert s.equity[-1] == pytest.approx(1019.8)
    assert len(data.trips) == 1  # the reset is no trip; user 2's trip is not ours
    chat.send(1, "/equity")
    assert handed[-1].series[0].label == "all pairs"
    assert handed[-1].series[0].equity[-1] == pytest.approx(1019.8 + 500)


def test_equity_of_a_pair_added_within_the_current_candle_says_so(two_users):
    chat = two_users
    UserConfig.update(created_at=ago(chat, 0)).execute()
    assert one(chat, 1, "/equity") == "⚠️ No equity history yet: come back after the first 1m candle has closed."
    assert not chat.sender.photos


def test_trades_lists_round_trips_newest_first_and_only_the_users(two_users):
    chat = two_users
    btc = config_of(1, "BTC/USDT")
    book_round_trip(btc, ago(chat, 300), ago(chat, 200), "100", "110", reason="take_profit")
    book_round_trip(btc, ago(chat, 150), ago(chat, 100), "105", "100", reason="stop_loss")
    book_round_trip(config_of(2, "BTC/USDT"), ago(chat, 90), ago(chat, 80), "1", "2")
    text = one(chat, 1, "/trades")
    assert text.index("stop-loss") < text.index("take-profit")
    assert "PnL $4.80 (9.60%)" in text and "PnL -$2.70" in text and "@ 1 →" not in text
    text = one(chat, 1, "/trades BTC/USDT 1")
    assert "stop-loss" in text and "take-profit" not in text and "/export" in text
    assert "No closed trades" in one(chat, 1, "/trades ETH/USDT")
    assert "from 1 to 50" in one(chat, 1, "/trades 0")
    text = one(chat, 2, "/trades")
    assert "@ 1 → 2" in text and "@ 100" not in text


def test_export_is_a_csv_of_every_fill_and_round_trip_of_the_user(two_users):
    chat = two_users
    btc = config_of(1, "BTC/USDT")
    _p, t1 = book_round_trip(btc, ago(chat, 300), ago(chat, 200), "100", "110")
    _p, t2 = book_round_trip(config_of(1, "ETH/USDT"), ago(chat, 100), None, "50")
    _p, theirs = book_round_trip(config_of(2, "BTC/USDT"), ago(chat, 90), ago(chat, 80), "1", "2")
    chat.send(1, "/export")
    (chat_id, filename, data, caption) = chat.sender.documents[-1]
    assert chat_id == 1 and filename.startswith("tradebot-all-") and filename.endswith(".csv")
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
    fills = [r for r in rows if r["record"] == "fill"]
    trips = [r for r in rows if r["record"] == "round_trip"]
    assert sorted(r["client_order_id"] for r in fills) == sorted(t.client_order_id for t in t1 + t2)
    assert [r["fee"] for r in fills] == ["0.1"] * 3 and {r["fee_currency"] for r in fills} == {"USDT"}
    assert len(trips) == 1 and trips[0]["pnl"] == "4.8" and trips[0]["fee"] == "0.2"
    assert trips[0]["entry_price"] == "100" and trips[0]["exit_price"] == "110"
    chat.send(1, "/export ETH/USDT")
    rows = list(csv.DictReader(io.StringIO(chat.sender.documents[-1][2].decode())))
    assert [r["symbol"] for r in rows] == ["ETH/USDT"]
    chat.send(2, "/export")
    rows = list(csv.DictReader(io.StringIO(chat.sender.documents[-1][2].decode())))
    assert chat.sender.documents[-1][0] == 2
    assert {r["client_order_id"] for r in rows if r["record"] == "fill"} == {t.client_order_id for t in theirs}
    setup_user(chat, 4)
    assert one(chat, 4, "/export") == "⚠️ Nothing to export yet: no fills."


def test_status_and_position_have_refresh_buttons_that_edit_in_place(two_users):
    chat = two_users
    btc = config_of(1, "BTC/USDT")
    chat.send(1, "/status")
    assert chat.buttons(1)[-1] == ("🔄 Refresh", "rfs:1")
    UserState.update(equity=Decimal("1100")).where(UserState.config == btc.id).execute()
    edits, answers = chat.press(1, "rfs:1", message_id=5)
    assert "$1100.00" in edits[-1][2] and edits[-1][1] == 5
    chat.send(1, "/status BTC/USDT")
    assert chat.buttons(1)[-1] == ("🔄 Refresh", f"st:{btc.id}")
    chat.send(1, "/position")
    assert chat.buttons(1)[0] == ("🔄 Refresh", "rfp:1")
    assert ("BTC/USDT", f"pos:{btc.id}") in chat.buttons(1)
    book_round_trip(btc, ago(chat, 20), None, "103")
    edits, _ = chat.press(1, "rfp:1", message_id=6)
    assert "BTC/USDT" in plain(edits[-1][2]) and "Open Positions (1)" in plain(edits[-1][2])
    edits, _ = chat.press(1, f"pos:{btc.id}", message_id=6)
    assert "BTC/USDT" in plain(edits[-1][2])


def test_removepair_and_stop_trading_without_symbol_offer_pick_lists(two_users):
    chat = two_users
    btc, eth = config_of(1, "BTC/USDT"), config_of(1, "ETH/USDT")
    assert one(chat, 1, "/removepair") == "🗑️ Which pair do you want to remove?"
    assert chat.buttons(1) == [("BTC/USDT", f"rmq:{btc.id}"), ("ETH/USDT", f"rmq:{eth.id}"), ("Cancel", "cancel:1")]
    edits, _ = chat.press(1, f"rmq:{eth.id}")
    assert "Remove ETH/USDT" in plain(edits[-1][2])
    assert [b.callback_data for row in edits[-1][3].keyboard for b in row] == [f"rm:{eth.id}", "cancel:1"]
    chat.send(1, "/start_trading")
    one(chat, 1, "/stop_trading")
    assert ("⏸️ BTC/USDT", f"stop1:{btc.id}") in chat.buttons(1)
    edits, _ = chat.press(1, f"stop1:{btc.id}")
    assert "BTC/USDT" in plain(edits[-1][2])
    assert not UserConfig.get_by_id(btc.id).is_trading and UserConfig.get_by_id(eth.id).is_trading


def test_keyboard_and_notify_chart_preferences(two_users):
    chat = two_users
    chat.send(1, "/help")
    markup = chat.last_markup(1)
    assert markup is not None and markup.keyboard[0][0]["text"] == "/status"
    assert one(chat, 1, "/keyboard off").startswith("⌨️ Command keyboard off")
    assert json.loads(chat.last_markup(1).to_json()) == {"remove_keyboard": True}
    chat.send(1, "/help")
    assert chat.last_markup(1) is None
    assert not User.get(User.telegram_id == 1).reply_keyboard
    assert "equity chart" in one(chat, 1, "/notify chart on")
    assert User.get(User.telegram_id == 1).notify_chart and not User.get(User.telegram_id == 2).notify_chart
    chat.send(2, "/help", chat_type="group", chat_id=-5)
    assert chat.last_markup(-5) is None  # no keyboard pushed onto a group


def test_charts_without_matplotlib_answer_clearly(two_users, monkeypatch, caplog):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    reply = one(two_users, 1, "/chart BTC/USDT 4h")
    assert reply == "⚠️ Charts are not available on this bot: the administrator has to install matplotlib."
    assert any("matplotlib" in r.getMessage() and "install" in r.getMessage() for r in caplog.records)


def test_importing_the_bot_does_not_import_matplotlib():
    import subprocess
    import sys

    code = ("import sys, tradebot.app, tradebot.services, tradebot.telegram.bot, tradebot.telegram.handlers, "
            "tradebot.charts.render, tradebot.charts.worker; print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_futures_fills_are_drawn_as_long_and_short_entries_and_exits():
    from tradebot.services.charts import marker_kind

    assert [marker_kind(s, "long", False) for s in ("buy", "sell")] == ["buy", "sell"]
    assert [marker_kind(s, None, True) for s in ("buy", "sell")] == ["long_entry", "long_exit"]
    assert [marker_kind(s, "short", True) for s in ("sell", "buy")] == ["short_entry", "short_exit"]


def test_a_short_position_on_a_futures_pair_is_charted_with_short_markers(chat):
    # futures pairs come with the futures branch: here the row is renamed to a linear perpetual's symbol
    setup_user(chat, 1, pairs=[("BTC/USDT", 1000)])
    config = config_of(1, "BTC/USDT")
    UserConfig.update(symbol="BTC/USDT:USDT").where(UserConfig.id == config.id).execute()
    config = UserConfig.get_by_id(config.id)
    pos, trades = book_round_trip(config, ago(chat, 50), ago(chat, 20), "100", "95")
    Position.update(side="short").where(Position.id == pos.id).execute()
    Trade.update(side="sell").where(Trade.id == trades[0].id).execute()
    Trade.update(side="buy").where(Trade.id == trades[1].id).execute()
    data = chat.services.price_chart_data(config.user, config)
    assert [m.kind for m in data.markers] == ["short_entry", "short_exit"]
    assert [m.trade_id for m in data.markers] == [t.id for t in trades]


def test_group_chat_chart_pick_list_is_bound_to_the_asker(two_users):
    chat = two_users
    group = -100777
    chat.send(1, "/chart", chat_type="group", chat_id=group)
    buttons = chat.buttons(group)
    assert buttons[-1] == ("Cancel", "cancel:1")
    edits, answers = chat.press(2, buttons[0][1], chat_id=group)  # another member taps user 1's pick
    assert not edits and "not for you" in answers[-1][1]
    assert not chat.sender.photos
    edits, answers = chat.press(2, "cancel:1", chat_id=group)
    assert not edits and "not for you" in answers[-1][1]
    chat.press(1, buttons[0][1], chat_id=group)
    assert chat.sender.photos[-1][0] == group
