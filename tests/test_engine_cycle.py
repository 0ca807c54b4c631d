"""The per-pair trading cycle through BotManager.run_cycle on replayed candles with a controllable clock."""

from __future__ import annotations

from decimal import Decimal

from tests.fixtures_engine import MINUTE, ScriptedDecider, make_pair, make_user
from tradebot.models import AIDecision, Notification, Order, Position, Trade, UserState

D = Decimal


def last_closed_ts(clock):
    return clock.ms - clock.ms % MINUTE - MINUTE


def test_scripted_round_trip_books_trades_positions_and_events(engine, clock, deciders, replay_hub):
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    t0 = last_closed_ts(clock)
    deciders["scripted"] = ScriptedDecider({t0: "buy", t0 + 5 * MINUTE: "sell"})
    assert engine.start_pair(cfg.id) is True
    assert engine.start_pair(cfg.id) is False  # idempotent: already trading, nothing new started
    for _ in range(6):
        engine.run_cycle(cfg.id)
        clock.advance(1)
    trades = list(Trade.select().order_by(Trade.id))
    assert [t.side for t in trades] == ["buy", "sell"]
    buy, sell = trades
    fills = replay_hub.all_fills()
    assert {t.client_order_id for t in trades} == set(fills)
    # net base booked (fee in base), sells at most the held amount rounded down to the step
    assert buy.amount == fills[buy.client_order_id].net_base
    assert sell.amount <= buy.amount
    st = UserState.get(UserState.config == cfg.id)
    pos = Position.get()
    assert pos.status == "closed" and pos.realized_pnl == sell.pnl
    assert st.realized_pnl == sell.pnl
    assert st.cash + st.holdings * st.last_price == st.equity
    assert st.equity == D(1000) + st.realized_pnl + st.unrealized_pnl
    assert Order.select().where(Order.status == "filled").count() == 2
    kinds = [n.kind for n in Notification.select().order_by(Notification.id)]
    assert kinds == ["trade_opened", "trade_closed"]
    dec = AIDecision.get(AIDecision.action == "buy")
    assert dec.executed and dec.outcome in ("profitable", "loss") and dec.pnl == sell.pnl


def test_reconcile_leaves_a_young_absent_intent_pending_until_its_recv_window_passed(database):
    """An order sent right before a crash may still be in transit: 'absent' is final only later."""
    from tests.fixtures_engine import make_pair, make_user
    from tradebot.engine.book_rows import dt_to_ms
    from tradebot.engine.reconcile import reconcile_order
    from tradebot.models import Order

    class Absent:
        settle_after_ms = 6000

        def find_order(self, symbol, cid):
            return None

    cfg = make_pair(make_user(1), "BTC/USDT", "1000", network="live")
    order = Order.create(user=cfg.user_id, config=cfg.id, client_order_id="tbyoung1", exchange="binance",
                         network="live", symbol="BTC/USDT", side="buy")
    sent = dt_to_ms(order.created_at)
    assert reconcile_order(order, Absent(), sent + 2000) == "pending"
    assert Order.get_by_id(order.id).status == "pending"
    assert reconcile_order(order, Absent(), sent + 6001) == "failed"
    assert Order.get_by_id(order.id).status == "failed"
