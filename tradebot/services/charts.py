"""/chart and /equity: the user's own candles, fills and positions gathered into chart data
(tradebot/charts/model.py) and drawn on the chart worker. Only rows of the acting user are read."""

from __future__ import annotations

import bisect
import datetime as dt
import logging
from dataclasses import dataclass
from decimal import Decimal

import peewee as pw

from ..charts import equity as eq
from ..charts.model import EquityChart, EquitySeries, Level, Marker, PriceChart
from ..charts.render import ChartsUnavailable, render_equity, render_price
from ..charts.worker import ChartWorker
from ..models import Order, Position, RiskEvent, Trade, User, UserConfig, UserState
from ..strategy.incremental import EMA
from .views import InvalidValue, NotFound, ServiceError

log = logging.getLogger("tradebot.services")

CHART_CANDLES = 150
WARMUP = 50  # candles before the first shown one, so the EMA lines start settled
CHART_TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")


class ChartsOff(ServiceError):
    """matplotlib is missing on this server."""


@dataclass(frozen=True)
class ChartImage:
    png: bytes
    caption: str  # plain text


def to_ms(value: dt.datetime) -> int:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return int(value.timestamp() * 1000)


def is_futures(config) -> bool:
    """A perpetual-futures pair: market_type (migration 4), or a ccxt linear symbol (BTC/USDT:USDT)."""
    return getattr(config, "market_type", "spot") == "futures" or ":" in config.symbol


def marker_kind(trade_side: str, position_side: str | None, futures: bool) -> str:
    """How a fill is drawn: buy/sell on spot; entry/exit of a long or short position on futures."""
    side = (trade_side or "").lower()
    if not futures:
        return "sell" if side == "sell" else "buy"
    pos = (position_side or "long").lower()
    if pos == "short":
        return "short_entry" if side == "sell" else "short_exit"
    return "long_entry" if side == "buy" else "long_exit"


class ChartsMixin:
    """Chart use cases (part of Services)."""

    @property
    def chart_worker(self) -> ChartWorker:
        worker = self.__dict__.get("_chart_worker")
        if worker is None:
            worker = getattr(self.app, "chart_worker", None) or ChartWorker()
            self.__dict__["_chart_worker"] = worker
        return worker

    def _candles(self, user: User, config: UserConfig, timeframe: str, limit: int):
        network = self._pair_network(user, config)
        return self._ask_exchange(
            lambda: self.hub.market_data.candles(config.exchange, network, config.symbol, timeframe, limit),
            config.exchange, network, "candles", "Could not fetch candles from the exchange. Try again later.",
        )

    def _pair_network(self, user: User, config: UserConfig) -> str:
        state = UserState.get_or_none(UserState.config == config.id)
        if state is not None and state.mode:
            return state.mode
        cred = self._credential(user, config.exchange)
        return cred.network if cred is not None else "paper"

    def _draw(self, key: tuple, fn, data) -> bytes:
        try:
            return self.chart_worker.render(key, fn, data)
        except ChartsUnavailable:
            from ..install_hints import extra_hint

            log.warning("a chart was asked for but matplotlib is not installed: %s", extra_hint("plot", "matplotlib"))
            raise ChartsOff("Charts are not available on this bot: the administrator has to install matplotlib.") \
                from None

    # ---------------------------------------------------------------- /chart

    def price_chart_data(self, user: User, config: UserConfig, timeframe: str | None = None) -> PriceChart:
        config = self.pair_by_id(user, config.id)
        tf = (timeframe or config.timeframe or "1m").lower()
        if tf not in CHART_TIMEFRAMES:
            raise InvalidValue(f"Timeframe must be one of: {', '.join(CHART_TIMEFRAMES)}.")
        candles = self._candles(user, config, tf, CHART_CANDLES + WARMUP)
        if not candles:
            raise NotFound(f"No candles for {config.symbol} yet. Try again in a minute.")
        fast, slow = EMA(12), EMA(26)
        f_line, s_line = [], []
        for c in candles:
            f_line.append(fast.update(c.close))
            s_line.append(slow.update(c.close))
        shown = candles[-CHART_CANDLES:]
        k = len(candles) - len(shown)
        first_ms = shown[0].ts
        futures = is_futures(config)
        rows = (
            Trade.select(Trade.id, Trade.side, Trade.price, Trade.executed_at, Position.side.alias("pos_side"))
            .join(Position, pw.JOIN.LEFT_OUTER, on=(Trade.position == Position.id))
            .where((Trade.user == user.id) & (Trade.config == config.id)
                   & (Trade.executed_at >= dt.datetime.fromtimestamp(first_ms / 1000, dt.timezone.utc)
                      .replace(tzinfo=None)))
            .order_by(Trade.id)
            .dicts()
        )
        markers = [Marker(to_ms(r["executed_at"]), r["price"], marker_kind(r["side"], r["pos_side"], futures), r["id"])
                   for r in rows]
        levels = []
        pos = (Position.select().where((Position.user == user.id) & (Position.config == config.id)
                                       & (Position.status == "open")).order_by(Position.id.desc()).first())
        if pos is not None:
            levels.append(Level("entry", pos.entry_price))
            if pos.stop_loss_price is not None:
                levels.append(Level("stop-loss", pos.stop_loss_price))
            if pos.take_profit_price is not None:
                levels.append(Level("take-profit", pos.take_profit_price))
        view = self._view(config)
        state = UserState.get_or_none(UserState.config == config.id)
        price = state.last_price if state is not None and state.last_price is not None else \
            Decimal(str(shown[-1].close))
        pnl = view.pnl if state is not None else None
        return PriceChart(
            symbol=config.symbol, exchange=config.exchange, timeframe=tf,
            ts=[c.ts for c in shown], open=[c.open for c in shown], high=[c.high for c in shown],
            low=[c.low for c in shown], close=[c.close for c in shown],
            lines={"EMA 12": f_line[k:], "EMA 26": s_line[k:]},
            markers=markers, levels=levels, price=price, pnl=pnl,
            pnl_percent=view.pnl_percent if pnl is not None else None,
        )

    def price_chart(self, user: User, config: UserConfig, timeframe: str | None = None) -> ChartImage:
        data = self.price_chart_data(user, config, timeframe)
        # what the picture shows: the same pair, candles, fills, position and PnL give the same PNG
        key = ("price", config.id, data.timeframe, data.last_ts, tuple(m.trade_id for m in data.markers[-1:]),
               len(data.markers), tuple((lv.label, str(lv.price)) for lv in data.levels), str(data.price),
               str(data.pnl))
        png = self._draw(key, render_price, data)
        caption = f"{config.symbol} ({config.exchange}) {data.timeframe}, last {len(data.ts)} candles"
        return ChartImage(png, caption)

    # ---------------------------------------------------------------- /equity

    def equity_chart_data(self, user: User, configs: list[UserConfig] | None = None) -> EquityChart:
        configs = list(self._pairs(user)) if configs is None else [self.pair_by_id(user, c.id) for c in configs]
        if not configs:
            raise NotFound("You have no pairs yet. Add one with /addpair.")
        now = self.hub.market_data.now_ms()
        since = min(to_ms(c.created_at) for c in configs)
        max_candles = int(getattr(self.hub.market_data, "max_candles", 300))
        tf, tf_ms = eq.grid_timeframe(since, now, max_candles)
        per_pair = []
        for config in configs:
            start = to_ms(config.created_at)
            need = min(max_candles, max(2, (now - start) // tf_ms + 2))
            candles = [c for c in self._candles(user, config, tf, need) if c.ts + tf_ms > start]
            steps = self._fill_steps(user, config)
            ts = [c.ts for c in candles]
            close = [c.close for c in candles]
            per_pair.append((config, ts, eq.equity_curve(config.budget, steps, ts, close, tf_ms),
                             eq.hold_curve(config.budget, close)))
        if not any(ts for _c, ts, _e, _h in per_pair):
            raise NotFound(f"No equity history yet: come back after the first {tf} candle has closed.")
        ids = [c.id for c in configs]
        trips_q = RiskEvent.select(RiskEvent.created_at).where(
            (RiskEvent.user == user.id) & (RiskEvent.kind != "reset")
            & (RiskEvent.created_at >= dt.datetime.fromtimestamp(since / 1000, dt.timezone.utc).replace(tzinfo=None))
            & ((RiskEvent.config.in_(ids)) | (RiskEvent.scope == "user"))
        )
        trips = sorted(to_ms(r.created_at) for r in trips_q)
        views = self._views(configs)
        total_equity = sum((v.equity for v in views), Decimal(0))
        total_pnl = sum((v.pnl for v in views), Decimal(0))
        if len(configs) == 1:
            config, ts, equity, hold = per_pair[0]
            series = [EquitySeries(config.symbol, ts, equity, hold)]
            title = f"{config.symbol} · {config.exchange} · equity since added"
        else:
            grid = sorted({t for _c, ts, _e, _h in per_pair for t in ts})
            tot_e, tot_h = [0.0] * len(grid), [0.0] * len(grid)
            for _config, ts, equity, hold in per_pair:
                for g, t in enumerate(grid):
                    i = bisect.bisect_right(ts, t) - 1
                    if i >= 0:
                        tot_e[g] += equity[i]
                        tot_h[g] += hold[i]
            series = [EquitySeries("all pairs", grid, tot_e, tot_h)]
            title = f"All {len(configs)} pairs · equity since added"
        return EquityChart(title, series, trips, total_equity, total_pnl)

    def _fill_steps(self, user: User, config: UserConfig) -> list[eq.FillStep]:
        quote = config.symbol.split("/")[-1].split(":")[0]
        base = config.symbol.split("/")[0]
        futures = is_futures(config)
        rows = (Trade.select(Trade.side, Trade.amount, Trade.cost, Trade.fee, Trade.pnl, Trade.executed_at,
                             Order.fee_currency)
                .join(Order, pw.JOIN.LEFT_OUTER, on=(Trade.order == Order.id))
                .where((Trade.user == user.id) & (Trade.config == config.id)).dicts())
        steps = []
        for r in rows:
            fee = r["fee"] or Decimal(0)
            ts = to_ms(r["executed_at"])
            if futures or r["side"] not in ("buy", "sell"):
                # margin accounting is the futures engine's: the curve moves by realized PnL only
                steps.append(eq.FillStep(ts, Decimal(0), r["pnl"] or Decimal(0)))
            elif r["side"] == "buy":
                spent = r["cost"] + (fee if r["fee_currency"] == quote else Decimal(0))
                steps.append(eq.FillStep(ts, r["amount"], -spent))
            else:
                got = r["cost"] - (Decimal(0) if r["fee_currency"] == base else fee)
                steps.append(eq.FillStep(ts, -r["amount"], got))
        return steps

    def equity_chart(self, user: User, configs: list[UserConfig] | None = None) -> ChartImage:
        data = self.equity_chart_data(user, configs)
        s = data.series[0]
        key = ("equity", user.id, tuple(c.id for c in (configs or [])), s.label, tuple(s.ts[-1:]), len(s.ts),
               tuple(round(x, 6) for x in s.equity[-1:]), tuple(data.trips), str(data.equity))
        png = self._draw(key, render_equity, data)
        return ChartImage(png, data.title.replace(" · ", ", "))
