"""peewee models: the one place that knows table and column names.

Money and amounts use `MoneyField`: NUMERIC on PostgreSQL, TEXT affinity on
SQLite (SQLite would otherwise store NUMERIC as a lossy float), so a Decimal
round-trips exactly on both engines.  Timestamps are naive UTC.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import peewee as pw

db = pw.DatabaseProxy()

# Column type names per engine: see db.FIELD_TYPES.
MONEY_TYPE = "MONEYTEXT"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class MoneyField(pw.Field):
    """Exact decimal column (prices, amounts, money)."""

    field_type = MONEY_TYPE

    def db_value(self, value):
        if value is None:
            return None
        if not isinstance(value, Decimal):
            if isinstance(value, float):
                raise TypeError("MoneyField refuses float; use Decimal")
            value = Decimal(value)
        if not value.is_finite():
            raise ValueError(f"MoneyField refuses non-finite value {value}")
        # Plain notation, no exponent, so SQLite text sorts and casts sanely.
        return format(value, "f")

    def python_value(self, value):
        if value is None:
            return None
        if not isinstance(value, Decimal):
            value = Decimal(str(value))
        # Drop PostgreSQL's trailing zeros without switching to exponent form.
        if value == value.to_integral_value():
            return value.quantize(Decimal(1))
        return value.normalize()


class BaseModel(pw.Model):
    class Meta:
        database = db
        legacy_table_names = False


class User(BaseModel):
    telegram_id = pw.BigIntegerField(unique=True)
    username = pw.CharField(max_length=64, null=True)
    first_name = pw.CharField(max_length=128, null=True)
    # pending (waiting for approval) | active | blocked
    status = pw.CharField(max_length=16, default="active")
    is_admin = pw.BooleanField(default=False)
    notify = pw.BooleanField(default=True)
    # chat preferences (migration 7); defaults in the database too, so rows inserted by plain SQL work
    notify_chart = pw.BooleanField(default=False, constraints=[pw.SQL("DEFAULT FALSE")])  # daily equity chart
    reply_keyboard = pw.BooleanField(default=True, constraints=[pw.SQL("DEFAULT TRUE")])  # command keyboard
    # user-scope circuit breaker
    breaker_until = pw.DateTimeField(null=True)
    breaker_reason = pw.CharField(max_length=255, null=True)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "users"


class ExchangeCredential(BaseModel):
    user = pw.ForeignKeyField(User, backref="credentials", on_delete="CASCADE")
    exchange = pw.CharField(max_length=16)  # binance | bybit
    network = pw.CharField(max_length=8)  # testnet | live | paper
    api_key_enc = pw.TextField(null=True)  # Fernet token, None in paper mode
    secret_enc = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "exchange_credentials"
        indexes = ((("user", "exchange"), True),)


class UserConfig(BaseModel):
    """One trading pair of one user, with its budget and risk settings."""

    user = pw.ForeignKeyField(User, backref="configs", on_delete="CASCADE")
    exchange = pw.CharField(max_length=16)
    symbol = pw.CharField(max_length=32)
    budget = MoneyField()
    timeframe = pw.CharField(max_length=8, default="1m")
    interval_seconds = pw.IntegerField(default=60)
    decider = pw.CharField(max_length=32, default="technical")
    side = pw.CharField(max_length=8, default="long")  # unused: a futures pair's side is its position's
    leverage = pw.IntegerField(default=1)  # futures: 1..risk.max_leverage; spot: 1
    max_position_percent = MoneyField(default=Decimal("30"))
    stop_loss_percent = MoneyField(default=Decimal("2"))
    take_profit_percent = MoneyField(default=Decimal("5"))
    max_consecutive_losses = pw.IntegerField(default=5)
    daily_loss_limit_percent = MoneyField(default=Decimal("5"))
    max_drawdown_percent = MoneyField(default=Decimal("15"))
    cooldown_minutes = pw.IntegerField(default=60)
    min_confidence = pw.IntegerField(default=60)
    is_trading = pw.BooleanField(default=False)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)
    # futures (migration 4): market type, margin mode, which sides may open, trailing stop (spot too)
    market_type = pw.CharField(max_length=8, default="spot")  # spot | futures
    margin_mode = pw.CharField(max_length=8, default="isolated")  # isolated | cross
    direction = pw.CharField(max_length=8, default="both")  # both | long | short
    trailing_stop_percent = MoneyField(default=Decimal("0"))  # 0 = off
    preset = pw.CharField(max_length=32, null=True)  # [presets.<name>] applied by /set <symbol> preset (migration 6)

    class Meta:
        table_name = "user_configs"
        indexes = ((("user", "exchange", "symbol"), True),)


class UserState(BaseModel):
    """Latest accounting snapshot of one pair; rewritten every cycle."""

    user = pw.ForeignKeyField(User, backref="states", on_delete="CASCADE")
    config = pw.ForeignKeyField(UserConfig, backref="state", unique=True, on_delete="CASCADE")
    # stopped | running | paused (breaker) | error
    status = pw.CharField(max_length=16, default="stopped")
    mode = pw.CharField(max_length=8, default="paper")  # paper | testnet | live
    balance = MoneyField()  # the pair's budget (starting balance)
    cash = MoneyField()  # free quote currency of this pair
    holdings = MoneyField(default=Decimal("0"))  # base currency held (net of fees)
    equity = MoneyField()
    realized_pnl = MoneyField(default=Decimal("0"))
    unrealized_pnl = MoneyField(default=Decimal("0"))
    fees_paid = MoneyField(default=Decimal("0"))
    daily_pnl = MoneyField(default=Decimal("0"))
    daily_pnl_date = pw.DateField(null=True)
    day_start_equity = MoneyField(null=True)
    peak_equity = MoneyField()
    last_price = MoneyField(null=True)
    consecutive_losses = pw.IntegerField(default=0)
    breaker_until = pw.DateTimeField(null=True)
    breaker_reason = pw.CharField(max_length=255, null=True)
    # equity the daily-loss / drawdown breaker checks measure from (moved on a trip or reset; engine-owned)
    risk_day_ref = MoneyField(null=True)
    risk_peak_ref = MoneyField(null=True)
    last_candle_ts = pw.BigIntegerField(null=True)  # ms open time of the last candle seen
    last_cycle_at = pw.DateTimeField(null=True)
    last_error = pw.TextField(null=True)
    error_count = pw.IntegerField(default=0)
    updated_at = pw.DateTimeField(default=utcnow)
    # futures (migration 4): funding paid (+) or received (-) by this pair in total, and the last funding
    # time (ms) booked for its open position
    funding_paid = MoneyField(default=Decimal("0"))
    last_funding_ts = pw.BigIntegerField(null=True)

    class Meta:
        table_name = "user_states"


class LLMAnswer(BaseModel):
    """One answer of an LLM provider, shared by every pair that asked the same question (same provider,
    market, closed candle and position state; strategy/llm_shared.py). Charged to the pair whose cycle made
    the call (`user`, `config`); the decision rows of all the pairs that used it point here."""

    provider = pw.CharField(max_length=64)  # llm:<provider> (llm:<model> for the plain [llm] section)
    model = pw.CharField(max_length=128)
    prompt_hash = pw.CharField(max_length=32)
    user = pw.ForeignKeyField(User, null=True, on_delete="SET NULL")
    config = pw.ForeignKeyField(UserConfig, null=True, on_delete="SET NULL")
    exchange = pw.CharField(max_length=16, default="")
    symbol = pw.CharField(max_length=32, default="")
    timeframe = pw.CharField(max_length=8, default="")
    candle_ts = pw.BigIntegerField(null=True)
    state = pw.CharField(max_length=8, default="flat")  # flat | long | short
    ok = pw.BooleanField(default=False)  # a valid decision came back
    action = pw.CharField(max_length=8, null=True)
    confidence = pw.IntegerField(null=True)
    reasoning = pw.TextField(null=True)
    error = pw.TextField(null=True)  # why not ok (unavailable / refused / rejected)
    latency_ms = pw.IntegerField(default=0)
    input_tokens = pw.IntegerField(default=0)
    output_tokens = pw.IntegerField(default=0)
    cost = MoneyField(default=Decimal("0"))  # USD, from the configured prices per million tokens
    response = pw.TextField(null=True)  # raw provider response (key masked)
    day = pw.DateField()  # UTC day, for the daily budgets and `tradebot admin llm`
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "llm_answers"
        indexes = ((("day", "provider"), False), (("user", "day"), False))


class AIDecision(BaseModel):
    user = pw.ForeignKeyField(User, backref="decisions", on_delete="CASCADE")
    config = pw.ForeignKeyField(UserConfig, null=True, on_delete="SET NULL")
    symbol = pw.CharField(max_length=32)
    provider = pw.CharField(max_length=64)  # technical | llm:<model> | ensemble
    action = pw.CharField(max_length=8)  # buy | sell | hold
    confidence = pw.IntegerField(default=0)
    reasoning = pw.TextField(null=True)
    inputs = pw.TextField(null=True)  # market summary / prompt
    response = pw.TextField(null=True)  # raw answer
    executed = pw.BooleanField(default=False)
    outcome = pw.CharField(max_length=16, null=True)  # profitable | loss
    profitable = pw.BooleanField(null=True)
    pnl = MoneyField(null=True)
    candle_ts = pw.BigIntegerField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    llm_answer = pw.ForeignKeyField(LLMAnswer, null=True, on_delete="SET NULL")  # an LLM member's answer

    class Meta:
        table_name = "ai_decisions"
        indexes = ((("user", "provider"), False),)


class DecisionTally(BaseModel):
    """Repeated decisions of one pair and provider, counted per UTC day instead of one ai_decisions row per
    candle (see engine/decisions.py): a 1m pair makes 1,440 mostly identical "hold" decisions a day.
    `day` 1970-01-01 holds the counts folded in from days older than the retention window."""

    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    config = pw.ForeignKeyField(UserConfig, null=True, on_delete="SET NULL")
    symbol = pw.CharField(max_length=32)
    provider = pw.CharField(max_length=64)
    action = pw.CharField(max_length=8)
    day = pw.DateField()
    decisions = pw.IntegerField(default=0)
    confidence_sum = pw.BigIntegerField(default=0)
    last_candle_ts = pw.BigIntegerField(null=True)

    class Meta:
        table_name = "decision_tallies"
        indexes = ((("config", "provider", "action", "day"), True), (("user", "provider"), False))


class Position(BaseModel):
    user = pw.ForeignKeyField(User, backref="positions", on_delete="CASCADE")
    config = pw.ForeignKeyField(UserConfig, null=True, on_delete="SET NULL")
    exchange = pw.CharField(max_length=16)
    symbol = pw.CharField(max_length=32)
    side = pw.CharField(max_length=8, default="long")
    leverage = pw.IntegerField(default=1)
    amount = MoneyField()  # base held, net of fees
    entry_price = MoneyField()  # average fill price
    cost_basis = MoneyField()  # quote spent including fees
    stop_loss_price = MoneyField(null=True)
    take_profit_price = MoneyField(null=True)
    status = pw.CharField(max_length=8, default="open")  # open | closed
    exit_price = MoneyField(null=True)
    realized_pnl = MoneyField(null=True)
    close_reason = pw.CharField(max_length=32, null=True)
    decision = pw.ForeignKeyField(AIDecision, null=True, on_delete="SET NULL")
    opened_at = pw.DateTimeField(default=utcnow)
    closed_at = pw.DateTimeField(null=True)
    # futures (migration 4): margin locked by the position, its funding (+ paid, - received), liquidation price
    margin = MoneyField(null=True)
    funding = MoneyField(default=Decimal("0"))
    liquidation_price = MoneyField(null=True)

    class Meta:
        table_name = "positions"
        indexes = ((("config", "status"), False),)


class Order(BaseModel):
    """Order intent: written and committed BEFORE the order is sent."""

    user = pw.ForeignKeyField(User, backref="orders", on_delete="CASCADE")
    config = pw.ForeignKeyField(UserConfig, null=True, on_delete="SET NULL")
    client_order_id = pw.CharField(max_length=36, unique=True)
    exchange = pw.CharField(max_length=16)
    network = pw.CharField(max_length=8)
    symbol = pw.CharField(max_length=32)
    side = pw.CharField(max_length=4)  # buy | sell
    order_type = pw.CharField(max_length=8, default="market")
    amount = MoneyField(null=True)  # base amount requested (sells)
    quote_amount = MoneyField(null=True)  # quote to spend (market buys)
    price = MoneyField(null=True)  # limit price
    # pending (stored, maybe sent) | filled | failed | canceled
    status = pw.CharField(max_length=16, default="pending")
    exchange_order_id = pw.CharField(max_length=64, null=True)
    filled_amount = MoneyField(null=True)
    cost = MoneyField(null=True)
    avg_price = MoneyField(null=True)
    fee = MoneyField(null=True)
    fee_currency = pw.CharField(max_length=16, null=True)
    reason = pw.CharField(max_length=32, null=True)  # signal | stop_loss | take_profit
    decision = pw.ForeignKeyField(AIDecision, null=True, on_delete="SET NULL")
    error = pw.TextField(null=True)
    created_at = pw.DateTimeField(default=utcnow)
    updated_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "orders"
        indexes = ((("status",), False),)


class Trade(BaseModel):
    """One booked fill. `pnl` is set on closing (sell) trades only."""

    user = pw.ForeignKeyField(User, backref="trades", on_delete="CASCADE")
    config = pw.ForeignKeyField(UserConfig, null=True, on_delete="SET NULL")
    order = pw.ForeignKeyField(Order, null=True, on_delete="SET NULL")
    position = pw.ForeignKeyField(Position, null=True, on_delete="SET NULL")
    exchange = pw.CharField(max_length=16)
    symbol = pw.CharField(max_length=32)
    side = pw.CharField(max_length=4)
    amount = MoneyField()  # base amount, net of any base fee
    price = MoneyField()
    cost = MoneyField()  # quote amount of the fill
    fee = MoneyField(default=Decimal("0"))  # fee valued in quote currency
    pnl = MoneyField(null=True)
    pnl_percent = MoneyField(null=True)
    reason = pw.CharField(max_length=32, null=True)
    client_order_id = pw.CharField(max_length=36, null=True)
    executed_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "trades"
        indexes = ((("user", "executed_at"), False),)


class RiskEvent(BaseModel):
    user = pw.ForeignKeyField(User, backref="risk_events", on_delete="CASCADE")
    config = pw.ForeignKeyField(UserConfig, null=True, on_delete="SET NULL")
    scope = pw.CharField(max_length=8)  # pair | user
    kind = pw.CharField(max_length=32)  # consecutive_losses | daily_loss | drawdown | reset | ...
    detail = pw.TextField(null=True)
    value = MoneyField(null=True)
    threshold = MoneyField(null=True)
    until = pw.DateTimeField(null=True)
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "risk_events"


class DailyPerformance(BaseModel):
    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    config = pw.ForeignKeyField(UserConfig, null=True, on_delete="SET NULL")
    day = pw.DateField()
    start_equity = MoneyField()
    end_equity = MoneyField()
    pnl = MoneyField()
    trades = pw.IntegerField(default=0)
    wins = pw.IntegerField(default=0)
    losses = pw.IntegerField(default=0)
    fees = MoneyField(default=Decimal("0"))
    created_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "daily_performance"
        indexes = ((("config", "day"), True),)


class Notification(BaseModel):
    """Outbox of engine events for the chat layer; survives restarts."""

    user = pw.ForeignKeyField(User, on_delete="CASCADE")
    config = pw.ForeignKeyField(UserConfig, null=True, on_delete="SET NULL")
    kind = pw.CharField(max_length=32)
    payload = pw.TextField()  # JSON
    created_at = pw.DateTimeField(default=utcnow)
    sent_at = pw.DateTimeField(null=True)
    attempts = pw.IntegerField(default=0)
    # the Telegram leader that is sending it (issue 17): two leaders never both send one row
    claimed_by = pw.CharField(max_length=64, null=True)
    claimed_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "notifications"
        indexes = ((("sent_at",), False),)


class InstanceLock(BaseModel):
    """The `tradebot run` lease (see instance_lock.py) and the running instance's health."""

    name = pw.CharField(max_length=32, primary_key=True)
    host = pw.CharField(max_length=255)
    pid = pw.IntegerField()
    since = pw.DateTimeField()
    heartbeat_at = pw.DateTimeField()
    holder = pw.CharField(max_length=64, null=True)  # NULL: released
    token = pw.BigIntegerField(default=0)  # fencing token, +1 per acquisition
    expires_at = pw.DateTimeField(null=True)
    # written every few seconds by the holder, read by `tradebot status`
    health_at = pw.DateTimeField(null=True)
    active_pairs = pw.IntegerField(null=True)
    cycle_lag_seconds = pw.IntegerField(null=True)  # how overdue the most overdue active pair is
    telegram_ok = pw.BooleanField(null=True)
    telegram_checked_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "instance_lock"


class Worker(BaseModel):
    """A `tradebot run` worker on PostgreSQL (HA mode, tradebot/ha/): registered at start, renewed with its
    pair leases, marked stopped on a clean exit. Times are the database's clock."""

    id = pw.CharField(max_length=64, primary_key=True)  # "<host>:<pid>:<random>"
    host = pw.CharField(max_length=255)
    pid = pw.IntegerField()
    started_at = pw.DateTimeField()
    heartbeat_at = pw.DateTimeField()
    expires_at = pw.DateTimeField()
    stopped_at = pw.DateTimeField(null=True)  # a clean stop; NULL and expired = the worker disappeared
    gone_noticed_at = pw.DateTimeField(null=True)  # the admins were told it disappeared (once)
    pairs_held = pw.IntegerField(default=0)
    cycle_lag_seconds = pw.IntegerField(null=True)

    class Meta:
        table_name = "workers"


class PairLease(BaseModel):
    """Which worker runs a pair (HA mode): holder, fencing token (+1 per takeover), expiry, and the last
    slot a cycle ran for, so a new holder never runs a slot the previous one already ran."""

    config = pw.ForeignKeyField(UserConfig, primary_key=True, on_delete="CASCADE", column_name="config_id")
    worker = pw.CharField(max_length=64, null=True, index=True)  # NULL: free
    token = pw.BigIntegerField(default=0)
    acquired_at = pw.DateTimeField(null=True)
    expires_at = pw.DateTimeField(null=True)
    last_slot_ms = pw.BigIntegerField(null=True)  # due time (epoch ms) of the last cycle run, by any holder

    class Meta:
        table_name = "pair_leases"


class TelegramUpdate(BaseModel):
    """The Telegram inbox (issue 17, telegram/inbox.py): each update is written here before it is handled,
    so a leader that dies neither loses nor repeats one; the next offset is the highest id + 1."""

    update_id = pw.BigIntegerField(primary_key=True)
    payload = pw.TextField(null=True)  # the update's JSON, encrypted (a /connect holds secrets); NULL once handled
    received_at = pw.DateTimeField(default=utcnow)
    holder = pw.CharField(max_length=64, null=True)  # the leader that took it
    started_at = pw.DateTimeField(null=True)  # its handling began
    handled_at = pw.DateTimeField(null=True)

    class Meta:
        table_name = "telegram_updates"
        indexes = ((("handled_at",), False),)


class SchemaMigration(BaseModel):
    version = pw.IntegerField(primary_key=True)
    name = pw.CharField(max_length=128)
    applied_at = pw.DateTimeField(default=utcnow)

    class Meta:
        table_name = "schema_migrations"


ALL_MODELS = [
    User,
    ExchangeCredential,
    UserConfig,
    UserState,
    LLMAnswer,
    AIDecision,
    DecisionTally,
    Position,
    Order,
    Trade,
    RiskEvent,
    DailyPerformance,
    Notification,
    InstanceLock,
    Worker,
    PairLease,
    TelegramUpdate,
    SchemaMigration,
]
