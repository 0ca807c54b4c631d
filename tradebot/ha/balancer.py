"""Fair share of the active pairs over the live workers (pure functions)."""

from __future__ import annotations

import math


def fair_share(active_pairs: int, live_workers: int) -> int:
    """ceil(active / workers): every pair is held by someone even when the division is not even."""
    return math.ceil(active_pairs / max(1, live_workers)) if active_pairs > 0 else 0


def surplus(held: list[int], share: int, busy=lambda _id: False) -> list[int]:
    """The pairs to give up to come down to `share`: idle ones first (a busy pair waits for its cycle),
    highest ids first so the kept set is stable from one round to the next."""
    extra = len(held) - share
    if extra <= 0:
        return []
    ordered = sorted(held, key=lambda i: (busy(i), -i))
    return ordered[:extra]


def to_claim(held: int, share: int) -> int:
    return max(0, share - held)
