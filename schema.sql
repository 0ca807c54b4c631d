-- tradebot schema. Generated tables part: `tradebot db schema > schema.sql` keeps it in
-- sync with tradebot/models.py (a test checks). Tables are created by peewee migrations
-- (on SQLite money columns use the MONEYTEXT type, i.e. TEXT affinity, so Decimals stay exact);
-- the views below are executed verbatim on both SQLite and PostgreSQL.

CREATE TABLE IF NOT EXISTS "users" ("id" SERIAL NOT NULL PRIMARY KEY, "telegram_id" BIGINT NOT NULL, "username" VARCHAR(64), "first_name" VARCHAR(128), "status" VARCHAR(16) NOT NULL, "is_admin" BOOLEAN NOT NULL, "notify" BOOLEAN NOT NULL, "notify_chart" BOOLEAN NOT NULL DEFAULT FALSE, "reply_keyboard" BOOLEAN NOT NULL DEFAULT TRUE, "breaker_until" TIMESTAMP, "breaker_reason" VARCHAR(255), "created_at" TIMESTAMP NOT NULL, "updated_at" TIMESTAMP NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS "users_telegram_id" ON "users" ("telegram_id");
CREATE TABLE IF NOT EXISTS "exchange_credentials" ("id" SERIAL NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "exchange" VARCHAR(16) NOT NULL, "network" VARCHAR(8) NOT NULL, "api_key_enc" TEXT, "secret_enc" TEXT, "created_at" TIMESTAMP NOT NULL, "updated_at" TIMESTAMP NOT NULL, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS "exchange_credentials_user_id" ON "exchange_credentials" ("user_id");
CREATE UNIQUE INDEX IF NOT EXISTS "exchange_credentials_user_id_exchange" ON "exchange_credentials" ("user_id", "exchange");
CREATE TABLE IF NOT EXISTS "user_configs" ("id" SERIAL NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "exchange" VARCHAR(16) NOT NULL, "symbol" VARCHAR(32) NOT NULL, "budget" NUMERIC NOT NULL, "timeframe" VARCHAR(8) NOT NULL, "interval_seconds" INTEGER NOT NULL, "decider" VARCHAR(32) NOT NULL, "side" VARCHAR(8) NOT NULL, "leverage" INTEGER NOT NULL, "max_position_percent" NUMERIC NOT NULL, "stop_loss_percent" NUMERIC NOT NULL, "take_profit_percent" NUMERIC NOT NULL, "max_consecutive_losses" INTEGER NOT NULL, "daily_loss_limit_percent" NUMERIC NOT NULL, "max_drawdown_percent" NUMERIC NOT NULL, "cooldown_minutes" INTEGER NOT NULL, "min_confidence" INTEGER NOT NULL, "is_trading" BOOLEAN NOT NULL, "created_at" TIMESTAMP NOT NULL, "updated_at" TIMESTAMP NOT NULL, "market_type" VARCHAR(8) NOT NULL, "margin_mode" VARCHAR(8) NOT NULL, "direction" VARCHAR(8) NOT NULL, "trailing_stop_percent" NUMERIC NOT NULL, "preset" VARCHAR(32), FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS "user_configs_user_id" ON "user_configs" ("user_id");
CREATE UNIQUE INDEX IF NOT EXISTS "user_configs_user_id_exchange_symbol" ON "user_configs" ("user_id", "exchange", "symbol");
CREATE TABLE IF NOT EXISTS "user_states" ("id" SERIAL NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "config_id" INTEGER NOT NULL, "status" VARCHAR(16) NOT NULL, "mode" VARCHAR(8) NOT NULL, "balance" NUMERIC NOT NULL, "cash" NUMERIC NOT NULL, "holdings" NUMERIC NOT NULL, "equity" NUMERIC NOT NULL, "realized_pnl" NUMERIC NOT NULL, "unrealized_pnl" NUMERIC NOT NULL, "fees_paid" NUMERIC NOT NULL, "daily_pnl" NUMERIC NOT NULL, "daily_pnl_date" DATE, "day_start_equity" NUMERIC, "peak_equity" NUMERIC NOT NULL, "last_price" NUMERIC, "consecutive_losses" INTEGER NOT NULL, "breaker_until" TIMESTAMP, "breaker_reason" VARCHAR(255), "risk_day_ref" NUMERIC, "risk_peak_ref" NUMERIC, "last_candle_ts" BIGINT, "last_cycle_at" TIMESTAMP, "last_error" TEXT, "error_count" INTEGER NOT NULL, "updated_at" TIMESTAMP NOT NULL, "funding_paid" NUMERIC NOT NULL, "last_funding_ts" BIGINT, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE, FOREIGN KEY ("config_id") REFERENCES "user_configs" ("id") ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS "user_states_user_id" ON "user_states" ("user_id");
CREATE UNIQUE INDEX IF NOT EXISTS "user_states_config_id" ON "user_states" ("config_id");
CREATE TABLE IF NOT EXISTS "llm_answers" ("id" SERIAL NOT NULL PRIMARY KEY, "provider" VARCHAR(64) NOT NULL, "model" VARCHAR(128) NOT NULL, "prompt_hash" VARCHAR(32) NOT NULL, "user_id" INTEGER, "config_id" INTEGER, "exchange" VARCHAR(16) NOT NULL, "symbol" VARCHAR(32) NOT NULL, "timeframe" VARCHAR(8) NOT NULL, "candle_ts" BIGINT, "state" VARCHAR(8) NOT NULL, "ok" BOOLEAN NOT NULL, "action" VARCHAR(8), "confidence" INTEGER, "reasoning" TEXT, "error" TEXT, "latency_ms" INTEGER NOT NULL, "input_tokens" INTEGER NOT NULL, "output_tokens" INTEGER NOT NULL, "cost" NUMERIC NOT NULL, "response" TEXT, "day" DATE NOT NULL, "created_at" TIMESTAMP NOT NULL, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE SET NULL, FOREIGN KEY ("config_id") REFERENCES "user_configs" ("id") ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS "llm_answers_user_id" ON "llm_answers" ("user_id");
CREATE INDEX IF NOT EXISTS "llm_answers_config_id" ON "llm_answers" ("config_id");
CREATE INDEX IF NOT EXISTS "llm_answers_day_provider" ON "llm_answers" ("day", "provider");
CREATE INDEX IF NOT EXISTS "llm_answers_user_id_day" ON "llm_answers" ("user_id", "day");
CREATE TABLE IF NOT EXISTS "ai_decisions" ("id" SERIAL NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "config_id" INTEGER, "symbol" VARCHAR(32) NOT NULL, "provider" VARCHAR(64) NOT NULL, "action" VARCHAR(8) NOT NULL, "confidence" INTEGER NOT NULL, "reasoning" TEXT, "inputs" TEXT, "response" TEXT, "executed" BOOLEAN NOT NULL, "outcome" VARCHAR(16), "profitable" BOOLEAN, "pnl" NUMERIC, "candle_ts" BIGINT, "created_at" TIMESTAMP NOT NULL, "llm_answer_id" INTEGER, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE, FOREIGN KEY ("config_id") REFERENCES "user_configs" ("id") ON DELETE SET NULL, FOREIGN KEY ("llm_answer_id") REFERENCES "llm_answers" ("id") ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS "ai_decisions_user_id" ON "ai_decisions" ("user_id");
CREATE INDEX IF NOT EXISTS "ai_decisions_config_id" ON "ai_decisions" ("config_id");
CREATE INDEX IF NOT EXISTS "ai_decisions_llm_answer_id" ON "ai_decisions" ("llm_answer_id");
CREATE INDEX IF NOT EXISTS "ai_decisions_user_id_provider" ON "ai_decisions" ("user_id", "provider");
CREATE TABLE IF NOT EXISTS "decision_tallies" ("id" SERIAL NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "config_id" INTEGER, "symbol" VARCHAR(32) NOT NULL, "provider" VARCHAR(64) NOT NULL, "action" VARCHAR(8) NOT NULL, "day" DATE NOT NULL, "decisions" INTEGER NOT NULL, "confidence_sum" BIGINT NOT NULL, "last_candle_ts" BIGINT, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE, FOREIGN KEY ("config_id") REFERENCES "user_configs" ("id") ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS "decision_tallies_user_id" ON "decision_tallies" ("user_id");
CREATE INDEX IF NOT EXISTS "decision_tallies_config_id" ON "decision_tallies" ("config_id");
CREATE UNIQUE INDEX IF NOT EXISTS "decision_tallies_config_id_provider_action_day" ON "decision_tallies" ("config_id", "provider", "action", "day");
CREATE INDEX IF NOT EXISTS "decision_tallies_user_id_provider" ON "decision_tallies" ("user_id", "provider");
CREATE TABLE IF NOT EXISTS "positions" ("id" SERIAL NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "config_id" INTEGER, "exchange" VARCHAR(16) NOT NULL, "symbol" VARCHAR(32) NOT NULL, "side" VARCHAR(8) NOT NULL, "leverage" INTEGER NOT NULL, "amount" NUMERIC NOT NULL, "entry_price" NUMERIC NOT NULL, "cost_basis" NUMERIC NOT NULL, "stop_loss_price" NUMERIC, "take_profit_price" NUMERIC, "status" VARCHAR(8) NOT NULL, "exit_price" NUMERIC, "realized_pnl" NUMERIC, "close_reason" VARCHAR(32), "decision_id" INTEGER, "opened_at" TIMESTAMP NOT NULL, "closed_at" TIMESTAMP, "margin" NUMERIC, "funding" NUMERIC NOT NULL, "liquidation_price" NUMERIC, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE, FOREIGN KEY ("config_id") REFERENCES "user_configs" ("id") ON DELETE SET NULL, FOREIGN KEY ("decision_id") REFERENCES "ai_decisions" ("id") ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS "positions_user_id" ON "positions" ("user_id");
CREATE INDEX IF NOT EXISTS "positions_config_id" ON "positions" ("config_id");
CREATE INDEX IF NOT EXISTS "positions_decision_id" ON "positions" ("decision_id");
CREATE INDEX IF NOT EXISTS "positions_config_id_status" ON "positions" ("config_id", "status");
CREATE TABLE IF NOT EXISTS "orders" ("id" SERIAL NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "config_id" INTEGER, "client_order_id" VARCHAR(36) NOT NULL, "exchange" VARCHAR(16) NOT NULL, "network" VARCHAR(8) NOT NULL, "symbol" VARCHAR(32) NOT NULL, "side" VARCHAR(4) NOT NULL, "order_type" VARCHAR(8) NOT NULL, "amount" NUMERIC, "quote_amount" NUMERIC, "price" NUMERIC, "status" VARCHAR(16) NOT NULL, "exchange_order_id" VARCHAR(64), "filled_amount" NUMERIC, "cost" NUMERIC, "avg_price" NUMERIC, "fee" NUMERIC, "fee_currency" VARCHAR(16), "reason" VARCHAR(32), "decision_id" INTEGER, "error" TEXT, "created_at" TIMESTAMP NOT NULL, "updated_at" TIMESTAMP NOT NULL, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE, FOREIGN KEY ("config_id") REFERENCES "user_configs" ("id") ON DELETE SET NULL, FOREIGN KEY ("decision_id") REFERENCES "ai_decisions" ("id") ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS "orders_user_id" ON "orders" ("user_id");
CREATE INDEX IF NOT EXISTS "orders_config_id" ON "orders" ("config_id");
CREATE UNIQUE INDEX IF NOT EXISTS "orders_client_order_id" ON "orders" ("client_order_id");
CREATE INDEX IF NOT EXISTS "orders_decision_id" ON "orders" ("decision_id");
CREATE INDEX IF NOT EXISTS "orders_status" ON "orders" ("status");
CREATE TABLE IF NOT EXISTS "trades" ("id" SERIAL NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "config_id" INTEGER, "order_id" INTEGER, "position_id" INTEGER, "exchange" VARCHAR(16) NOT NULL, "symbol" VARCHAR(32) NOT NULL, "side" VARCHAR(4) NOT NULL, "amount" NUMERIC NOT NULL, "price" NUMERIC NOT NULL, "cost" NUMERIC NOT NULL, "fee" NUMERIC NOT NULL, "pnl" NUMERIC, "pnl_percent" NUMERIC, "reason" VARCHAR(32), "client_order_id" VARCHAR(36), "executed_at" TIMESTAMP NOT NULL, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE, FOREIGN KEY ("config_id") REFERENCES "user_configs" ("id") ON DELETE SET NULL, FOREIGN KEY ("order_id") REFERENCES "orders" ("id") ON DELETE SET NULL, FOREIGN KEY ("position_id") REFERENCES "positions" ("id") ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS "trades_user_id" ON "trades" ("user_id");
CREATE INDEX IF NOT EXISTS "trades_config_id" ON "trades" ("config_id");
CREATE INDEX IF NOT EXISTS "trades_order_id" ON "trades" ("order_id");
CREATE INDEX IF NOT EXISTS "trades_position_id" ON "trades" ("position_id");
CREATE INDEX IF NOT EXISTS "trades_user_id_executed_at" ON "trades" ("user_id", "executed_at");
CREATE TABLE IF NOT EXISTS "risk_events" ("id" SERIAL NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "config_id" INTEGER, "scope" VARCHAR(8) NOT NULL, "kind" VARCHAR(32) NOT NULL, "detail" TEXT, "value" NUMERIC, "threshold" NUMERIC, "until" TIMESTAMP, "created_at" TIMESTAMP NOT NULL, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE, FOREIGN KEY ("config_id") REFERENCES "user_configs" ("id") ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS "risk_events_user_id" ON "risk_events" ("user_id");
CREATE INDEX IF NOT EXISTS "risk_events_config_id" ON "risk_events" ("config_id");
CREATE TABLE IF NOT EXISTS "daily_performance" ("id" SERIAL NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "config_id" INTEGER, "day" DATE NOT NULL, "start_equity" NUMERIC NOT NULL, "end_equity" NUMERIC NOT NULL, "pnl" NUMERIC NOT NULL, "trades" INTEGER NOT NULL, "wins" INTEGER NOT NULL, "losses" INTEGER NOT NULL, "fees" NUMERIC NOT NULL, "created_at" TIMESTAMP NOT NULL, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE, FOREIGN KEY ("config_id") REFERENCES "user_configs" ("id") ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS "daily_performance_user_id" ON "daily_performance" ("user_id");
CREATE INDEX IF NOT EXISTS "daily_performance_config_id" ON "daily_performance" ("config_id");
CREATE UNIQUE INDEX IF NOT EXISTS "daily_performance_config_id_day" ON "daily_performance" ("config_id", "day");
CREATE TABLE IF NOT EXISTS "notifications" ("id" SERIAL NOT NULL PRIMARY KEY, "user_id" INTEGER NOT NULL, "config_id" INTEGER, "kind" VARCHAR(32) NOT NULL, "payload" TEXT NOT NULL, "created_at" TIMESTAMP NOT NULL, "sent_at" TIMESTAMP, "attempts" INTEGER NOT NULL, "claimed_by" VARCHAR(64), "claimed_at" TIMESTAMP, FOREIGN KEY ("user_id") REFERENCES "users" ("id") ON DELETE CASCADE, FOREIGN KEY ("config_id") REFERENCES "user_configs" ("id") ON DELETE SET NULL);
CREATE INDEX IF NOT EXISTS "notifications_user_id" ON "notifications" ("user_id");
CREATE INDEX IF NOT EXISTS "notifications_config_id" ON "notifications" ("config_id");
CREATE INDEX IF NOT EXISTS "notifications_sent_at" ON "notifications" ("sent_at");
CREATE TABLE IF NOT EXISTS "instance_lock" ("name" VARCHAR(32) NOT NULL PRIMARY KEY, "host" VARCHAR(255) NOT NULL, "pid" INTEGER NOT NULL, "since" TIMESTAMP NOT NULL, "heartbeat_at" TIMESTAMP NOT NULL, "holder" VARCHAR(64), "token" BIGINT NOT NULL, "expires_at" TIMESTAMP, "health_at" TIMESTAMP, "active_pairs" INTEGER, "cycle_lag_seconds" INTEGER, "telegram_ok" BOOLEAN, "telegram_checked_at" TIMESTAMP);
CREATE TABLE IF NOT EXISTS "workers" ("id" VARCHAR(64) NOT NULL PRIMARY KEY, "host" VARCHAR(255) NOT NULL, "pid" INTEGER NOT NULL, "started_at" TIMESTAMP NOT NULL, "heartbeat_at" TIMESTAMP NOT NULL, "expires_at" TIMESTAMP NOT NULL, "stopped_at" TIMESTAMP, "gone_noticed_at" TIMESTAMP, "pairs_held" INTEGER NOT NULL, "cycle_lag_seconds" INTEGER);
CREATE TABLE IF NOT EXISTS "pair_leases" ("config_id" INTEGER NOT NULL PRIMARY KEY, "worker" VARCHAR(64), "token" BIGINT NOT NULL, "acquired_at" TIMESTAMP, "expires_at" TIMESTAMP, "last_slot_ms" BIGINT, FOREIGN KEY ("config_id") REFERENCES "user_configs" ("id") ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS "pair_leases_worker" ON "pair_leases" ("worker");
CREATE TABLE IF NOT EXISTS "telegram_updates" ("update_id" BIGINT NOT NULL PRIMARY KEY, "payload" TEXT, "received_at" TIMESTAMP NOT NULL, "holder" VARCHAR(64), "started_at" TIMESTAMP, "handled_at" TIMESTAMP);
CREATE INDEX IF NOT EXISTS "telegram_updates_handled_at" ON "telegram_updates" ("handled_at");
CREATE TABLE IF NOT EXISTS "schema_migrations" ("version" INTEGER NOT NULL PRIMARY KEY, "name" VARCHAR(128) NOT NULL, "applied_at" TIMESTAMP NOT NULL);

-- @views
-- Portable SQL: these statements run unchanged on SQLite and PostgreSQL.
-- Money sums are exact decimal TEXT on both (e.g. '1000', '999.60981514', '-0.5'): SQLite has no decimal
-- type (CAST AS NUMERIC gives floats, '1000.0'), so each value is turned into a 64-bit integer count of
-- 1e-8 units from its text, added as integers and printed back as plain decimal text, rounded to 8
-- places. Cast to NUMERIC to sort by value: ORDER BY CAST(total_equity AS NUMERIC).
-- No '%' anywhere (the PostgreSQL driver reads it as a parameter marker): a % n is a - (a / n) * n.

CREATE VIEW user_overview AS
SELECT
    user_id, telegram_id, username, status, pairs, active_pairs,
    CASE WHEN balance_units < 0 THEN '-' ELSE '' END || CAST(abs(balance_units) / 100000000 AS TEXT) || CASE WHEN (abs(balance_units) - (abs(balance_units) / 100000000) * 100000000) = 0 THEN '' ELSE '.' || rtrim(substr(CAST((abs(balance_units) - (abs(balance_units) / 100000000) * 100000000) + 100000000 AS TEXT), 2), '0') END AS total_balance,
    CASE WHEN equity_units < 0 THEN '-' ELSE '' END || CAST(abs(equity_units) / 100000000 AS TEXT) || CASE WHEN (abs(equity_units) - (abs(equity_units) / 100000000) * 100000000) = 0 THEN '' ELSE '.' || rtrim(substr(CAST((abs(equity_units) - (abs(equity_units) / 100000000) * 100000000) + 100000000 AS TEXT), 2), '0') END AS total_equity,
    CASE WHEN equity_units - balance_units < 0 THEN '-' ELSE '' END || CAST(abs(equity_units - balance_units) / 100000000 AS TEXT) || CASE WHEN (abs(equity_units - balance_units) - (abs(equity_units - balance_units) / 100000000) * 100000000) = 0 THEN '' ELSE '.' || rtrim(substr(CAST((abs(equity_units - balance_units) - (abs(equity_units - balance_units) / 100000000) * 100000000) + 100000000 AS TEXT), 2), '0') END AS total_pnl,
    CASE WHEN daily_pnl_units < 0 THEN '-' ELSE '' END || CAST(abs(daily_pnl_units) / 100000000 AS TEXT) || CASE WHEN (abs(daily_pnl_units) - (abs(daily_pnl_units) / 100000000) * 100000000) = 0 THEN '' ELSE '.' || rtrim(substr(CAST((abs(daily_pnl_units) - (abs(daily_pnl_units) / 100000000) * 100000000) + 100000000 AS TEXT), 2), '0') END AS daily_pnl,
    total_trades,
    created_at,
    futures_pairs, long_positions, short_positions, max_leverage,
    CASE WHEN upnl_units < 0 THEN '-' ELSE '' END || CAST(abs(upnl_units) / 100000000 AS TEXT) || CASE WHEN (abs(upnl_units) - (abs(upnl_units) / 100000000) * 100000000) = 0 THEN '' ELSE '.' || rtrim(substr(CAST((abs(upnl_units) - (abs(upnl_units) / 100000000) * 100000000) + 100000000 AS TEXT), 2), '0') END AS unrealized_pnl,
    CASE WHEN funding_units < 0 THEN '-' ELSE '' END || CAST(abs(funding_units) / 100000000 AS TEXT) || CASE WHEN (abs(funding_units) - (abs(funding_units) / 100000000) * 100000000) = 0 THEN '' ELSE '.' || rtrim(substr(CAST((abs(funding_units) - (abs(funding_units) / 100000000) * 100000000) + 100000000 AS TEXT), 2), '0') END AS funding_paid
FROM (
    SELECT
        u.id AS user_id,
        u.telegram_id,
        u.username,
        u.status,
        (SELECT COUNT(*) FROM user_configs c WHERE c.user_id = u.id) AS pairs,
        (SELECT COUNT(*) FROM user_configs c WHERE c.user_id = u.id AND c.is_trading = TRUE) AS active_pairs,
        (SELECT CAST(COALESCE(SUM(((CAST(substr(CAST(s.balance AS TEXT), 1, length(CAST(s.balance AS TEXT)) - length(ltrim(CAST(s.balance AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(s.balance AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(s.balance AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10)), 0) AS BIGINT) FROM user_states s WHERE s.user_id = u.id) AS balance_units,
        (SELECT CAST(COALESCE(SUM(((CAST(substr(CAST(s.equity AS TEXT), 1, length(CAST(s.equity AS TEXT)) - length(ltrim(CAST(s.equity AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(s.equity AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(s.equity AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10)), 0) AS BIGINT) FROM user_states s WHERE s.user_id = u.id) AS equity_units,
        (SELECT CAST(COALESCE(SUM(((CAST(substr(CAST(s.daily_pnl AS TEXT), 1, length(CAST(s.daily_pnl AS TEXT)) - length(ltrim(CAST(s.daily_pnl AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(s.daily_pnl AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(s.daily_pnl AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10)), 0) AS BIGINT) FROM user_states s WHERE s.user_id = u.id) AS daily_pnl_units,
        (SELECT COUNT(*) FROM trades t WHERE t.user_id = u.id) AS total_trades,
        u.created_at,
        (SELECT COUNT(*) FROM user_configs c WHERE c.user_id = u.id AND c.market_type = 'futures') AS futures_pairs,
        (SELECT COUNT(*) FROM positions p WHERE p.user_id = u.id AND p.status = 'open' AND p.side = 'long') AS long_positions,
        (SELECT COUNT(*) FROM positions p WHERE p.user_id = u.id AND p.status = 'open' AND p.side = 'short') AS short_positions,
        (SELECT MAX(p.leverage) FROM positions p WHERE p.user_id = u.id AND p.status = 'open') AS max_leverage,
        (SELECT CAST(COALESCE(SUM(((CAST(substr(CAST(s.unrealized_pnl AS TEXT), 1, length(CAST(s.unrealized_pnl AS TEXT)) - length(ltrim(CAST(s.unrealized_pnl AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(s.unrealized_pnl AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(s.unrealized_pnl AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10)), 0) AS BIGINT) FROM user_states s WHERE s.user_id = u.id) AS upnl_units,
        (SELECT CAST(COALESCE(SUM(((CAST(substr(CAST(s.funding_paid AS TEXT), 1, length(CAST(s.funding_paid AS TEXT)) - length(ltrim(CAST(s.funding_paid AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(s.funding_paid AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(s.funding_paid AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10)), 0) AS BIGINT) FROM user_states s WHERE s.user_id = u.id) AS funding_units
    FROM users u
) totals;

CREATE VIEW recent_trades_by_user AS
SELECT user_id, telegram_id, username, trade_id, exchange, symbol, side, amount, price, cost, fee, pnl, reason, executed_at
FROM (
    SELECT
        t.user_id,
        u.telegram_id,
        u.username,
        t.id AS trade_id,
        t.exchange,
        t.symbol,
        t.side,
        t.amount,
        t.price,
        t.cost,
        t.fee,
        t.pnl,
        t.reason,
        t.executed_at,
        ROW_NUMBER() OVER (PARTITION BY t.user_id ORDER BY t.executed_at DESC, t.id DESC) AS rn
    FROM trades t
    JOIN users u ON u.id = t.user_id
) recent
WHERE rn <= 50;

CREATE VIEW open_positions_by_user AS
SELECT
    user_id, telegram_id, username, position_id, exchange, symbol, side, amount, entry_price, cost_basis,
    last_price,
    CASE WHEN pnl_units < 0 THEN '-' ELSE '' END || CAST(abs(pnl_units) / 100000000 AS TEXT) || CASE WHEN (abs(pnl_units) - (abs(pnl_units) / 100000000) * 100000000) = 0 THEN '' ELSE '.' || rtrim(substr(CAST((abs(pnl_units) - (abs(pnl_units) / 100000000) * 100000000) + 100000000 AS TEXT), 2), '0') END AS unrealized_pnl,
    stop_loss_price, take_profit_price, opened_at,
    market_type, leverage, margin, liquidation_price, funding
FROM (
    SELECT q.*,
        -- in 1e-8 units, products as four partial products so that no step overflows 64 bits:
        -- spot: amount x last price - cost basis; futures: +/- amount x (last price - entry), minus for a short
        CASE WHEN q.market_type = 'futures'
            THEN (CASE WHEN q.side = 'short' THEN -1 ELSE 1 END) * (((a_units / 100000000) * (p_units / 100000000) * 100000000 + (a_units / 100000000) * (p_units - (p_units / 100000000) * 100000000) + (a_units - (a_units / 100000000) * 100000000) * (p_units / 100000000) + ((a_units - (a_units / 100000000) * 100000000) * (p_units - (p_units / 100000000) * 100000000) + 50000000) / 100000000) - ((a_units / 100000000) * (e_units / 100000000) * 100000000 + (a_units / 100000000) * (e_units - (e_units / 100000000) * 100000000) + (a_units - (a_units / 100000000) * 100000000) * (e_units / 100000000) + ((a_units - (a_units / 100000000) * 100000000) * (e_units - (e_units / 100000000) * 100000000) + 50000000) / 100000000))
            ELSE ((a_units / 100000000) * (p_units / 100000000) * 100000000 + (a_units / 100000000) * (p_units - (p_units / 100000000) * 100000000) + (a_units - (a_units / 100000000) * 100000000) * (p_units / 100000000) + ((a_units - (a_units / 100000000) * 100000000) * (p_units - (p_units / 100000000) * 100000000) + 50000000) / 100000000) - c_units
        END AS pnl_units
    FROM (
        SELECT
            p.user_id,
            u.telegram_id,
            u.username,
            p.id AS position_id,
            p.exchange,
            p.symbol,
            p.side,
            p.amount,
            p.entry_price,
            p.cost_basis,
            s.last_price,
            ((CAST(substr(CAST(p.amount AS TEXT), 1, length(CAST(p.amount AS TEXT)) - length(ltrim(CAST(p.amount AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(p.amount AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(p.amount AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10) AS a_units,
            ((CAST(substr(CAST(s.last_price AS TEXT), 1, length(CAST(s.last_price AS TEXT)) - length(ltrim(CAST(s.last_price AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(s.last_price AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(s.last_price AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10) AS p_units,
            ((CAST(substr(CAST(p.cost_basis AS TEXT), 1, length(CAST(p.cost_basis AS TEXT)) - length(ltrim(CAST(p.cost_basis AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(p.cost_basis AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(p.cost_basis AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10) AS c_units,
            ((CAST(substr(CAST(p.entry_price AS TEXT), 1, length(CAST(p.entry_price AS TEXT)) - length(ltrim(CAST(p.entry_price AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(p.entry_price AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(p.entry_price AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10) AS e_units,
            p.stop_loss_price,
            p.take_profit_price,
            p.opened_at,
            CASE WHEN p.margin IS NULL THEN 'spot' ELSE 'futures' END AS market_type,
            p.leverage,
            p.margin,
            p.liquidation_price,
            p.funding
        FROM positions p
        JOIN users u ON u.id = p.user_id
        LEFT JOIN user_states s ON s.config_id = p.config_id
        WHERE p.status = 'open'
    ) q
) priced;

CREATE VIEW ai_provider_stats_by_user AS
SELECT
    stats.user_id, stats.username, stats.provider, stats.decisions, stats.buys, stats.sells, stats.holds,
    stats.executed, stats.closed, stats.profitable, stats.accuracy_pct, stats.avg_confidence,
    CASE WHEN stats.pnl_units < 0 THEN '-' ELSE '' END || CAST(abs(stats.pnl_units) / 100000000 AS TEXT) || CASE WHEN (abs(stats.pnl_units) - (abs(stats.pnl_units) / 100000000) * 100000000) = 0 THEN '' ELSE '.' || rtrim(substr(CAST((abs(stats.pnl_units) - (abs(stats.pnl_units) / 100000000) * 100000000) + 100000000 AS TEXT), 2), '0') END AS total_pnl,
    COALESCE(calls.llm_calls, 0) AS llm_calls, COALESCE(calls.llm_errors, 0) AS llm_errors,
    COALESCE(calls.input_tokens, 0) AS input_tokens, COALESCE(calls.output_tokens, 0) AS output_tokens,
    CASE WHEN COALESCE(calls.cost_units, 0) < 0 THEN '-' ELSE '' END || CAST(abs(COALESCE(calls.cost_units, 0)) / 100000000 AS TEXT) || CASE WHEN (abs(COALESCE(calls.cost_units, 0)) - (abs(COALESCE(calls.cost_units, 0)) / 100000000) * 100000000) = 0 THEN '' ELSE '.' || rtrim(substr(CAST((abs(COALESCE(calls.cost_units, 0)) - (abs(COALESCE(calls.cost_units, 0)) / 100000000) * 100000000) + 100000000 AS TEXT), 2), '0') END AS llm_cost
FROM (
    SELECT
        d.user_id,
        u.username,
        d.provider,
        SUM(d.n) AS decisions,
        SUM(CASE WHEN d.action = 'buy' THEN d.n ELSE 0 END) AS buys,
        SUM(CASE WHEN d.action = 'sell' THEN d.n ELSE 0 END) AS sells,
        SUM(CASE WHEN d.action = 'hold' THEN d.n ELSE 0 END) AS holds,
        SUM(CASE WHEN d.executed THEN 1 ELSE 0 END) AS executed,
        SUM(CASE WHEN d.outcome IS NOT NULL THEN 1 ELSE 0 END) AS closed,
        SUM(CASE WHEN d.outcome = 'profitable' THEN 1 ELSE 0 END) AS profitable,
        ROUND(100.0 * SUM(CASE WHEN d.outcome = 'profitable' THEN 1 ELSE 0 END)
              / NULLIF(SUM(CASE WHEN d.outcome IS NOT NULL THEN 1 ELSE 0 END), 0), 2) AS accuracy_pct,
        ROUND(SUM(d.confidence_sum) * 1.0 / NULLIF(SUM(d.n), 0), 2) AS avg_confidence,
        CAST(COALESCE(SUM(((CAST(substr(CAST(d.pnl AS TEXT), 1, length(CAST(d.pnl AS TEXT)) - length(ltrim(CAST(d.pnl AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(d.pnl AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(d.pnl AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10)), 0) AS BIGINT) AS pnl_units
    FROM (
        -- one row per stored decision, plus the repeated decisions counted in decision_tallies
        SELECT user_id, provider, action, 1 AS n, confidence AS confidence_sum, executed, outcome, pnl
        FROM ai_decisions
        UNION ALL
        SELECT user_id, provider, action, decisions, confidence_sum, FALSE, CAST(NULL AS VARCHAR(16)),
               CAST(NULL AS NUMERIC)
        FROM decision_tallies
    ) d
    JOIN users u ON u.id = d.user_id
    GROUP BY d.user_id, u.username, d.provider
) stats
-- LLM calls this user's pairs made (a shared answer is charged to the pair whose cycle asked), so the
-- per-user figures add up to the totals of llm_usage_daily
LEFT JOIN (
    SELECT a.user_id, a.provider, COUNT(*) AS llm_calls, SUM(CASE WHEN a.ok THEN 0 ELSE 1 END) AS llm_errors,
           SUM(a.input_tokens) AS input_tokens, SUM(a.output_tokens) AS output_tokens,
           CAST(SUM(((CAST(substr(CAST(a.cost AS TEXT), 1, length(CAST(a.cost AS TEXT)) - length(ltrim(CAST(a.cost AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(a.cost AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(a.cost AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10)) AS BIGINT) AS cost_units
    FROM llm_answers a
    GROUP BY a.user_id, a.provider
) calls ON calls.user_id = stats.user_id AND calls.provider = stats.provider;

-- LLM calls per UTC day and provider, with tokens, cost (USD, exact) and error rate (`tradebot admin llm`).
CREATE VIEW llm_usage_daily AS
SELECT
    day, provider, calls, errors, ROUND(100.0 * errors / calls, 2) AS error_pct, input_tokens, output_tokens,
    CASE WHEN cost_units < 0 THEN '-' ELSE '' END || CAST(abs(cost_units) / 100000000 AS TEXT) || CASE WHEN (abs(cost_units) - (abs(cost_units) / 100000000) * 100000000) = 0 THEN '' ELSE '.' || rtrim(substr(CAST((abs(cost_units) - (abs(cost_units) / 100000000) * 100000000) + 100000000 AS TEXT), 2), '0') END AS cost,
    avg_latency_ms
FROM (
    SELECT a.day, a.provider, COUNT(*) AS calls, SUM(CASE WHEN a.ok THEN 0 ELSE 1 END) AS errors,
           SUM(a.input_tokens) AS input_tokens, SUM(a.output_tokens) AS output_tokens,
           CAST(SUM(((CAST(substr(CAST(a.cost AS TEXT), 1, length(CAST(a.cost AS TEXT)) - length(ltrim(CAST(a.cost AS TEXT), '-0123456789'))) || substr(substr(ltrim(CAST(a.cost AS TEXT), '-0123456789'), 2) || '000000000', 1, 9) AS BIGINT) + CASE WHEN substr(CAST(a.cost AS TEXT), 1, 1) = '-' THEN -5 ELSE 5 END) / 10)) AS BIGINT) AS cost_units,
           CAST(AVG(a.latency_ms) AS BIGINT) AS avg_latency_ms
    FROM llm_answers a
    GROUP BY a.day, a.provider
) per_day;

-- Correct per-pair variant of the brief's "Monitor Active Trading" query (the brief joins
-- user_states on user_id only, which repeats rows for users with several pairs).
CREATE VIEW active_trading AS
SELECT
    u.username,
    uc.exchange,
    uc.symbol,
    us.equity,
    us.daily_pnl,
    us.status,
    uc.is_trading
FROM users u
JOIN user_configs uc ON u.id = uc.user_id
JOIN user_states us ON us.config_id = uc.id
WHERE uc.is_trading = TRUE;
