"""The SQLite writer lock: reentrant, timeouts, and chat threads served before waiting cycle threads."""

import threading
import time

import pytest

from tradebot.writer_lock import PriorityRLock, mark_urgent


def _waiter(lock, urgent: bool, order: list, name: str, started: threading.Event):
    def run():
        mark_urgent(urgent)
        started.set()
        with lock:
            order.append(name)
            time.sleep(0.01)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_reentrant_and_released_only_by_its_owner():
    lock = PriorityRLock()
    with lock:
        with lock:
            got = []
            t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=0.1)))
            t.start()
            t.join()
            assert got == [False]  # held twice by this thread
    with pytest.raises(RuntimeError):
        lock.release()
    t = threading.Thread(target=lambda: got.append(lock.acquire(timeout=1)))
    t.start()
    t.join()
    assert got[-1] is True  # free again after the two releases


def test_urgent_waiters_go_before_unmarked_ones_that_waited_longer():
    lock = PriorityRLock()
    order: list[str] = []
    lock.acquire()  # a cycle's transaction is running
    threads = []
    for i in range(5):  # five cycles queue first
        started = threading.Event()
        threads.append(_waiter(lock, False, order, f"cycle{i}", started))
        started.wait()
    _wait_until(lambda: lock._waiting_normal == 5)
    for i in range(2):  # then two chat replies
        started = threading.Event()
        threads.append(_waiter(lock, True, order, f"chat{i}", started))
        started.wait()
    _wait_until(lambda: lock._waiting_urgent == 2)
    lock.release()
    for t in threads:
        t.join(5)
    assert sorted(order[:2]) == ["chat0", "chat1"], order
    assert sorted(order[2:]) == [f"cycle{i}" for i in range(5)]


def test_a_timed_out_waiter_does_not_swallow_the_wake_up():
    lock = PriorityRLock()
    lock.acquire()
    results: list[bool] = []
    impatient = threading.Thread(target=lambda: results.append(lock.acquire(timeout=0.05)))
    patient_got = threading.Event()

    def patient():
        with lock:
            patient_got.set()

    impatient.start()
    p = threading.Thread(target=patient, daemon=True)
    p.start()
    impatient.join()
    assert results == [False]
    lock.release()
    assert patient_got.wait(5)


def test_many_threads_mutual_exclusion():
    lock = PriorityRLock()
    inside = [0]
    worst = [0]
    total = [0]

    def work(urgent):
        mark_urgent(urgent)
        for _ in range(300):
            with lock:
                inside[0] += 1
                worst[0] = max(worst[0], inside[0])
                total[0] += 1
                inside[0] -= 1

    threads = [threading.Thread(target=work, args=(i % 3 == 0,)) for i in range(9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert worst[0] == 1
    assert total[0] == 9 * 300
