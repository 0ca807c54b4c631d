"""The slot dispatcher that starts pair cycles: slots on the wall-clock grid, no overlap of a pair with
itself, missed slots collapsed, add/remove/reschedule one pair, pause; and the real thread end to end."""

from __future__ import annotations

import threading
import time

from tradebot.engine.slots import SlotDispatcher, next_slot


class Pool:
    """Keeps what was submitted; the test decides when a cycle runs."""

    def __init__(self):
        self.queued = []

    def submit(self, fn, *args):
        self.queued.append((fn, args))

    def run_all(self):
        items, self.queued = self.queued, []
        for fn, args in items:
            fn(*args)


def make(start=1000.0):
    pool, ran = Pool(), []
    d = SlotDispatcher(pool.submit, lambda pid, due: ran.append((pid, due)), clock=lambda: start)
    return d, pool, ran


def test_next_slot_is_strictly_after_now_on_the_grid():
    assert next_slot(1000.0, 60, 5.5) == 1025.5
    assert next_slot(1025.5, 60, 5.5) == 1085.5
    assert next_slot(1026.0, 60, 5.5) == 1085.5


def test_pairs_run_at_their_slots_and_the_due_time_is_handed_over():
    d, pool, ran = make(1000.0)
    d.add(1, 60, 5.5)  # due 1025.5
    d.add_many([(2, 60, 30.0), (3, 10, 2.0)])  # due 1050, 1002
    assert d.take_due(1001.9) == []
    for fn, args in [(d._call, x) for x in d.take_due(1002.0)]:
        pool.submit(fn, *args)
    pool.run_all()
    assert ran == [(3, 1002.0)]
    got = d.take_due(1030.0)
    assert sorted(got) == [(1, 1025.5), (3, 1012.0)]
    assert d.slot_of(3) == (10, 2.0, 1032.0)  # 1022 was missed: the next slot ahead, not a catch-up run
    assert d.slot_of(2) == (60, 30.0, 1050.0)


def test_a_pair_never_overlaps_itself_and_missed_slots_collapse():
    d, pool, ran = make(0.0)
    d.add(7, 10, 0.0)
    assert d.take_due(10.0) == [(7, 10.0)]  # handed to the pool: busy until its cycle ends
    assert d.lag(12.5) == 2.5  # waiting for a worker since its slot (health: cycle_lag_seconds)
    assert d.take_due(20.0) == [] and d.take_due(30.0) == []  # still busy: slots skipped
    assert d.skipped == 2 and d.busy() == 1
    d._call(7, 10.0)  # the cycle ends
    assert d.busy() == 0 and d.lag(35.0) == 0
    assert d.take_due(40.0) == [(7, 40.0)]
    assert ran == [(7, 10.0)]


def test_remove_reschedule_and_pause():
    d, pool, ran = make(0.0)
    d.add(1, 10, 1.0)
    d.add(2, 10, 2.0)
    assert 1 in d and len(d) == 2
    assert d.remove(1) is True and d.remove(1) is False
    assert 1 not in d
    assert d.take_due(5.0) == [(2, 2.0)]
    d._call(2, 2.0)
    d.add(2, 20, 3.0, now=5.0)  # rescheduled: the old slot (12) is gone
    assert d.take_due(15.0) == []
    assert d.take_due(23.0) == [(2, 23.0)]
    d._call(2, 23.0)
    d.pause()
    assert d.take_due(43.0) == []
    d.resume()
    assert d.take_due(63.0) == [(2, 63.0)]
    assert sorted(d.ids()) == [2]


def test_the_timer_thread_starts_cycles_on_time_and_stops():
    runs: list[tuple[int, float, float]] = []
    done = threading.Event()

    def run(pid, due):
        runs.append((pid, due, time.time()))
        if len(runs) >= 4:
            done.set()

    def submit(fn, *args):
        threading.Thread(target=fn, args=args, daemon=True).start()

    d = SlotDispatcher(submit, run)
    d.add(1, 1, 0.25)
    d.add(2, 1, 0.75)
    d.start()
    assert done.wait(5)
    d.stop()
    time.sleep(0.1)
    n = len(runs)
    time.sleep(1.2)
    assert len(runs) == n  # nothing after stop()
    for pid, due, at in runs:
        assert at >= due  # never early
        assert due % 1 == (0.25 if pid == 1 else 0.75)
