"""PNG rendering with matplotlib's object API (no pyplot: no global state, safe off the main thread).

matplotlib is imported on the first chart only, so a bot that never draws one does not pay its memory.
Images are WIDTH x HEIGHT pixels with fonts sized for a phone, where Telegram shows a photo ~400 px wide.
"""

from __future__ import annotations

import bisect
import datetime as dt
import io
import logging

from .model import EquityChart, PriceChart

WIDTH, HEIGHT = 1024, 768
DPI = 160  # 6.4 x 4.8 inches: 11 pt text is ~10 px tall at the size a phone shows the photo

UP, DOWN = "#26a69a", "#ef5350"
MARKER_STYLE = {  # kind -> (marker, colour, legend label)
    "buy": ("^", "#1b5e20", "buy"),
    "sell": ("v", "#b71c1c", "sell"),
    "long_entry": ("^", "#1b5e20", "long entry"),
    "long_exit": ("v", "#2e7d32", "long exit"),
    "short_entry": ("v", "#b71c1c", "short entry"),
    "short_exit": ("^", "#c62828", "short exit"),
}
LEVEL_STYLE = {"entry": ("#1565c0", "-"), "stop-loss": ("#c62828", "--"), "take-profit": ("#2e7d32", "--")}
LEVEL_SHORT = {"entry": "entry", "stop-loss": "SL", "take-profit": "TP"}
FONT_TITLE, FONT_TICKS, FONT_SMALL = 15, 12, 11
LINE_COLOURS = ("#ff9800", "#6a1b9a", "#00838f", "#795548")


class ChartsUnavailable(RuntimeError):
    """matplotlib is not installed."""


def _figure():
    # matplotlib logs every font lookup at DEBUG: noise in a bot's log, not information
    logging.getLogger("matplotlib").setLevel(max(logging.INFO, logging.getLogger("matplotlib").level))
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ChartsUnavailable("matplotlib is not installed") from None
    fig = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    # zlib level 6 instead of 9: a third of the time, a few KB more
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": 6})
    fig.clear()  # drop the artists now rather than at the next garbage collection
    return buf.getvalue()


def _num(value, digits: int = 6) -> str:
    """A price or amount short enough for a title: 6 significant digits, no exponent."""
    if value is None:
        return "-"
    f = float(value)
    text = f"{f:,.2f}" if abs(f) >= 1000 else f"{f:.{digits}g}"
    return text


def _time_labels(ax, ts: list[int], interval_ms: int) -> None:
    n = len(ts)
    if not n:
        return
    step = max(1, n // 5)
    idx = list(range(0, n, step))
    fmt = "%m-%d" if interval_ms >= 86_400_000 else "%m-%d %H:%M" if interval_ms >= 3_600_000 else "%H:%M"
    ax.set_xticks(idx)
    ax.set_xticklabels([dt.datetime.fromtimestamp(ts[i] / 1000, dt.timezone.utc).strftime(fmt) for i in idx])


def render_price(c: PriceChart) -> bytes:
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    n = len(c.ts)
    x = list(range(n))
    colours = [UP if cl >= op else DOWN for op, cl in zip(c.open, c.close, strict=True)]
    ax.vlines(x, c.low, c.high, colors=colours, linewidth=0.8)
    # bodies as thick line segments (one collection): 150 bar() rectangles took most of the render time
    body_pt = 0.7 * (WIDTH * 0.83 / max(n, 1)) * 72 / DPI
    lows = [min(op, cl) for op, cl in zip(c.open, c.close, strict=True)]
    highs = [max(op, cl, lo + (h - lo) * 0.02) for op, cl, h, lo in zip(c.open, c.close, c.high, lows, strict=True)]
    ax.vlines(x, lows, highs, colors=colours, linewidth=body_pt)
    for (name, values), colour in zip(c.lines.items(), LINE_COLOURS, strict=False):
        ax.plot(x, [float("nan") if v is None else v for v in values], color=colour, linewidth=1.3, label=name)
    interval = c.ts[1] - c.ts[0] if n > 1 else 60_000
    by_kind: dict[str, tuple[list[int], list[float]]] = {}
    for m in c.markers:
        i = bisect.bisect_right(c.ts, m.ts) - 1  # the candle the fill happened in
        if i < 0 or i >= n:
            continue
        xs, ys = by_kind.setdefault(m.kind, ([], []))
        xs.append(i)
        ys.append(float(m.price))
    for kind, (xs, ys) in by_kind.items():
        marker, colour, label = MARKER_STYLE.get(kind, ("o", "black", kind))
        ax.scatter(xs, ys, marker=marker, s=160, color=colour, edgecolors="white", linewidths=0.8,
                   zorder=5, label=label)
    for level in c.levels:
        colour, style = LEVEL_STYLE.get(level.label, ("#555555", ":"))
        ax.axhline(float(level.price), color=colour, linestyle=style, linewidth=1.4)
        # named on the line itself: a legend entry per level would cover the candles
        ax.annotate(f"{LEVEL_SHORT.get(level.label, level.label)} {_num(level.price)}",
                    (0.01, float(level.price)), xycoords=("axes fraction", "data"), xytext=(0, 3),
                    textcoords="offset points", color=colour, fontsize=FONT_SMALL, fontweight="bold",
                    va="bottom")
    _time_labels(ax, c.ts, interval)
    ax.set_xlim(-1, n)
    ax.grid(alpha=0.25)
    ax.tick_params(labelsize=FONT_TICKS)
    ax.yaxis.tick_right()
    if c.lines or by_kind:
        ax.legend(loc="upper left", fontsize=FONT_SMALL, framealpha=0.7, ncol=2, handlelength=1.2, borderpad=0.3,
                  columnspacing=0.8, handletextpad=0.4)
    pnl = ""
    if c.pnl is not None:
        pct = f" ({float(c.pnl_percent):+.2f}%)" if c.pnl_percent is not None else ""
        pnl = f"   PnL {float(c.pnl):+,.2f}{pct}"
    ax.set_title(f"{c.symbol} · {c.exchange} · {c.timeframe}\nprice {_num(c.price)}{pnl}", fontsize=FONT_TITLE)
    fig.subplots_adjust(left=0.02, right=0.85, top=0.86, bottom=0.08)
    return _png(fig)


def render_equity(c: EquityChart) -> bytes:
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    for i, s in enumerate(c.series):
        x = [dt.datetime.fromtimestamp(t / 1000, dt.timezone.utc) for t in s.ts]
        colour = LINE_COLOURS[i % len(LINE_COLOURS)] if len(c.series) > 1 else "#1565c0"
        ax.plot(x, s.equity, color=colour, linewidth=2.0, label=f"{s.label} bot")
        ax.plot(x, s.hold, color=colour, linewidth=1.4, linestyle="--", alpha=0.7, label=f"{s.label} buy & hold")
    for j, t in enumerate(c.trips):
        ax.axvline(dt.datetime.fromtimestamp(t / 1000, dt.timezone.utc), color="#c62828", linewidth=1.0,
                   alpha=0.7, label="breaker trip" if j == 0 else None)
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(alpha=0.25)
    ax.tick_params(labelsize=FONT_TICKS)
    ax.yaxis.tick_right()
    if c.series:
        ax.legend(loc="upper left", fontsize=FONT_SMALL, framealpha=0.7, handlelength=1.5, borderpad=0.3)
    head = c.title
    if c.equity is not None:
        head += f"\nequity {float(c.equity):,.2f}   PnL {float(c.pnl or 0):+,.2f}"
    ax.set_title(head, fontsize=FONT_TITLE)
    fig.subplots_adjust(left=0.02, right=0.85, top=0.86, bottom=0.08)
    return _png(fig)
