"""--plot: price with entries/exits, and the equity curve vs buy-and-hold (matplotlib, extra `plot`)."""

from __future__ import annotations

import datetime as dt

from .replay import BacktestResult


class PlotUnavailable(RuntimeError):
    pass


def require_matplotlib() -> None:
    """Raise PlotUnavailable (naming the install command) when matplotlib is missing: checked before a
    possibly long run, not after it."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        from ..install_hints import extra_hint

        raise PlotUnavailable(f"--plot needs matplotlib: {extra_hint('plot', 'matplotlib')}") from None


def plot_result(r: BacktestResult, path) -> None:
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")  # files only, never a window
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt
    s, start = r.series, r.start
    tf = s.interval_ms

    def t(ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)

    x = [t(ms + tf) for ms in s.ts[start:]]  # values at candle close
    closes = s.close[start:]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(13, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    ax1.plot(x, closes, color="#555", lw=0.8, label=f"{r.config.symbol} close")
    buys = [(t(tr.entry_ts), float(tr.entry_price)) for tr in r.trades]
    colors = {"signal": "#d62728", "stop_loss": "black", "take_profit": "#1f77b4"}
    if buys:
        ax1.scatter(*zip(*buys, strict=True), marker="^", color="#2ca02c", s=28, zorder=3, label="buy")
    for reason, color in colors.items():
        pts = [(t(tr.exit_ts), float(tr.exit_price)) for tr in r.trades if tr.closed and tr.reason == reason]
        if pts:
            ax1.scatter(*zip(*pts, strict=True), marker="v", color=color, s=28, zorder=3,
                        label=f"sell ({reason.replace('_', '-')})")
    ax1.set_ylabel("price")
    ax1.legend(loc="best", fontsize=8)
    ax1.grid(alpha=0.3)
    bal = float(r.config.balance)
    first_open = s.open[start] if len(s) > start else 1.0
    ax2.plot(x, r.equity, color="#1f77b4", lw=1.0, label="bot equity")
    ax2.plot(x, [bal * c / first_open for c in closes], color="#999", lw=0.8, ls="--", label="buy and hold")
    for trip in r.trips:
        ax2.axvline(t(trip.ts), color="#d62728", lw=0.6, alpha=0.5)
    locator = mdates.AutoDateLocator()
    ax2.xaxis.set_major_locator(locator)
    ax2.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))  # no overlapping labels
    ax2.set_ylabel("equity")
    ax2.legend(loc="best", fontsize=8)
    ax2.grid(alpha=0.3)
    fig.suptitle(f"{r.config.exchange} {r.config.symbol} {r.config.timeframe} — {r.decider}"
                 + (f" ({len(r.trips)} breaker trips: red lines)" if r.trips else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
