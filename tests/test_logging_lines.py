"""The operator's log: one INFO line per user action and per order, with the fields that matter and no
secret; no scheduler chatter."""

from __future__ import annotations

import contextlib
import logging

from tests.fixtures_engine import MINUTE, ScriptedDecider, make_pair, make_user
from tests.fixtures_telegram import ChatHarness, make_cfg, one, setup_user

KEY, SECRET = "Lg7KeyAbc123XyZ", "Lg7SecretQwe456RtY"


def action_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tradebot.actions" and r.levelno == logging.INFO]


def test_each_user_action_is_one_info_line_without_secrets(chat, caplog):
    caplog.set_level(logging.INFO)
    steps = [
        ("/start", ["registered", "status=active"]),
        (f"/connect binance {KEY} {SECRET} true", ["connected", "exchange=binance", "network=testnet"]),
        ("/addpair BTC/USDT 1000", ["added pair", "pair=BTC/USDT", "budget=1000"]),
        ("/set BTC/USDT stop_loss 3", ["set", "pair=BTC/USDT", "setting=stop_loss", "old=2", "new=3"]),
        ("/start_trading", ["start trading", "started=BTC/USDT"]),
        ("/stop_trading BTC/USDT", ["stop trading", "stopped=BTC/USDT"]),
        ("/notify off", ["notify", "on=False"]),
    ]
    for text, fields in steps:
        caplog.clear()
        chat.send(1, text)
        lines = action_lines(caplog)
        assert len(lines) == 1, (text, lines)
        assert lines[0].startswith("user 1 ")
        for field in fields:
            assert field in lines[0], (text, lines[0])
    everything = "\n".join(r.getMessage() for r in caplog.records)
    assert KEY not in everything and SECRET not in everything
    caplog.clear()
    chat.send(1, "/status")  # reading is no action
    assert action_lines(caplog) == []


def test_admin_actions_are_logged_once_each(database, caplog):
    chat = ChatHarness(make_cfg(admin_ids=[900]))
    setup_user(chat, 2, pairs=[("ETH/USDT", 100)])
    chat.send(900, "/start")
    caplog.set_level(logging.INFO)
    for text, what in (("/block 2", "admin blocked a user: target=2 status=blocked"),
                       ("/unblock 2", "admin unblocked a user: target=2 status=active")):
        caplog.clear()
        one(chat, 900, text)
        assert action_lines(caplog) == [f"user 900 {what}"]


def test_orders_sent_and_filled_are_one_line_each(engine, clock, deciders, replay_hub, caplog):
    caplog.set_level(logging.INFO)
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    t0 = clock.ms - clock.ms % MINUTE - MINUTE
    deciders["scripted"] = ScriptedDecider({t0: "buy"})
    engine.start_pair(cfg.id)
    engine.run_cycle(cfg.id)
    lines = [r.getMessage() for r in caplog.records if r.name == "tradebot.orders"]
    assert len(lines) == 2, lines
    sent, filled = lines
    cid = next(iter(replay_hub.all_fills()))
    assert sent.startswith("order sent: user=1 pair=BTC/USDT") and "side=buy" in sent and "quote=" in sent
    assert f"cid={cid}" in sent and f"cid={cid}" in filled
    assert filled.startswith("order filled: user=1 pair=BTC/USDT") and "amount=" in filled and "price=" in filled


def test_scheduler_job_chatter_is_not_logged_at_info(tmp_path):
    from tradebot import logging_setup

    logging_setup.setup_logging("INFO", tmp_path / "bot.log")
    try:
        logging.getLogger("apscheduler.executors.default").info('Job "x" executed successfully')
        logging.getLogger("apscheduler.executors.default").warning("Run time of job was missed")
        for handler in logging.getLogger().handlers:
            handler.flush()
        text = (tmp_path / "bot.log").read_text()
        assert "executed successfully" not in text and "was missed" in text
    finally:
        logging_setup.setup_logging("INFO", None)


def test_a_refused_order_is_one_failed_line_with_the_reason(engine, clock, deciders, replay_hub, caplog):
    caplog.set_level(logging.INFO)
    user = make_user(1)
    cfg = make_pair(user, "BTC/USDT", "1000", decider="scripted")
    t0 = clock.ms - clock.ms % MINUTE - MINUTE
    deciders["scripted"] = ScriptedDecider({t0: "buy"})
    replay_hub.broker("binance", "paper").fault = "insufficient"
    engine.start_pair(cfg.id)
    with contextlib.suppress(Exception):  # the cycle reports it as the pair's error
        engine.run_cycle(cfg.id)
    lines = [r.getMessage() for r in caplog.records if r.name == "tradebot.orders"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("order sent: user=1 pair=BTC/USDT")
    assert lines[1].startswith("order failed: user=1 pair=BTC/USDT") and "Insufficient balance" in lines[1]
    assert lines[0].split("cid=")[1].split()[0] == lines[1].split("cid=")[1].split()[0]
