"""`tradebot evaluate`: walk-forward parameter search (registered with the optional commands in __init__)."""

from __future__ import annotations

import os
import sys
from dataclasses import replace
from decimal import Decimal

import click

from ..backtest.cli import _balance, _defaults_from_config, _fee, _output_path, parse_sets
from ..backtest.data import DataError, timeframe_ms
from ..engine.core import PairSettings
from ..exchange.base import MarketRules


def _jobs(ctx, param, value):
    if value is None:
        return os.cpu_count() or 1
    if value < 1:
        raise click.BadParameter("must be at least 1")
    return value


def _preset_base(ctx: click.Context, name: str, base: PairSettings):
    """(settings, technical parameters, timeframe) of a config preset, over the config's risk defaults."""
    from ..backtest.cli import ConfigProblem
    from ..config import ConfigError, load_config

    obj = ctx.find_root().obj
    try:
        presets = load_config(obj.get("config_path") if isinstance(obj, dict) else None).presets
    except ConfigError as e:
        raise ConfigProblem(str(e)) from None
    p = presets.get(name.strip().lower())
    if p is None:
        raise click.BadParameter(f"{name!r} is not a [presets.<name>] of the config file (known: "
                                 f"{', '.join(sorted(presets)) or 'none'})", param_hint="--preset")
    cols = p.columns
    pair = {k: cols[k] for k in ("max_position_percent", "stop_loss_percent", "take_profit_percent", "min_confidence")
            if k in cols}
    lim = {k: cols[k] for k in ("max_consecutive_losses", "daily_loss_limit_percent", "max_drawdown_percent",
                                "cooldown_minutes") if k in cols}
    settings = replace(base, limits=replace(base.limits, **lim), **pair)
    return settings, p.technical, p.timeframe


@click.command("evaluate")
@click.option("--data", "data_paths", required=True, multiple=True, type=click.Path(dir_okay=False, exists=True),
              help="candle file (repeat for several symbols or periods)")
@click.option("--timeframe", default=None, help="candle timeframe to trade (default: the file's), unless --grid "
                                                "timeframe=... searches it")
@click.option("--decider", default="technical", show_default=True, help="technical (the only searchable one)")
@click.option("--grid", "grid_items", multiple=True, metavar="KEY=V1,V2,...",
              help="values to search (repeat per key): technical parameters (ema_fast, ema_slow, macd_signal, "
                   "rsi_period, rsi_overbought, rsi_exit, min_gap_atr, min_edge, ...), stop_loss_percent, "
                   "take_profit_percent, max_position_percent, timeframe")
@click.option("--train", "train", default="60d", show_default=True, help="training span per window (m/h/d/w)")
@click.option("--test", "test", default="14d", show_default=True, help="out-of-sample span per window (m/h/d/w)")
@click.option("--jobs", type=int, default=None, callback=_jobs, help="worker processes (default: every core)")
@click.option("--min-trades", default=3, show_default=True, type=click.IntRange(0, 100000),
              help="trades (positions opened) a parameter set needs in a training span to be preferred")
@click.option("--preset", default=None, help="start from this [presets.<name>] of the config file")
@click.option("--balance", default="1000", callback=_balance, show_default=True, help="starting budget (quote)")
@click.option("--fee", default="0.001", callback=_fee, show_default=True, help="taker fee rate")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="fixed pair setting for every run, as in `tradebot backtest --set`")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False), callback=_output_path,
              help="draw out-of-sample equity vs buy-and-hold to a PNG (needs matplotlib)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@click.pass_context
def evaluate_command(ctx, data_paths, timeframe, decider, grid_items, train, test, jobs, min_trades, preset, balance,
                     fee, sets, as_json, plot_path, quiet):
    """Walk-forward evaluation: per rolling window, pick the best parameter set on the training span and
    measure it on the following unseen test span."""
    from ..backtest import evaluate as ev
    from ..backtest import evaluate_report as rep
    from ..backtest.evaluate_run import EvalSpec, evaluate, plan

    if decider.strip().lower() != "technical":
        raise click.BadParameter("only the technical decider can be searched (an LLM would be asked once per "
                                 "candle of every parameter set)", param_hint="--decider")
    try:
        train_ms, test_ms = ev.parse_span(train), ev.parse_span(test)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--train/--test") from None
    if timeframe:
        try:
            timeframe_ms(timeframe)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--timeframe") from None
    try:
        grid = ev.expand_grid(ev.parse_grid(grid_items))
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--grid") from None
    base_settings, _llm, _ens = _defaults_from_config(ctx)
    technical = None
    if preset:
        base_settings, technical, preset_tf = _preset_base(ctx, preset, base_settings)
        timeframe = timeframe or preset_tf
    rules = MarketRules("X/USDT", "X", "USDT", Decimal("0.00000001"), None, None, None, fee)
    settings, rules, run_opts = parse_sets(sets, base_settings, rules)
    if plot_path:
        from ..backtest.plot import PlotUnavailable, require_matplotlib

        try:
            require_matplotlib()
        except PlotUnavailable as e:
            raise click.ClickException(str(e)) from None

    kw = {"technical": technical} if technical is not None else {}
    spec = EvalSpec(tuple(str(p) for p in data_paths), tuple(grid), train_ms, test_ms, timeframe, settings,
                    fee=fee, balance=balance, min_trades=min_trades,
                    rules=(rules.amount_step, rules.min_amount, rules.min_cost),
                    run_options=tuple(sorted(run_opts.items())), **kw)
    try:
        windows = plan(spec)
    except DataError as e:
        raise click.ClickException(str(e)) from None
    n_windows = sum(len(w) for w in windows)
    if not n_windows:
        raise click.ClickException(f"no complete window: every file is shorter than --train {train} + --test {test}")
    total = n_windows * (len(grid) + 1)
    bar = None
    if not quiet:
        bar = click.progressbar(length=total, label=f"evaluate ({len(grid)} sets x {n_windows} windows)",
                                file=sys.stderr, show_pos=True)
        bar.__enter__()
    try:
        try:
            report = evaluate(spec, jobs, bar.update if bar else None, windows)
        except DataError as e:
            raise click.ClickException(str(e)) from None
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    click.echo(rep.to_json(report) if as_json else rep.format_text(report))
    click.echo(rep.speed_line(report), err=True)
    if plot_path:
        try:
            rep.plot(report, plot_path)
        except OSError as e:
            raise click.ClickException(f"{plot_path}: cannot write the plot ({e.strerror or e})") from None
        click.echo(f"wrote plot to {plot_path}", err=True)
