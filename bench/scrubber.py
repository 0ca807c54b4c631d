"""Log scrubber cost: per log line and per added secret, with few and with many registered secrets.

    python bench/scrubber.py [--secrets 20000] [--lines 20000]

Prints microseconds per scrubbed line (a typical 160-character log line, and a 1,000-character one) and per
registration, at 10 secrets and at --secrets secrets. Cost per line should not grow with the number of
secrets, and per registration it should stay flat (the old single regex was rebuilt on every addition)."""

from __future__ import annotations

import argparse
import random
import string
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tradebot import logging_setup as ls  # noqa: E402

LINE = ("2026-11-30 02:05:32,123 INFO tradebot.orders [cycle-3] order filled: user=42 pair=BTC/USDT exchange=binance "
        "side=buy amount=0.00999 price=16541.77 cid=tb-17-8f3a2c")


def _secret(rng: random.Random) -> str:
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(36))


def _per_line(text: str, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        ls.scrub(text)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--secrets", type=int, default=20_000)
    ap.add_argument("--lines", type=int, default=20_000)
    args = ap.parse_args()
    rng = random.Random(7)
    long_line = (LINE + " ") * 6
    rows = []
    added = 0
    for target in (10, args.secrets):
        batch = [_secret(rng) for _ in range(target - added)]
        start = time.perf_counter()
        for s in batch:
            ls.register_secret(s)
        per_add = (time.perf_counter() - start) / max(1, len(batch)) * 1e6
        added = target
        rows.append((target, per_add, _per_line(LINE, args.lines), _per_line(long_line[:1000], args.lines // 4)))
    print(f"secrets kept: {ls.secret_count()} (cap {ls.MAX_SECRETS})")
    for n, add, short, long in rows:
        print(f"{n:>6} secrets: register {add:6.2f} us/secret, scrub {short:6.2f} us/160-char line, "
              f"{long:7.2f} us/1000-char line")


if __name__ == "__main__":
    main()
