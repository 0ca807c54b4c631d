"""Walk-forward evaluation output: the text report, JSON and the --plot (out-of-sample equity vs buy-and-hold)."""

from __future__ import annotations

import datetime as dt
import json

from .evaluate import describe


def _day(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def public(report: dict) -> dict:
    """The report without the curves kept for --plot."""
    out = dict(report)
    out["results"] = [{k: v for k, v in r.items() if k != "_curves"} for r in report["results"]]
    for r in out["results"]:
        r["windows"] = [dict(w, train=[_day(w["train"][0]), _day(w["train"][1])],
                             test=[_day(w["test"][0]), _day(w["test"][1])]) for w in r["windows"]]
    return out


def to_json(report: dict) -> str:
    return json.dumps(public(report), indent=2)


def format_text(report: dict) -> str:
    lines = [f"walk-forward: train {report['train_days']:g} d, test {report['test_days']:g} d, "
             f"{report['grid_size']} parameter sets, fee {report['fee_rate'] * 100:g} % per side",
             f"objective: {report['objective']} (--min-trades {report['min_trades']})", ""]
    for r in report["results"]:
        lines.append(f"{r['file']} ({r['symbol']})")
        if not r["windows"]:
            lines.append("  no complete window: the file is shorter than --train + --test")
            lines.append("")
            continue
        pw = max([28] + [len(describe(w["params"])) for w in r["windows"]])  # the whole parameter set, never cut
        lines.append(f"   #  test span (UTC)                       {'chosen parameters':<{pw}} {'train %':>8} {'test %':>8} "
                     f"{'maxDD %':>8} {'trades':>7} {'fees':>6} {'B&H %':>7}")
        for w in r["windows"]:
            lines.append(f"  {w['window']:>2}  {_day(w['test'][0])} .. {_day(w['test'][1])}  "
                         f"{describe(w['params']):<{pw}} {w['train_return_pct']:>8.2f} {w['return_pct']:>8.2f} "
                         f"{w['max_drawdown_pct']:>8.2f} {w['trades']:>7} {float(w['fees']):>6.2f} "
                         f"{w['buy_and_hold_return_pct']:>7.2f}")
        o = r["out_of_sample"]
        lines.append(f"  out of sample, chained: return {o['return_pct']:+.2f} % (max drawdown {o['max_drawdown_pct']:.2f} %, "
                     f"{o['trades']} trades, fees {o['fees_pct_of_equity']:.2f} % of equity) vs buy-and-hold "
                     f"{o['buy_and_hold_return_pct']:+.2f} % (max drawdown {o['buy_and_hold_max_drawdown_pct']:.2f} %)")
        lines.append(f"  chosen parameters changed {r['chosen_changed']} times in {len(r['windows'])} windows")
        lines.append("")
    s = report["summary"]
    lines.append(f"summary: {s['windows']} windows in {s['files']} files; mean out-of-sample return "
                 f"{s['mean_out_of_sample_return_pct']:+.2f} % vs buy-and-hold {s['mean_buy_and_hold_return_pct']:+.2f} %; "
                 f"beat buy-and-hold in {s['beat_buy_and_hold']} files, positive in {s['positive']}")
    if s["chosen_most_often"]:
        lines.append("chosen most often: " + "; ".join(f"{d} ({n}x)" for d, n in s["chosen_most_often"][:5]))
    return "\n".join(lines)


def speed_line(report: dict) -> str:
    sp = report["speed"]
    rate = f"{sp['candles_per_second']:,} candles/s" if sp["candles_per_second"] else "-"
    return (f"({sp['backtests']:,} backtests, {sp['candles']:,} candles in {sp['seconds']:.2f} s on "
            f"{sp['jobs']} worker{'s' if sp['jobs'] != 1 else ''}: {rate} in all)")


def plot(report: dict, path) -> None:
    """One panel per file: chained out-of-sample equity vs buy-and-hold (both start at 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results = [r for r in report["results"] if r["_curves"][0]]
    fig, axes = plt.subplots(max(1, len(results)), 1, figsize=(12, 3.2 * max(1, len(results))), squeeze=False)
    for ax, r in zip(axes[:, 0], results, strict=False):
        tests, eq, bh = r["_curves"]
        x = [dt.datetime.fromtimestamp(tests[0]["ts"][0] / 1000, dt.timezone.utc)]
        for t in tests:
            x.extend(dt.datetime.fromtimestamp((ms + t["interval_ms"]) / 1000, dt.timezone.utc) for ms in t["ts"])
        ax.plot(x, eq, label="out-of-sample equity", color="tab:blue")
        ax.plot(x, bh, label="buy and hold", color="tab:gray", alpha=0.8)
        for t in tests[1:]:
            ax.axvline(dt.datetime.fromtimestamp(t["ts"][0] / 1000, dt.timezone.utc), color="k", alpha=0.15)
        o = r["out_of_sample"]
        ax.set_title(f"{r['file']}: {o['return_pct']:+.2f} % vs buy-and-hold {o['buy_and_hold_return_pct']:+.2f} %",
                     fontsize=9)
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
