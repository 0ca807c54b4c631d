"""Backtest report: metrics from a BacktestResult, as a dict (JSON) or text; trades CSV.

Definitions (also in the README, section Backtesting):
- return %: (end equity / start equity - 1) * 100; end equity values an open position at the last close.
- buy-and-hold %: (last close / first traded candle's open - 1) * 100, no fees.
- max drawdown %: largest fall from a running peak of the equity sampled at every candle close.
- trades: closed round trips; win rate: share with pnl > 0 (pnl includes both fees).
- profit factor: gross profit / gross loss of closed trades (None when there is no losing trade).
- exposure %: share of traded candles that closed with a position held.
- Sharpe: mean / standard deviation (ddof 1) of per-candle equity returns, times sqrt(candles per
  365-day year); risk-free rate 0.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from decimal import Decimal

from .data import timeframe_name
from .replay import BacktestResult

YEAR_MS = 365 * 86_400_000


def iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _num(d: Decimal | None, places: int = 8) -> float | None:
    return None if d is None else round(float(d), places)


def max_drawdown_pct(start: float, equity: list[float]) -> float:
    peak, worst = start, 0.0
    for e in equity:
        if e > peak:
            peak = e
        elif peak > 0.0:
            dd = (peak - e) / peak
            if dd > worst:
                worst = dd
    return worst * 100.0


def sharpe(start: float, equity: list[float], interval_ms: int) -> float | None:
    if len(equity) < 2:
        return None
    prev, rets = start, []
    for e in equity:
        rets.append(e / prev - 1.0 if prev else 0.0)
        prev = e
    n = len(rets)
    mean = sum(rets) / n
    var = sum((r - mean) ** 2 for r in rets) / (n - 1)
    if var <= 0.0:
        return None
    return mean / math.sqrt(var) * math.sqrt(YEAR_MS / interval_ms)


def build_report(r: BacktestResult) -> dict:
    s, cfg = r.series, r.config
    start = float(cfg.balance)
    end = r.final_equity
    closed = [t for t in r.trades if t.closed]
    wins = [t for t in closed if t.pnl > 0]
    losses = [t for t in closed if t.pnl <= 0]
    gross_win = sum((t.pnl for t in wins), Decimal(0))
    gross_loss = -sum((t.pnl for t in losses), Decimal(0))
    n = len(s) - r.start
    first_open = s.open[r.start] if n > 0 else None
    last_close = s.close[-1] if n > 0 else None
    best = max(closed, key=lambda t: t.pnl, default=None)
    worst = min(closed, key=lambda t: t.pnl, default=None)
    open_pos = next((t for t in r.trades if not t.closed), None)
    sh = sharpe(start, r.equity, s.interval_ms)
    rep = {
        "exchange": cfg.exchange,
        "symbol": cfg.symbol,
        "timeframe": timeframe_name(s.interval_ms),
        "decider": r.decider,
        "period": {"from": iso(s.ts[r.start]) if n else None,
                   "to": iso(s.ts[-1] + s.interval_ms) if n else None,
                   "candles": n, "warmup_candles": r.start},
        "start_equity": _num(cfg.balance),
        "end_equity": _num(end),
        "end_equity_exact": format(end.normalize(), "f"),
        "return_percent": round((float(end) / start - 1.0) * 100.0, 4) if start else None,
        "buy_and_hold_return_percent": round((last_close / first_open - 1.0) * 100.0, 4) if n else None,
        "max_drawdown_percent": round(max_drawdown_pct(start, r.equity), 4),
        "trades": len(closed),
        "win_rate_percent": round(len(wins) * 100.0 / len(closed), 2) if closed else None,
        "profit_factor": round(float(gross_win / gross_loss), 4) if gross_loss > 0 else None,
        "average_win": _num(gross_win / len(wins)) if wins else None,
        "average_loss": _num(-gross_loss / len(losses)) if losses else None,
        "best_trade": _trade_brief(best),
        "worst_trade": _trade_brief(worst),
        "exposure_percent": round(r.in_position * 100.0 / n, 2) if n else 0.0,
        "sharpe_ratio": round(sh, 4) if sh is not None else None,
        "sharpe_annualisation": f"sqrt({YEAR_MS // s.interval_ms} {timeframe_name(s.interval_ms)} candles per 365-day year)",
        "fees_paid": _num(r.book.fees_paid),
        "circuit_breaker_trips": len(r.trips),
        "breaker_trips": [{"at": iso(t.ts), "kind": t.kind, "detail": t.detail, "until": iso(t.until_ms)}
                          for t in r.trips],
        "exits": _count(t.reason for t in closed),
        "buys_refused": dict(r.skipped),
        "open_position": None if open_pos is None else {
            "since": iso(open_pos.entry_ts), "amount": _num(open_pos.amount), "entry_price": _num(open_pos.entry_price)},
        "unfilled_at_end": r.unfilled_at_end,
        "fills": {"rule": r.fill_source, "entries_and_signal_exits": "next candle open",
                  "stop_loss_take_profit": "trigger price inside the candle" if r.exit_fill == "trigger"
                  else "next candle open", "fee_rate": _num(cfg.rules.taker_fee)},
    }
    if cfg.settings.market == "futures":
        rep["futures"] = _futures_part(r, closed)
    return rep


def _futures_part(r: BacktestResult, closed: list) -> dict:
    """Long and short results apart, funding and liquidations (futures backtests only)."""
    st = r.config.settings
    sides = {}
    for side in ("long", "short"):
        ts = [t for t in closed if t.side == side]
        pnl = sum((t.pnl for t in ts), Decimal(0))
        sides[side] = {"trades": len(ts), "wins": sum(1 for t in ts if t.pnl > 0), "pnl": _num(pnl),
                       "pnl_exact": format(pnl.normalize(), "f") if ts else "0",
                       "funding": _num(sum((t.funding for t in ts), Decimal(0)))}
    return {"leverage": st.leverage, "direction": st.direction,
            "funding": "per-time file" if isinstance(st.funding_rate, dict) else _num(st.funding_rate),
            "funding_paid": _num(r.book.funding_paid), "liquidations": sum(1 for t in closed if t.reason == "liquidation"),
            "by_side": sides}


def _count(items) -> dict:
    out: dict = {}
    for k in items:
        out[k] = out.get(k, 0) + 1
    return out


def _trade_brief(t) -> dict | None:
    if t is None:
        return None
    return {"entry": iso(t.entry_ts), "exit": iso(t.exit_ts), "pnl": _num(t.pnl),
            "pnl_percent": round(float(t.pnl_percent), 4), "reason": t.reason}


def to_json(report: dict) -> str:
    return json.dumps(report, indent=2)


def _fmt(v, suffix: str = "", places: int = 2) -> str:
    if v is None:
        return "n/a"
    return f"{v:,.{places}f}{suffix}"


def format_text(rep: dict) -> str:
    p = rep["period"]
    b, w = rep["best_trade"], rep["worst_trade"]
    lines = [
        f"Backtest {rep['exchange']} {rep['symbol']} {rep['timeframe']} — decider {rep['decider']}",
        f"Period            {p['from']} -> {p['to']} ({p['candles']:,} candles, {p['warmup_candles']} warm-up)",
        f"Start equity      {_fmt(rep['start_equity'], places=2)}",
        f"End equity        {_fmt(rep['end_equity'], places=2)}",
        f"Return            {_fmt(rep['return_percent'], ' %')}",
        f"Buy and hold      {_fmt(rep['buy_and_hold_return_percent'], ' %')}",
        f"Max drawdown      {_fmt(rep['max_drawdown_percent'], ' %')}",
        f"Trades            {rep['trades']}" + (f" (exits: {', '.join(f'{k} {v}' for k, v in rep['exits'].items())})"
                                               if rep["exits"] else ""),
        f"Win rate          {_fmt(rep['win_rate_percent'], ' %')}",
        f"Profit factor     {_fmt(rep['profit_factor'])}",
        f"Average win       {_fmt(rep['average_win'], places=4)}",
        f"Average loss      {_fmt(rep['average_loss'], places=4)}",
        f"Best trade        {_fmt(b and b['pnl'], places=4)}" + (f" ({b['pnl_percent']:+.2f} %, {b['entry']})" if b else ""),
        f"Worst trade       {_fmt(w and w['pnl'], places=4)}" + (f" ({w['pnl_percent']:+.2f} %, {w['entry']})" if w else ""),
        f"Exposure          {_fmt(rep['exposure_percent'], ' %')}",
        f"Sharpe ratio      {_fmt(rep['sharpe_ratio'])} (annualised: {rep['sharpe_annualisation']}, risk-free 0)",
        f"Fees paid         {_fmt(rep['fees_paid'], places=4)}",
        f"Breaker trips     {rep['circuit_breaker_trips']}",
    ]
    for t in rep["breaker_trips"][:10]:
        lines.append(f"  {t['at']} {t['kind']}: {t['detail']} (paused until {t['until']})")
    if len(rep["breaker_trips"]) > 10:
        lines.append(f"  ... {len(rep['breaker_trips']) - 10} more (see --json)")
    if rep["buys_refused"]:
        lines.append("Buys refused      " + ", ".join(f"{k} {v}" for k, v in rep["buys_refused"].items()))
    if rep["open_position"]:
        o = rep["open_position"]
        lines.append(f"Open at end       {o['amount']} since {o['since']} at {o['entry_price']} (valued at last close)")
    if rep["unfilled_at_end"]:
        lines.append(f"Not filled        {rep['unfilled_at_end']}")
    fut = rep.get("futures")
    if fut:
        lines.append(f"Futures           {fut['leverage']}x, direction {fut['direction']}, funding {fut['funding']}, "
                     f"funding paid {_fmt(fut['funding_paid'], places=4)}, liquidations {fut['liquidations']}")
        for side, v in fut["by_side"].items():
            lines.append(f"  {side:<5}           {v['trades']} trades, {v['wins']} won, PnL {_fmt(v['pnl'], places=4)} "
                         f"(funding {_fmt(v['funding'], places=4)})")
    f = rep["fills"]
    lines.append(f"Fills             entries/signal exits at {f['entries_and_signal_exits']}; "
                 f"stop-loss/take-profit at {f['stop_loss_take_profit']}; fee {f['fee_rate']}")
    return "\n".join(lines)


TRADE_FIELDS = ["n", "entry_time", "entry_price", "amount", "entry_cost", "entry_fee", "exit_time", "exit_price",
                "proceeds", "exit_fee", "pnl", "pnl_percent", "reason", "bars", "confidence", "reasoning", "side"]


def write_trades_csv(r: BacktestResult, path) -> int:
    """One row per round trip (an open position at the end has empty exit columns). Exact decimals."""
    def f(d):
        return "" if d is None else format(d, "f")

    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(TRADE_FIELDS)
        for i, t in enumerate(r.trades, 1):
            w.writerow([i, iso(t.entry_ts), f(t.entry_price), f(t.amount), f(t.entry_cost), f(t.entry_fee),
                        iso(t.exit_ts) or "", f(t.exit_price), f(t.proceeds), f(t.exit_fee), f(t.pnl),
                        "" if t.pnl_percent is None else f"{t.pnl_percent:.4f}", t.reason or "open",
                        t.bars, t.confidence, t.reasoning, t.side])
    return len(r.trades)
