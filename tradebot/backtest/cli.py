"""`tradebot backtest ...`: the click command (registered by tradebot/cli.py)."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from pathlib import Path

import click

from ..engine.core import PairSettings
from ..exchange.base import MarketRules
from ..risk import BreakerLimits
from ..strategy.factory import build_decider
from .data import DataError, load_candles, parse_date, resample, timeframe_ms, timeframe_name, window
from .file_symbol import mismatch_warning
from .funding import load_funding
from .llm_cache import CacheMiss
from .replay import BacktestConfig, run_backtest
from .report import build_report, format_text, to_json, write_trades_csv

WARMUP = 200  # candles before --from fed to the indicators only
DEFAULT_STEP = Decimal("0.00000001")

# --set keys: the pair settings of /set, the market rules, and how exits fill.
_RISK_DEC = ("max_position_percent", "stop_loss_percent", "take_profit_percent")
_LIMIT_DEC = ("daily_loss_limit_percent", "max_drawdown_percent")
_LIMIT_INT = ("max_consecutive_losses", "cooldown_minutes")
_RUN = ("exit_fill", "interval_seconds")
_RULES = ("amount_step", "min_amount", "min_cost")  # market orders: no price tick needed
SET_KEYS = _RISK_DEC + ("min_confidence",) + _LIMIT_DEC + _LIMIT_INT + _RULES + _RUN
# 0 switches these off (risk.py and the breaker read 0 as "disabled"); other values keep /set's ranges
ZERO_IS_OFF = ("stop_loss_percent", "take_profit_percent", "max_consecutive_losses", "daily_loss_limit_percent",
               "max_drawdown_percent")


def _pair_setting_bounds() -> dict[str, tuple[Decimal, Decimal]]:
    """The ranges `/set` accepts (services.SETTINGS), by PairSettings field name."""
    from ..services import SETTINGS

    return {column: (lo, hi) for column, _kind, lo, hi, _desc in SETTINGS.values()}


def parse_sets(pairs: tuple[str, ...], base: PairSettings, rules: MarketRules
               ) -> tuple[PairSettings, MarketRules, dict]:
    """Apply `--set key=value` overrides; raises click.BadParameter on a bad key or value.
    Returns (settings, rules, run options for BacktestConfig)."""
    s_kw, l_kw, r_kw, run = {}, {}, {}, {}
    for item in pairs:
        key, sep, value = item.partition("=")
        key, value = key.strip().lower(), value.strip()
        if not sep or key not in SET_KEYS:
            raise click.BadParameter(f"{item!r}: use key=value with key one of: {', '.join(SET_KEYS)}",
                                     param_hint="--set")
        try:
            if not value.isascii():  # int()/Decimal() would read '١٢' as 12
                raise ValueError
            if key == "exit_fill":
                if value not in ("auto", "trigger", "next_open"):
                    raise ValueError
                run[key] = value
            elif key == "interval_seconds":
                run[key] = int(value)
                if run[key] <= 0:
                    raise ValueError
            elif key in _LIMIT_INT or key == "min_confidence":
                (l_kw if key in _LIMIT_INT else s_kw)[key] = int(value)
            else:
                d = Decimal(value)
                if not d.is_finite() or d < 0 or (d and abs(d.adjusted()) > 15):  # 1e999999 is finite, not sane
                    raise ValueError
                if key in _RULES:
                    r_kw[key] = d or None  # 0 = no such rule
                else:
                    (s_kw if key in _RISK_DEC else l_kw)[key] = d
        except (ValueError, InvalidOperation):
            raise click.BadParameter(f"{item!r}: bad value for {key}", param_hint="--set") from None
        bounds = _pair_setting_bounds().get(key)
        off = key in ZERO_IS_OFF and Decimal(value) == 0
        if bounds is not None and not off and not bounds[0] <= Decimal(value) <= bounds[1]:
            zero = ", or 0 (off)" if key in ZERO_IS_OFF else ""
            raise click.BadParameter(f"{item!r}: {key} must be between {bounds[0]} and {bounds[1]} (as in /set){zero}",
                                     param_hint="--set")
    limits = replace(base.limits, **l_kw) if l_kw else base.limits
    rules = replace(rules, **r_kw) if r_kw else rules
    settings = replace(base, limits=limits, amount_step=rules.amount_step, min_amount=rules.min_amount,
                       min_cost=rules.min_cost, fee_rate=rules.taker_fee, **s_kw)
    return settings, rules, run


def _uses_llm(decider: str, ens_cfg, llm_cfg=None) -> bool:
    """Whether `decider` asks the plain [llm] endpoint (named providers carry their own settings)."""
    named = set(getattr(llm_cfg, "providers", None) or {}) - {"llm"}
    kind = decider.strip().lower()
    if kind == "ensemble":
        members = getattr(ens_cfg, "members", None) or ["technical", "llm"]
        return any(_legacy(str(m).strip().lower(), named) for m in members)
    return _legacy(kind, named)


def _legacy(kind: str, named: set) -> bool:
    if kind == "llm":
        return True
    return kind.startswith("llm:") and kind[4:] not in named


class ConfigProblem(click.ClickException):
    """A bad config file or TRADEBOT_* value: one line and exit code 2, as everywhere else (README)."""

    exit_code = 2


def _defaults_from_config(ctx: click.Context):
    """Risk defaults and LLM/ensemble settings from the config file when run as `tradebot backtest`."""
    obj = ctx.find_root().obj
    if not isinstance(obj, dict):
        return PairSettings(), None, None
    from ..config import ConfigError, load_config

    try:
        cfg = load_config(obj.get("config_path"))
    except ConfigError as e:
        raise ConfigProblem(str(e)) from None
    r = cfg.risk
    limits = BreakerLimits(r.max_consecutive_losses, Decimal(r.daily_loss_limit_percent),
                           Decimal(r.max_drawdown_percent), r.cooldown_minutes)
    base = PairSettings(Decimal(r.max_position_percent), Decimal(r.stop_loss_percent),
                        Decimal(r.take_profit_percent), limits=limits)
    return base, cfg.llm, cfg.ensemble


class _RepeatedWarnings(logging.Filter):
    """A backtest asks the decider once per candle: the same warning (e.g. 'LLM unavailable: connection
    refused') would print thousands of times. Let the first `keep` of each through, count the rest."""

    def __init__(self, keep: int = 3):
        super().__init__()
        self.keep, self.seen = keep, {}

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        self.seen[msg] = self.seen.get(msg, 0) + 1
        return self.seen[msg] <= self.keep

    def summary(self) -> list[str]:
        return [f"(the warning {msg!r} was repeated {n - self.keep:,} more times)"
                for msg, n in self.seen.items() if n > self.keep]


class _Progress:
    """A progress bar on stderr, shown only once a run has taken more than `after` seconds."""

    def __init__(self, total: int, after: float = 2.0):
        self.total, self.after, self.t0 = total, after, time.monotonic()
        self.bar = None
        self.done = 0

    def __call__(self, done: int) -> None:
        if self.bar is None:
            if time.monotonic() - self.t0 < self.after:
                return
            self.bar = click.progressbar(length=self.total, label="backtest", file=sys.stderr)
            self.bar.__enter__()
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.update(self.total - self.done)
            self.bar.__exit__(None, None, None)


def _decimal(ctx, param, value):
    if value is None:
        return None
    try:
        if not value.isascii():
            raise InvalidOperation
        d = Decimal(value)
    except InvalidOperation:
        raise click.BadParameter(f"{value!r} is not a number") from None
    if not d.is_finite() or d < 0:
        raise click.BadParameter(f"{value!r} must be a non-negative number")
    return d


MAX_BALANCE = Decimal(10) ** 15  # Decimal arithmetic (28 digits) stays exact with 8+ decimals below this


def _balance(ctx, param, value):
    d = _decimal(ctx, param, value)
    if d is not None and not 0 < d <= MAX_BALANCE:
        raise click.BadParameter(f"{value!r} must be more than 0 and at most {MAX_BALANCE:,}")
    return d


def _fee(ctx, param, value):
    d = _decimal(ctx, param, value)
    if d is not None and d >= 1:
        raise click.BadParameter(f"{value!r} is a fee rate (0.001 = 0.1 %), it must be below 1")
    return d


def _signed_rate(ctx, param, value):
    if value is None:
        return None
    try:
        d = Decimal(value) if value.isascii() else None
    except InvalidOperation:
        d = None
    if d is None or not d.is_finite() or abs(d) >= Decimal("0.1"):
        raise click.BadParameter(f"{value!r}: a funding rate per 8 h, e.g. 0.0001 (0.01 %) or -0.0002")
    return d


def _futures_settings(settings: PairSettings, leverage: int, direction: str, rate, path) -> PairSettings:
    from ..risk_futures import stop_loss_problem

    problem = stop_loss_problem(leverage, settings.stop_loss_percent)
    if problem:
        raise click.BadParameter(f"{problem} (--set stop_loss_percent=...)", param_hint="--leverage")
    if path:
        try:
            funding = load_funding(path)
        except DataError as e:
            raise click.ClickException(str(e)) from None
    else:
        funding = rate if rate is not None else Decimal("0.0001")
    return replace(settings, market="futures", leverage=leverage, direction=direction, funding_rate=funding)


def _output_path(ctx, param, value):
    """--trades / --plot: refuse a file that cannot be written before the (possibly long) run."""
    if value is None:
        return None
    parent = Path(value).expanduser().resolve().parent
    if not parent.is_dir():
        raise click.BadParameter(f"{value!r}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise click.BadParameter(f"{value!r}: directory {parent} is not writable")
    return value


@click.command("backtest")
@click.option("--exchange", type=click.Choice(["binance", "bybit"]), default="binance", show_default=True)
@click.option("--symbol", required=True, help="e.g. BTC/USDT (a warning if the data file names another symbol)")
@click.option("--timeframe", default=None, help="candle timeframe to trade (default: the file's); 1m data is resampled")
@click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False),
              help="Binance kline CSV or OHLCV CSV with header, plain, .gz or .zip")
@click.option("--balance", default="1000", callback=_balance, show_default=True, help="starting budget (quote)")
@click.option("--decider", default="technical", show_default=True,
              help="technical | llm | llm:<provider> | ensemble")
@click.option("--from", "date_from", default=None, help="first UTC date/time to trade (inclusive)")
@click.option("--to", "date_to", default=None, help="last UTC date (inclusive) or date/time (exclusive)")
@click.option("--fee", default=None, callback=_fee,
              help="taker fee rate [default: 0.001 spot, 0.0005 futures]")
@click.option("--market", type=click.Choice(["spot", "futures"]), default=None,
              help="spot (default) or futures: a USDT-M perpetual, long and short (also implied by BTC/USDT:USDT)")
@click.option("--leverage", type=click.IntRange(1, 125), default=None,
              help="futures leverage [default: 3]; the stop-loss must sit well inside the liquidation price")
@click.option("--direction", type=click.Choice(["both", "long", "short"]), default="both", show_default=True,
              help="futures: which positions may open")
@click.option("--funding-rate", "funding_rate", default=None, callback=_signed_rate,
              help="futures: the rate booked at every 8-hourly funding time [default: 0.0001]")
@click.option("--funding", "funding_path", default=None, type=click.Path(dir_okay=False, exists=True),
              help="futures: CSV of funding times (ms or ISO UTC, first column) and rates (last column)")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="pair setting (stop_loss_percent, take_profit_percent, max_position_percent, min_confidence, "
                   "max_consecutive_losses, daily_loss_limit_percent, max_drawdown_percent, cooldown_minutes; "
                   "0 switches off the stop-loss, the take-profit and each breaker limit), "
                   "market rule (amount_step, min_amount, min_cost), exit_fill=auto|trigger|next_open, "
                   "interval_seconds (the live cycle; default 60)")
@click.option("--trades", "trades_path", default=None, type=click.Path(dir_okay=False), callback=_output_path,
              help="write every trade to CSV")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON")
@click.option("--plot", "plot_path", default=None, type=click.Path(dir_okay=False), callback=_output_path,
              help="draw a PNG (needs matplotlib)")
@click.option("--llm-cache", "llm_cache", default=None, type=click.Path(dir_okay=False),
              help="record LLM answers in FILE and replay them on a rerun (reproducible, no new calls)")
@click.option("--llm-cache-only", is_flag=True, help="with --llm-cache: never call a provider; a missing answer "
                                                      "is an error")
@click.pass_context
def backtest_command(ctx, exchange, symbol, timeframe, data_path, balance, decider, date_from, date_to, fee, market,
                     leverage, direction, funding_rate, funding_path, sets, trades_path, as_json, plot_path, llm_cache,
                     llm_cache_only):
    """Replay candles through the live trading core and report what the bot would have done."""
    symbol = symbol.strip().upper()
    if ":" in symbol:  # BTC/USDT:USDT names the perpetual
        if market == "spot":
            raise click.BadParameter(f"{symbol!r} is a perpetual: use --market futures", param_hint="--symbol")
        market = "futures"
        symbol = symbol.split(":", 1)[0]
    market = market or "spot"
    base_ccy, _, quote_ccy = symbol.partition("/")
    if not base_ccy.strip() or not quote_ccy.strip() or "/" in quote_ccy:
        raise click.BadParameter(f"{symbol!r}: use BASE/QUOTE, e.g. BTC/USDT", param_hint="--symbol")
    if market == "spot" and (leverage is not None or funding_rate is not None or funding_path):
        raise click.BadParameter("--leverage, --funding-rate and --funding are for --market futures",
                                 param_hint="--market")
    if funding_rate is not None and funding_path:
        raise click.BadParameter("give --funding-rate or --funding, not both", param_hint="--funding")
    if fee is None:
        fee = Decimal("0.0005") if market == "futures" else Decimal("0.001")
    base_settings, llm_cfg, ens_cfg = _defaults_from_config(ctx)
    # Offline defaults: 8-decimal amounts, no minimums; real exchange rules via --set.
    rules = MarketRules(symbol, base_ccy, quote_ccy, DEFAULT_STEP, None, None, None, fee)
    settings, rules, run_opts = parse_sets(sets, base_settings, rules)
    if market == "futures":
        symbol = f"{symbol}:{quote_ccy}"
        settings = _futures_settings(settings, leverage or 3, direction, funding_rate, funding_path)
    try:
        tf_ms = timeframe_ms(timeframe) if timeframe else None
        start_ms = parse_date(date_from) if date_from else None
        end_ms = parse_date(date_to, end=True) if date_to else None
    except ValueError as e:
        raise click.BadParameter(str(e)) from None
    if llm_cache_only and not llm_cache:
        raise click.BadParameter("needs --llm-cache FILE", param_hint="--llm-cache-only")
    if llm_cfg is not None and not llm_cfg.api_key and not llm_cache_only and _uses_llm(decider, ens_cfg, llm_cfg):
        # as `/set decider` in chat: without a key every candle would be one failed API call
        raise click.BadParameter(f"{decider!r} needs an LLM API key: set [llm] api_key in the config file "
                                 "or TRADEBOT_LLM_API_KEY", param_hint="--decider")
    cache = None
    if llm_cache:
        from .llm_cache import AnswerCache

        if llm_cache_only and not Path(llm_cache).exists():
            raise click.BadParameter(f"{llm_cache}: no such file", param_hint="--llm-cache")
        try:
            cache = AnswerCache(llm_cache, only=llm_cache_only)
        except OSError as e:
            raise click.BadParameter(f"{llm_cache}: cannot read ({e.strerror or e})", param_hint="--llm-cache") \
                from None
    try:
        dec = build_decider(decider, llm_cfg, ens_cfg, cache=cache)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--decider") from None

    if plot_path:
        from .plot import PlotUnavailable, require_matplotlib

        try:
            require_matplotlib()
        except PlotUnavailable as e:
            raise click.ClickException(str(e)) from None
    warning = mismatch_warning(symbol, data_path)
    if warning:
        click.echo(warning, err=True)
    t0 = time.perf_counter()
    try:
        series = load_candles(data_path)
        if tf_ms is not None:
            series = resample(series, tf_ms)
        series, start = window(series, start_ms, end_ms, WARMUP)
    except DataError as e:
        raise click.ClickException(str(e)) from None
    t_load = time.perf_counter() - t0

    cfg = BacktestConfig(symbol, timeframe_name(series.interval_ms), rules, settings, balance, exchange, **run_opts)
    progress = _Progress(len(series) - start)
    repeated = _RepeatedWarnings()
    decider_logs = [logging.getLogger(name) for name in ("tradebot.strategy.llm", "tradebot.strategy.ensemble")]
    for lg in decider_logs:
        lg.addFilter(repeated)
    t1 = time.perf_counter()
    try:
        result = run_backtest(series, dec, cfg, start, progress)
    except CacheMiss as e:
        raise click.ClickException(str(e)) from None
    finally:
        progress.close()
        for lg in decider_logs:
            lg.removeFilter(repeated)
        for line in repeated.summary():
            click.echo(line, err=True)
    t_run = time.perf_counter() - t1

    report = build_report(result)
    if as_json:
        click.echo(to_json(report))
    else:
        click.echo(format_text(report))
        click.echo(f"(read {len(series):,} candles in {t_load:.2f} s, replayed in {t_run:.2f} s)", err=True)
    if cache is not None:
        click.echo(f"LLM cache {llm_cache}: {cache.hits} answers replayed, {cache.stored} new calls recorded",
                   err=True)
    if trades_path:
        try:
            n = write_trades_csv(result, trades_path)
        except OSError as e:
            raise click.ClickException(f"{trades_path}: cannot write the trades ({e.strerror or e})") from None
        click.echo(f"wrote {n} trades to {trades_path}", err=True)
    if plot_path:
        from .plot import PlotUnavailable, plot_result

        try:
            plot_result(result, plot_path)
        except PlotUnavailable as e:
            raise click.ClickException(str(e)) from None
        except OSError as e:
            raise click.ClickException(f"{plot_path}: cannot write the plot ({e.strerror or e})") from None
        click.echo(f"wrote plot to {plot_path}", err=True)
