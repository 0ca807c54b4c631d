"""Read-only views of a user's account: /config, /stats and /position."""

from __future__ import annotations

from decimal import Decimal

from ..models import User, UserConfig
from .chat_rows import notify_of, open_positions, pairs_with_rows, trade_figures
from .common import HUNDRED, ZERO, _mask
from .settings import SETTINGS
from .views import ConfigView, CredentialView, PairConfigView, PositionView, StatsView, TradeStats


class ReportsMixin:
    """Reading use cases (part of Services)."""

    def config_view(self, user: User, configs: list[UserConfig] | None = None) -> ConfigView:
        creds = []
        for cred in self.credentials(user):
            masked = None
            if cred.api_key_enc:
                try:
                    masked = _mask(self.vault.decrypt(cred.api_key_enc))
                except Exception:
                    masked = "(cannot decrypt)"
            creds.append(CredentialView(cred.exchange, cred.network, masked))
        if configs is None:
            rows = pairs_with_rows(user.id)
            configs, views = [r[0] for r in rows], [self._view(c, (state, cred), side) for c, state, cred, side in rows]
        else:
            views = self._views(configs)
        pairs = []
        for config, view in zip(configs, views, strict=True):
            settings = {name: getattr(config, spec[0]) for name, spec in SETTINGS.items()}
            settings.update(
                timeframe=config.timeframe, interval_seconds=config.interval_seconds, decider=config.decider,
                preset=getattr(config, "preset", None),
            )
            pairs.append(PairConfigView(view, settings))
        return ConfigView(creds, pairs, notify_of(user.id))

    def stats(self, user: User) -> StatsView:
        per_pair = []
        ids = set()
        total_funding = ZERO
        every = trade_figures(user.id)
        by_pair: dict[int | None, list] = {}
        for fill in every:
            by_pair.setdefault(fill[0], []).append(fill)
        for config, state, _cred, _side in pairs_with_rows(user.id):
            ids.add(config.id)
            trades = by_pair.get(config.id, [])
            funding = None
            if getattr(config, "market_type", "spot") == "futures":
                funding = (state.funding_paid or ZERO) if state is not None else ZERO
                total_funding += funding
            per_pair.append(_trade_stats(f"{config.symbol} ({config.exchange})", trades, funding))
        # Trades of removed pairs are kept (config set to NULL) and count in the total: show them as a row
        # of their own, so that the rows add up to the total.
        gone = [t for t in every if t[0] is None or t[0] not in ids]
        if gone:
            per_pair.append(_trade_stats("Removed pairs", gone))
        return StatsView(per_pair, _trade_stats("Total", every, total_funding if total_funding else None))

    def positions(self, user: User, configs: list[UserConfig] | None = None) -> list[PositionView]:
        configs = list(self._pairs(user)) if configs is None else configs
        ids = {c.id for c in configs}
        if not ids:
            return []
        out = []
        for pos, last in open_positions(user.id):
            if pos.config_id not in ids:
                continue
            upnl = upct = None
            futures = pos.margin is not None
            if last is not None:
                if futures:  # unrealized PnL of a perpetual, in % of its margin (ROE)
                    diff = last - pos.entry_price
                    upnl = -pos.amount * diff if pos.side == "short" else pos.amount * diff
                    upct = (upnl * HUNDRED / pos.margin) if pos.margin else ZERO
                else:
                    upnl = pos.amount * last - pos.cost_basis
                    upct = (upnl * HUNDRED / pos.cost_basis) if pos.cost_basis else ZERO
            extra = {}
            if futures:
                extra = {"side": pos.side, "market_type": "futures", "leverage": pos.leverage, "margin": pos.margin,
                         "liquidation_price": pos.liquidation_price, "funding": pos.funding}
            out.append(
                PositionView(
                    symbol=pos.symbol,
                    exchange=pos.exchange,
                    amount=pos.amount,
                    entry_price=pos.entry_price,
                    last_price=last,
                    cost_basis=pos.cost_basis,
                    unrealized_pnl=upnl,
                    unrealized_percent=upct,
                    stop_loss_price=pos.stop_loss_price,
                    take_profit_price=pos.take_profit_price,
                    opened_at=pos.opened_at,
                    **extra,
                )
            )
        return out


def _trade_stats(label: str, trades: list[tuple], funding: Decimal | None = None) -> TradeStats:
    """`trades`: (pair id, pnl, fee) of each fill (chat_rows.trade_figures); `funding`: futures funding paid
    (+) / received (-); it counts in the realized PnL."""
    closed = [t[1] for t in trades if t[1] is not None]
    return TradeStats(
        label=label,
        fills=len(trades),
        closed=len(closed),
        wins=sum(1 for p in closed if p > 0),
        losses=sum(1 for p in closed if p <= 0),
        realized_pnl=sum(closed, ZERO) - (funding or ZERO),
        best=max(closed) if closed else None,
        worst=min(closed) if closed else None,
        fees=sum((t[2] or ZERO for t in trades), ZERO),
        funding=funding,
    )
