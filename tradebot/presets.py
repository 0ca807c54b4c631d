"""Named parameter sets from the config file (`[presets.<name>]`), e.g. ones found with `tradebot evaluate`.

A preset may set the pair's timeframe, its risk settings (the columns `/set` changes) and the technical
decider's parameters. `/set <symbol> preset <name>` copies the timeframe and risk values onto the pair and
records the name; the engine then builds the pair's technical decider with the preset's parameters.
Validated once when the config is loaded, so a bad preset stops the start with one line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from .strategy.technical import TechnicalParams

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
# the indicator warm-up a preset may need: the engine reads the last 100 candles of a stream
MAX_WARMUP = 100
TIMEFRAMES = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
# pair columns a preset may set -> (lo, hi, whole number); ranges as `/set` (0 switches a stop off, as in
# `tradebot backtest --set`)
RISK_COLUMNS: dict[str, tuple[Decimal, Decimal, bool]] = {
    "stop_loss_percent": (Decimal("0"), Decimal("50"), False),
    "take_profit_percent": (Decimal("0"), Decimal("500"), False),
    "max_position_percent": (Decimal("1"), Decimal("100"), False),
    "max_consecutive_losses": (Decimal("1"), Decimal("100"), True),
    "daily_loss_limit_percent": (Decimal("0.5"), Decimal("100"), False),
    "max_drawdown_percent": (Decimal("1"), Decimal("100"), False),
    "cooldown_minutes": (Decimal("0"), Decimal("10080"), True),
    "min_confidence": (Decimal("0"), Decimal("100"), True),
}


class PresetError(ValueError):
    """One line naming the preset and the key."""


@dataclass(frozen=True)
class Preset:
    name: str
    timeframe: str | None = None
    columns: dict[str, Any] = field(default_factory=dict)  # pair column -> value (Decimal or int)
    technical: TechnicalParams = field(default_factory=TechnicalParams)
    technical_values: dict[str, Any] = field(default_factory=dict)  # only what the preset names

    def summary(self) -> str:
        parts = [f"timeframe={self.timeframe}"] if self.timeframe else []
        parts += [f"{k}={_plain(v)}" for k, v in self.columns.items()]
        parts += [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.technical_values.items()]
        return " ".join(parts) or "(defaults)"


def _plain(v) -> str:
    if isinstance(v, Decimal):
        return format(v.normalize(), "f")
    return str(v)


def parse_preset(name: str, table: Any) -> Preset:
    where = f"presets.{name}"
    if not NAME.match(name):
        raise PresetError(f"{where}: a preset name is 1-32 lowercase letters, digits, '-' or '_'")
    if not isinstance(table, dict):
        raise PresetError(f"{where}: expected a table of settings")
    timeframe, columns, tech = None, {}, {}
    for key, value in table.items():
        if key == "timeframe":
            if value not in TIMEFRAMES:
                raise PresetError(f"{where}.timeframe: must be one of {', '.join(TIMEFRAMES)}")
            timeframe = value
        elif key in RISK_COLUMNS:
            lo, hi, whole = RISK_COLUMNS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise PresetError(f"{where}.{key}: expected a number")
            try:
                d = Decimal(str(value))
            except InvalidOperation:
                raise PresetError(f"{where}.{key}: expected a number") from None
            if not d.is_finite() or not lo <= d <= hi or (whole and d != d.to_integral_value()):
                kind = "a whole number" if whole else "a number"
                raise PresetError(f"{where}.{key}: must be {kind} between {lo} and {hi}")
            columns[key] = int(d) if whole else d
        elif key in TechnicalParams.names() and key != "fee_rate":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise PresetError(f"{where}.{key}: expected a number")
            tech[key] = value
        else:
            known = ["timeframe", *RISK_COLUMNS, *(k for k in TechnicalParams.names() if k != "fee_rate")]
            raise PresetError(f"{where}.{key}: unknown key (known: {', '.join(known)})")
    try:
        params = TechnicalParams.from_mapping(tech)
    except ValueError as e:
        raise PresetError(f"{where}: {e}") from None
    if params.warmup > MAX_WARMUP:
        raise PresetError(f"{where}: the indicators need {params.warmup} candles to warm up; the bot reads "
                          f"{MAX_WARMUP} (lower ema_slow + macd_signal)")
    return Preset(name, timeframe, columns, params, {k: getattr(params, k) for k in tech})


def parse_presets(raw: Any) -> dict[str, Preset]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise PresetError("presets: expected tables [presets.<name>]")
    return {name: parse_preset(name, table) for name, table in raw.items()}
