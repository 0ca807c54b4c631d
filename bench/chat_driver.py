"""The fake Telegram Bot API and the chat users of bench/engine.py, in a process of their own (Telegram's
servers and the users' phones are not in the bot's process either, so they do not compete for its CPU).

Prints its Bot API URL, then answers one JSON line per command read from stdin:
    first_poll                -> {"at": monotonic time of the first getUpdates, or null}
    prime N                   -> users CHAT_BASE..+N send /start and get their reply: {"ok": true}
    burst N R [CMDS]          -> N users each send R commands, each after the reply to the previous one
                                 (CMDS: comma-separated, "+" for a space, taken in turn; default
                                 /status,/help):
                                 {"latencies": [seconds, ...], "trace": [[chat, pushed, replied], ...]}
(time.monotonic() is one clock for every process of the machine on Linux.)
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fakes.telegram import FakeTelegram  # noqa: E402

CHAT_BASE = 900_000


def main() -> None:
    token, latency_ms = sys.argv[1], float(sys.argv[2])
    tg = FakeTelegram(token=token).start()
    tg.latency_ms = latency_ms
    print(tg.api_url, flush=True)
    for line in sys.stdin:
        cmd, *args = line.split()
        if cmd == "first_poll":
            calls = tg.calls_of("getUpdates")
            out = {"at": calls[0].at if calls else None}
        elif cmd == "prime":
            for i in range(int(args[0])):
                tg.push_message(CHAT_BASE + i, "/start")
            for i in range(int(args[0])):
                tg.wait_for_replies(CHAT_BASE + i, 1, timeout=60)
            out = {"ok": True}
        elif cmd == "burst":
            n, rounds = int(args[0]), int(args[1])
            texts = [c.replace("+", " ") for c in (args[2] if len(args) > 2 else "/status,/help").split(",")]
            latencies: list[float] = []
            trace: list[tuple[int, float, float]] = []  # (chat, pushed, reply recorded)
            lock = threading.Lock()

            def user(i: int, rounds=rounds, lock=lock, latencies=latencies, trace=trace, texts=texts) -> None:
                uid = CHAT_BASE + i
                for r in range(rounds):
                    before = len(tg.replies(uid))
                    t = time.monotonic()
                    tg.push_message(uid, texts[r % len(texts)])
                    tg.wait_for_replies(uid, 1, timeout=60, since=before)
                    # the reply's arrival as the fake recorded it, not when this thread got to run again
                    # (20 threads of this process wake on every message the bot sends)
                    at = tg.sent_to(uid)[before].at
                    with lock:
                        latencies.append(at - t)
                        trace.append((uid, t, at))

            threads = [threading.Thread(target=user, args=(i,)) for i in range(n)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            out = {"latencies": latencies, "trace": trace}
        else:
            out = {"error": f"unknown command {cmd}"}
        print(json.dumps(out), flush=True)
    tg.stop()


if __name__ == "__main__":
    main()
