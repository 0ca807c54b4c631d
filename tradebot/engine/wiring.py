"""What the cycle runner shares between pairs: per-pair locks, the broker cache, where market data comes from,
and the prefetch of every stream's candles right after a candle closes."""

from __future__ import annotations

import logging
import threading

from ..models import (
    ExchangeCredential,
)

log = logging.getLogger("tradebot.engine.cycle")  # the cycle's logger, as before the split


class CycleWiring:
    """Shared services of CycleRunner (part of it)."""

    def lock_for(self, config_id: int) -> threading.Lock:
        with self._locks_lock:
            lock = self._locks.get(config_id)
            if lock is None:
                lock = self._locks[config_id] = threading.Lock()
            return lock

    def credential(self, user_id: int, exchange: str) -> ExchangeCredential | None:
        return ExchangeCredential.get_or_none(
            (ExchangeCredential.user == user_id) & (ExchangeCredential.exchange == exchange)
        )

    def broker_for(self, user_id: int, exchange: str, cred: ExchangeCredential | None = None):
        if cred is None:
            cred = self.credential(user_id, exchange)
        network = cred.network if cred is not None else "paper"
        stamp = cred.updated_at if cred is not None else None
        key = (user_id, exchange, network, stamp) if network != "paper" else ("paper", exchange)
        with self._brokers_lock:
            broker = self._brokers.get(key)
            if broker is not None:
                self._brokers.move_to_end(key)
                return broker
        if network == "paper":
            broker = self.hub.broker(exchange, "paper")
        else:
            api_key = self.vault.decrypt(cred.api_key_enc) if cred.api_key_enc else None
            secret = self.vault.decrypt(cred.secret_enc) if cred.secret_enc else None
            broker = self.hub.broker(exchange, network, api_key, secret)
        with self._brokers_lock:
            self._brokers[key] = broker
            while len(self._brokers) > 2048:
                self._brokers.popitem(last=False)
        return broker

    def _slot(self, lp, cfg) -> dict:
        """One ticker (or mark price) per symbol per cycle slot (the pair's interval) when the market data
        supports it."""
        if self._lp_slots is None:
            self._lp_slots = _takes_slot(lp)
        ok = self._lp_slots if getattr(lp, "__name__", "") == "last_price" else _takes_slot(lp)
        return {"slot_ms": int(cfg.interval_seconds or 60) * 1000} if ok else {}

    def data_network(self, exchange: str, network: str) -> str:
        """Where the pair's market data comes from (paper reads public data of another network): shared
        candles and indicators are keyed by it, so paper and live pairs of a symbol share one series."""
        dn = getattr(self.hub, "data_network", None)
        return dn(exchange, network) if dn is not None else network

    def prefetch(self, now_ms: int, workers: int = 8) -> int:
        """Fetch, right after a candle closes, the candles and the slot's price of every stream the pairs
        use, so the cycles that follow find them ready instead of each stream's first cycle fetching while
        the others of that stream wait (with 40 streams behind one host's rate limit, seconds of waiting
        at the start of every minute). Returns the number of streams refreshed."""
        from concurrent.futures import ThreadPoolExecutor

        md = self.hub.market_data
        lp = getattr(md, "last_price", None)
        mark = getattr(md, "mark_price", None)
        streams = set(self.streams.values())
        if not streams:
            return 0
        if lp is not None and self._lp_slots is None:
            self._lp_slots = _takes_slot(lp)
        # The slot's prices first, one request per exchange for all its symbols (40 streams behind one
        # host's rate limit: 2 requests instead of 40, so the candles are in before the first pairs start).
        batched: set[tuple] = set()
        many = getattr(md, "prefetch_prices", None)
        if lp is not None and self._lp_slots and many is not None:
            groups: dict[tuple, set] = {}
            for exchange, net, symbol, _tf, interval in streams:
                if now_ms % (interval * 1000) < 60_000:
                    groups.setdefault((exchange, net, interval), set()).add(symbol)
            for (exchange, net, interval), symbols in sorted(groups.items()):
                spot = {s for s in symbols if ":" not in s}
                perps = symbols - spot  # perpetuals: their mark prices, one request per exchange too
                marks = getattr(md, "prefetch_marks", None)
                for batch, fetch in ((spot, md.prefetch_prices), (perps, marks)):
                    if not batch or fetch is None:
                        continue
                    try:
                        fetch(exchange, net, batch, interval * 1000)
                        batched.update((exchange, net, s, interval) for s in batch)
                    except Exception as exc:  # noqa: BLE001 - one ticker per symbol below instead
                        log.debug("batched prices of %s failed: %s", exchange, exc)

        def one(stream) -> None:
            exchange, net, symbol, timeframe, interval = stream
            try:
                md.candles(exchange, net, symbol, timeframe, self.candle_limit)
                slot = interval * 1000
                price = mark if ":" in symbol else lp
                if (price is not None and self._lp_slots and now_ms % slot < 60_000
                        and (exchange, net, symbol, interval) not in batched):
                    price(exchange, net, symbol, slot_ms=slot)
            except Exception as exc:  # noqa: BLE001 - the pair's own cycle retries and reports it
                log.debug("prefetch of %s %s failed: %s", exchange, symbol, exc)

        with ThreadPoolExecutor(max(1, min(workers, len(streams))), thread_name_prefix="prefetch") as pool:
            list(pool.map(one, sorted(streams)))
        return len(streams)


def _takes_slot(fn) -> bool:
    import inspect

    return "slot_ms" in inspect.signature(fn).parameters
