"""Property: whatever users type, every command is answered, nothing raises, and nobody else's state changes.

Runs through the real Dispatcher + Services with telebot Update objects (no HTTP, to stay fast).
"""

from __future__ import annotations

import logging

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradebot.models import ExchangeCredential, Position, User, UserConfig, UserState

USERS = [11, 12, 13, 14]

symbols = st.sampled_from(
    [
        "BTC/USDT",
        "btcusdt",
        "BTC-USDT",
        "eth/usdt",
        "ETHUSDT",
        "SOL/USDT",
        "sol_usdt",
        "DOGE/USDT",
        "ETH/BTC",
        "FOO/USDT",
        "btc",
        "BTC/",
        "/USDT",
        "<b>x</b>",
        "a&b",
        "*_`[",
        "💥",
        "x" * 200,
        "",
    ]
)
numbers = st.one_of(
    st.sampled_from(
        [
            "1000",
            "500",
            "10",
            "9.99",
            "-5",
            "0",
            "1e309",
            "nan",
            "NaN",
            "inf",
            "-inf",
            "1,000",
            "1_000",
            "0.000000001",
            "99999999999999999999",
            "$100",
            "100.5",
            "1e3",
            "3",
            "50",
            "0.1",
            "101",
            "1" * 40,
        ]
    ),
    st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
)
words = st.one_of(
    st.sampled_from(
        [
            "binance",
            "bybit",
            "kraken",
            "true",
            "false",
            "paper",
            "testnet",
            "live",
            "on",
            "off",
            "stop_loss",
            "sl",
            "tp",
            "take_profit",
            "max_position",
            "max_losses",
            "cooldown",
            "daily_loss",
            "max_drawdown",
            "min_confidence",
            "bogus",
            "key12345678",
            "secret12345678",
            "@user12",
            "12",
            "pending",
            "15m",
            "1h",
            "7m",
            "1d",
        ]
    ),
    st.text(min_size=1, max_size=30).filter(lambda s: s.strip() and not any(c.isspace() for c in s)),
)
arg = st.one_of(symbols, numbers, words)
commands = st.sampled_from(
    [
        "/start",
        "/connect",
        "/addpair",
        "/listpairs",
        "/removepair",
        "/start_trading",
        "/stop_trading",
        "/status",
        "/config",
        "/mystats",
        "/position",
        "/help",
        "/set",
        "/notify",
        "/reset",
        "/users",
        "/approve",
        "/block",
        "/stopall",
        "/unknown",
        "/START",
        "/status@tradebot_test_bot",
        "/status@otherbot",
        "/chart",
        "/equity",
        "/trades",
        "/export",
        "/keyboard",
        "/notify chart",
    ]
)
message_text = st.one_of(
    st.builds(lambda c, a: " ".join([c, *a]), commands, st.lists(arg, max_size=5)),
    st.text(max_size=50),
    st.just("/addpair BTC/USDT " + "9" * 2000),
)
callback_data = st.one_of(
    st.builds(
        lambda a, n: f"{a}:{n}",
        st.sampled_from(["start", "stop", "rm", "stopmany", "adm:ok", "adm:no", "cp", "chr", "pos", "rfp", "rfs",
                         "st", "rmq", "stop1"]),
        st.integers(min_value=0, max_value=60),
    ),
    st.builds(lambda a, n, u: f"{a}:{n}:{u}", st.sampled_from(["cp", "chr", "rfs"]),
              st.integers(min_value=0, max_value=20), st.sampled_from(["", "1h", "binance", "11", "12", "x"])),
    st.sampled_from(["cancel", "stopmany:all", "adm:stopall", "", "rm:", "start:x", "stop:1,2,3", "rfs:", "rfp:",
                     "chr::", "cp:1:1h", "rfs:11:bybit"]),
    st.text(max_size=70),
)
action = st.one_of(
    st.tuples(st.just("msg"), st.sampled_from(USERS), message_text),
    st.tuples(st.just("cb"), st.sampled_from(USERS), callback_data),
)


def snapshot(user_tid: int):
    user = User.get(User.telegram_id == user_tid)
    configs = [
        tuple(c.__data__.items())
        for c in UserConfig.select().where(UserConfig.user == user.id).order_by(UserConfig.id)
    ]
    states = [
        tuple(s.__data__.items())
        for s in UserState.select().where(UserState.user == user.id).order_by(UserState.id)
    ]
    creds = [
        tuple(c.__data__.items())
        for c in ExchangeCredential.select().where(ExchangeCredential.user == user.id)
    ]
    positions = Position.select().where(Position.user == user.id).count()
    return (tuple(user.__data__.items()), configs, states, creds, positions)


class Counter:
    n = 0


def test_random_commands_from_several_users(chat, caplog):
    caplog.set_level(logging.WARNING)
    for u in USERS:
        chat.send(u, "/start", username=f"user{u}")
        chat.send(u, "/connect binance paper")
    chat.send(USERS[0], "/connect bybit paper")
    for u in USERS:
        chat.send(u, "/addpair BTC/USDT 1000")
        chat.send(u, "/addpair ETH/USDT 500")
    chat.send(USERS[0], "/addpair BTC/USDT 300 bybit")
    chat.send(USERS[1], "/start_trading")
    counter = Counter()

    @settings(max_examples=45, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(st.lists(action, min_size=45, max_size=55))
    def run(actions):
        for kind, user, payload in actions:
            others = {u: snapshot(u) for u in USERS if u != user}
            sent0 = len(chat.sender.sent)
            answers0 = len(chat.sender.answers)
            if kind == "msg":
                replies = chat.send(user, payload)
                new = chat.sender.sent[sent0:]
                addressed_elsewhere = (
                    "@otherbot" in payload.split(" ")[0] if payload.startswith("/") else False
                )
                if not addressed_elsewhere:
                    assert replies, f"no answer to {payload!r}"
                assert all(c == user for c, _t, _m in new), "a reply went to another chat"
                for _c, text, _m in new:
                    assert len(text) <= 4096
                    assert "Traceback" not in text
            else:
                chat.press(user, payload)
                assert len(chat.sender.answers) > answers0, f"callback {payload!r} not answered"
                assert all(c == user for c, _t, _m in chat.sender.sent[sent0:])
            for u, before in others.items():
                assert snapshot(u) == before, f"user {u} changed by {user}: {payload!r}"
            counter.n += 1

    run()
    assert counter.n >= 2000
    errors = [r for r in caplog.records if "internal error" in r.getMessage()]
    assert not errors, errors[0].getMessage()
