"""Cycles step aside for chat work: a fresh slot waits (bounded past its slot) while a reply is worked on,
then at most `busy_limit` cycles run; every wait is bounded (a chat flood slows cycles, never stops them)."""

from __future__ import annotations

import threading

from tradebot.priority import Foreground


def _start_cycle_in_thread(fg):
    started = threading.Event()

    def run():
        fg.cycle_start()
        started.set()

    threading.Thread(target=run, daemon=True).start()
    return started


def test_without_chat_cycles_never_wait():
    fg = Foreground(busy_limit=1, max_wait=10)
    fg.cycle_start()
    assert _start_cycle_in_thread(fg).wait(2)


def test_chat_work_holds_extra_cycles_until_it_is_done():
    fg = Foreground(busy_limit=2, max_wait=10)
    fg.cycle_start()
    fg.cycle_start()
    fg.enter()  # a chat message queued
    started = _start_cycle_in_thread(fg)
    assert not started.wait(0.3)  # a third cycle waits while the reply is worked on
    fg.exit()
    assert started.wait(2)


def test_a_cycle_that_ends_lets_the_next_one_in_and_the_wait_is_bounded():
    fg = Foreground(busy_limit=1, max_wait=10)
    fg.cycle_start()
    fg.enter()
    started = _start_cycle_in_thread(fg)
    assert not started.wait(0.2)
    fg.cycle_end()  # a turn frees up
    assert started.wait(2)
    bounded = Foreground(busy_limit=1, max_wait=0.2)
    bounded.cycle_start()
    bounded.enter()  # chat never ends here
    assert _start_cycle_in_thread(bounded).wait(3)


def _cycle_of_slot(fg, due):
    started = threading.Event()

    def run():
        fg.cycle_start(due)
        started.set()

    threading.Thread(target=run, daemon=True).start()
    return started


def test_a_fresh_slot_waits_for_the_chat_even_with_no_cycle_running():
    fg = Foreground(busy_limit=1, max_wait=10, hold=10, max_lag=10, clock=lambda: 1000.0)
    fg.enter()
    started = _cycle_of_slot(fg, due=1000.0)  # its slot is now; nothing else runs
    assert not started.wait(0.3)
    fg.exit()  # the reply is out
    assert started.wait(2)


def test_the_hold_ends_at_its_bound_past_the_slot_and_a_late_cycle_never_waits():
    fg = Foreground(busy_limit=1, max_wait=10, hold=0.3, max_lag=10, clock=lambda: 1000.0)
    fg.enter()  # chat that never ends
    started = _cycle_of_slot(fg, due=1000.0)
    assert not started.wait(0.15)
    assert started.wait(2)  # 0.3 s past its slot: it runs (no other cycle is running)
    late = Foreground(busy_limit=1, max_wait=10, hold=5, max_lag=0.5, clock=lambda: 1000.0)
    late.cycle_start()  # the one cycle allowed during chat is busy
    late.enter()
    assert _cycle_of_slot(late, due=999.0).wait(0.5)  # already 1 s past its slot: starts at once
