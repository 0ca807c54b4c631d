"""Cycles step aside for chat work: while a reply is being worked on, at most `busy_limit` cycles run,
and the wait for a turn is bounded (a chat flood slows cycles, never stops them)."""

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
