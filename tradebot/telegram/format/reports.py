"""Replies for /set, /config, /stats and /position."""

from __future__ import annotations

from decimal import Decimal

from ...services import (
    SETTINGS,
    ConfigView,
    PositionView,
    SettingChange,
    StatsView,
    TradeStats,
)
from .base import e, money, number, percent, pnl, price
from .pairs import status_icon


def setting_changed(change: SettingChange) -> str:
    return (
        f"⚙️ {e(change.symbol)} ({e(change.exchange)}): {e(change.setting)} "
        f"{e(_setting_value(change.setting, change.old))} → {e(_setting_value(change.setting, change.new))}"
    )


def _setting_value(name: str, value) -> str:
    spec = SETTINGS.get(name)
    if isinstance(value, Decimal):
        text = number(value)
    else:
        text = str(value)
    if spec and spec[1] == "percent":
        return text + "%"
    if name == "cooldown":
        return text + " min"
    return text


def config(view: ConfigView, deciders=None) -> str:
    lines = ["⚙️ <b>Configuration</b>"]
    if view.credentials:
        lines.append("Exchanges:")
        for c in view.credentials:
            key = f", key <code>{e(c.api_key_masked)}</code>" if c.api_key_masked else ""
            lines.append(f"• {e(c.exchange)} ({e(c.network)}){key}")
    else:
        lines.append(
            "No exchange connected: /connect binance <api_key> <secret> true — or /connect binance paper".replace(
                "<", "&lt;"
            ).replace(">", "&gt;")
        )
    lines.append(f"Notifications: {'on' if view.notify else 'off'}")
    for pc in view.pairs:
        p = pc.pair
        s = pc.settings
        lines += [
            "",
            f"<b>{e(p.symbol)}</b> ({e(p.exchange)}, {e(p.network)}) {status_icon(p)}",
            f"Balance: {money(p.budget)}",
            *([f"Market: futures, {e(p.margin_mode)} margin, direction {e(p.direction)}"]
              if p.market_type == "futures" else ["Market: spot"]),
            f"Strategy: {e(s['decider'])}, {e(s['timeframe'])} candles, every {int(s['interval_seconds'])} s",
            f"Preset: {e(s['preset']) if s.get('preset') else 'none (defaults)'}",
        ]
        for name in SETTINGS:
            if name == "leverage" and p.market_type != "futures":
                continue
            lines.append(f"{name}: {e(_setting_value(name, s[name]))}")
    if not view.pairs:
        lines += ["", "No pairs yet: /addpair BTC/USDT 1000"]
    if deciders:
        from .ai import deciders_line

        lines += ["", deciders_line(deciders)]
    return "\n".join(lines)


def _stats_block(s: TradeStats) -> list[str]:
    rate = percent(s.win_rate) if s.win_rate is not None else "—"
    lines = [
        f"<b>{e(s.label)}</b>",
        f"Trades: {s.fills} fills, {s.closed} closed ({s.wins} won, {s.losses} lost)",
        f"Win rate: {rate}",
        f"Realized PnL: {money(s.realized_pnl)}",
    ]
    if s.closed:
        lines.append(f"Best: {money(s.best)} | Worst: {money(s.worst)}")
    lines.append(f"Fees: {money(s.fees)}")
    if s.funding is not None:
        lines.append(f"Funding paid: {money(s.funding)} (in the realized PnL)")
    return lines


def stats(view: StatsView) -> str:
    lines = ["📈 <b>Your Trading Statistics</b>"]
    for s in view.pairs:
        lines += [""] + _stats_block(s)
    lines += [""] + _stats_block(view.total)
    return "\n".join(lines)


def positions(views: list[PositionView]) -> str:
    if not views:
        return "📭 No open positions."
    lines = [f"📍 <b>Open Positions ({len(views)})</b>"]
    for p in views:
        if p.market_type == "futures":
            lines += [
                "",
                f"<b>{e(p.symbol)}</b> ({e(p.exchange)}) {e(p.side.upper())} {p.leverage}x",
                f"Size: {number(p.amount)} @ entry {price(p.entry_price)} | Mark: {price(p.last_price)}",
                f"Margin: {money(p.margin)} | Liquidation: {price(p.liquidation_price)}",
                f"Funding paid: {money(p.funding or Decimal(0))}",
            ]
        else:
            lines += [
                "",
                f"<b>{e(p.symbol)}</b> ({e(p.exchange)}) LONG",
                f"Amount: {number(p.amount)} @ {price(p.entry_price)}",
                f"Cost: {money(p.cost_basis)} | Last: {price(p.last_price)}",
            ]
        if p.unrealized_pnl is not None:
            lines.append(f"Unrealized PnL: {pnl(p.unrealized_pnl, p.unrealized_percent)}")
        lines.append(f"Stop-loss: {price(p.stop_loss_price)} | Take-profit: {price(p.take_profit_price)}")
    return "\n".join(lines)
