"""Engine fixtures: a controllable clock, an in-process replay hub (real candles, simulated fills with the
exchange's rules and fees, fault injection, a ledger of every order the 'exchange' accepted), scripted
deciders, and helpers to create users and pairs.

The replay hub speaks the same interface as exchange.hub.ExchangeHub (market_data.candles/last_price,
broker(exchange, network, key, secret) -> Broker), so the cycle under test is the production code path.
End-to-end tests against the HTTP fake exchange use tests/fixtures_exchange.py instead.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from tests.fakes.exchange_data import BINANCE_SPECS, MINUTE, REAL_START, load_series
from tradebot.exchange.base import Fill, MarketRules
from tradebot.exchange.errors import ExchangeUnavailable, InsufficientFunds
from tradebot.exchange.paper import simulate_futures_fill, simulate_market_fill
from tradebot.models import ExchangeCredential, User, UserConfig
from tradebot.strategy.base import Candle, Decision

D = Decimal


class Clock:
    """Epoch-seconds clock driven by the test (BotManager(clock=clock))."""

    def __init__(self, ms: int):
        self.ms = ms

    def __call__(self) -> float:
        return self.ms / 1000

    def advance(self, minutes: float = 1) -> int:
        self.ms += int(minutes * MINUTE)
        return self.ms


FUTURES_FEE = D("0.0005")


def rules_for(symbol: str) -> MarketRules:
    """The real spot rules; a perpetual (BTC/USDT:USDT) gets its spot market's steps with the futures fee."""
    spec = BINANCE_SPECS[symbol.split(":")[0].replace("/", "")]
    fee = FUTURES_FEE if ":" in symbol else D("0.001")
    return MarketRules(
        symbol, spec.base, spec.quote, spec.step, spec.tick, spec.min_qty, spec.min_notional, fee
    )


class ReplayMarketData:
    """Closed 1m candles up to the clock from real (or given) series; the last price = last close."""

    def __init__(self, clock: Clock, series: dict[str, list[Candle]] | None = None):
        self.clock = clock
        self.series = series or {}
        self.calls = {"candles": 0, "last_price": 0}

    def _series(self, symbol: str) -> list[Candle]:
        symbol = symbol.split(":")[0]  # a perpetual replays its spot bars (the replay has no basis)
        s = self.series.get(symbol)
        if s is None:
            raw = load_series(symbol.replace("/", ""))
            s = [
                Candle(
                    raw.start + i * MINUTE,
                    float(raw.o[i]),
                    float(raw.h[i]),
                    float(raw.l[i]),
                    float(raw.c[i]),
                    float(raw.v[i]),
                )
                for i in range(len(raw))
            ]
            self.series[symbol] = s
        return s

    def _closed_index(self, symbol: str) -> int:
        s = self._series(symbol)
        n = (self.clock.ms - s[0].ts) // MINUTE  # candles fully closed
        return max(0, min(n, len(s)))

    def candles(self, exchange, network, symbol, timeframe, limit=100):
        self.calls["candles"] += 1
        s = self._series(symbol)
        n = self._closed_index(symbol)
        return s[max(0, n - limit) : n]

    def last_price(self, exchange, network, symbol):
        self.calls["last_price"] += 1
        s = self._series(symbol)
        n = self._closed_index(symbol)
        return D(repr(s[n - 1].close)) if n else D(0)


class SimBroker:
    """An account on a simulated exchange: market orders fill at the last price with the real rules and
    fees (fee in the received asset). `ledger` maps client order id -> Fill for every ACCEPTED order;
    `sends` counts send attempts per client id (duplicates would show up here)."""

    def __init__(self, hub: ReplayHub, exchange: str, network: str, key: str | None):
        self.hub, self.exchange, self.network, self.key = hub, exchange, network, key
        self.ledger: dict[str, Fill] = {}
        self.sends: dict[str, int] = {}
        self.fault: str | None = None  # None | "unavailable" (not sent) | "fill_then_drop" | "insufficient"
        self.lock = threading.Lock()

    def rules(self, symbol: str) -> MarketRules:
        return rules_for(symbol)

    def _place(self, symbol, side, coid, quote=None, base=None) -> Fill:
        with self.lock:
            self.sends[coid] = self.sends.get(coid, 0) + 1
            fault, self.fault = self.fault, None
        if fault == "unavailable":
            raise ExchangeUnavailable("Binance is not reachable right now.")
        if fault == "insufficient":
            raise InsufficientFunds("Insufficient balance on Binance for this order.")
        price = self.hub.market_data.last_price(self.exchange, self.network, symbol)
        fill = simulate_market_fill(
            rules_for(symbol),
            side,
            price,
            coid,
            quote_amount=quote,
            base_amount=base,
            timestamp=self.hub.clock.ms,
        )
        with self.lock:
            self.ledger[coid] = fill
        if fault == "fill_then_drop":
            raise ExchangeUnavailable("connection lost")
        return fill

    def market_buy(self, symbol, quote_amount, client_order_id):
        return self._place(symbol, "buy", client_order_id, quote=quote_amount)

    def market_sell(self, symbol, base_amount, client_order_id):
        return self._place(symbol, "sell", client_order_id, base=base_amount)

    def find_order(self, symbol, client_order_id):
        with self.lock:
            return self.ledger.get(client_order_id)

    # futures (paper rules: exchange.paper.simulate_futures_fill), for pairs named BTC/USDT:USDT
    def futures_order(self, symbol, side, base_amount, client_order_id, reduce_only=False, price=None,
                      liquidation=False, leverage=None, margin_mode=None):
        with self.lock:
            self.sends[client_order_id] = self.sends.get(client_order_id, 0) + 1
            fault, self.fault = self.fault, None
        if fault == "unavailable":
            raise ExchangeUnavailable("Binance is not reachable right now.")
        px = price if price is not None else self.hub.market_data.last_price(self.exchange, self.network,
                                                                             symbol.split(":")[0])
        fill = simulate_futures_fill(self.rules(symbol), side, px, client_order_id, base_amount, FUTURES_FEE,
                                     timestamp=self.hub.clock.ms, charge_fee=not liquidation)
        with self.lock:
            self.ledger[client_order_id] = fill
        if fault == "fill_then_drop":
            raise ExchangeUnavailable("connection lost")
        return fill

    def funding_rate(self, symbol):
        return D("0.0001")


class ReplayHub:
    def __init__(self, clock: Clock, series=None):
        self.clock = clock
        self.market_data = ReplayMarketData(clock, series)
        self.brokers: dict[tuple, SimBroker] = {}
        self.broker_calls = 0

    def broker(self, exchange, network, api_key=None, secret=None):
        self.broker_calls += 1
        key = (exchange, network, api_key)
        b = self.brokers.get(key)
        if b is None:
            b = self.brokers[key] = SimBroker(self, exchange, network, api_key)
        return b

    def all_fills(self) -> dict[str, Fill]:
        out = {}
        for b in self.brokers.values():
            out.update(b.ledger)
        return out


class StubVault:
    def encrypt(self, text: str) -> str:
        return "enc:" + text[::-1]

    def decrypt(self, token: str) -> str:
        assert token.startswith("enc:")
        return token[4:][::-1]


class ScriptedDecider:
    """Answers from a script {candle_ts: action}; hold otherwise. `name` is the provider."""

    def __init__(self, script: dict[int, str] | None = None, name: str = "scripted", confidence: int = 90):
        self.script = script or {}
        self.name = name
        self.confidence = confidence
        self.calls = 0

    def decide(self, ctx):
        self.calls += 1
        action = self.script.get(ctx.candles[-1].ts, "hold") if ctx.candles else "hold"
        return Decision(
            action, self.confidence, f"scripted {action}", self.name, inputs="script", response=action
        )


class RaisingDecider:
    name = "raising"

    def __init__(self):
        self.on = True

    def decide(self, ctx):
        if self.on:
            raise RuntimeError("decider exploded")
        return Decision("hold", 50, "ok", self.name)


def flat_series(start_ms: int, n: int, price: float = 100.0) -> list[Candle]:
    return [Candle(start_ms + i * MINUTE, price, price, price, price, 1.0) for i in range(n)]


def make_user(telegram_id: int, username: str | None = None) -> User:
    return User.create(telegram_id=telegram_id, username=username or f"u{telegram_id}")


def make_pair(
    user: User, symbol: str = "BTC/USDT", budget="1000", network: str = "paper", **kw
) -> UserConfig:
    exchange = kw.pop("exchange", "binance")
    if (
        ExchangeCredential.get_or_none(
            (ExchangeCredential.user == user.id) & (ExchangeCredential.exchange == exchange)
        )
        is None
    ):
        vault = StubVault()
        ExchangeCredential.create(
            user=user.id,
            exchange=exchange,
            network=network,
            api_key_enc=None if network == "paper" else vault.encrypt(f"key{user.id}"),
            secret_enc=None if network == "paper" else vault.encrypt(f"secret{user.id}"),
        )
    return UserConfig.create(user=user.id, exchange=exchange, symbol=symbol, budget=D(budget), **kw)


@pytest.fixture
def clock():
    return Clock(REAL_START + 600 * MINUTE)


@pytest.fixture
def replay_hub(clock):
    return ReplayHub(clock)


@pytest.fixture
def deciders():
    """name -> Decider registry the manager's factory reads; tests put scripted deciders in it."""
    from tradebot.strategy.technical import TechnicalDecider

    return {"technical": TechnicalDecider()}


@pytest.fixture
def engine(database, replay_hub, clock, deciders):
    from tradebot.engine.manager import BotManager

    mgr = BotManager(replay_hub, lambda name: deciders[name], vault=StubVault(), clock=clock, max_workers=4)
    yield mgr
    mgr._stopping.set()
    if mgr._started:
        mgr.scheduler.shutdown(wait=False)
