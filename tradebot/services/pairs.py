"""A user's pairs: /addpair, /removepair, /listpairs and /status, finding a pair by symbol or button id,
and the funding check after adding one."""

from __future__ import annotations

from decimal import Decimal

from ..db import write_tx
from ..exchange.futures_symbols import futures_symbol, split_futures_text
from ..models import ExchangeCredential, Position, User, UserConfig, UserState, utcnow
from ..risk_futures import max_safe_stop_loss
from .chat_rows import pairs_with_rows, user_pairs
from .common import HUNDRED, ZERO, _action, symbol_key
from .views import Ambiguous, Conflict, InvalidValue, NotConnected, NotFound, PairView


class PairsMixin:
    """Pair use cases (part of Services)."""

    def _pairs(self, user: User) -> list[UserConfig]:
        """The user's pairs in the order they were added (one prepared statement: chat_rows.py)."""
        return user_pairs(user.id)

    def find_pair(
        self, user: User, symbol_text: str, exchange: str | None = None, command: str = ""
    ) -> UserConfig:
        """One of the user's own pairs by symbol (any spelling) and optional exchange."""
        # 'BTC/USDT' names the spot pair (or the perpetual when there is no spot pair); 'BTC/USDT:USDT',
        # 'btcusdt.p' name the perpetual
        spot_text, futures = split_futures_text(symbol_text)
        key = symbol_key(spot_text)
        matches = [c for c in self._pairs(user) if symbol_key(c.symbol.split(":")[0]) == key]
        if futures:
            matches = [c for c in matches if ":" in c.symbol]
        elif any(":" not in c.symbol for c in matches):
            matches = [c for c in matches if ":" not in c.symbol]
        if exchange:
            matches = [c for c in matches if c.exchange == exchange]
        if not matches:
            shown = symbol_text.upper() if len(symbol_text) <= 32 else symbol_text[:32].upper() + "…"
            where = f" on {exchange}" if exchange else ""
            raise NotFound(f"You have no pair {shown}{where}. See /listpairs.")
        if len(matches) > 1:
            names = " and ".join(c.exchange for c in matches)
            example = f"/{command or 'status'} {matches[0].symbol} {matches[0].exchange}"
            raise Ambiguous(f"You have {matches[0].symbol} on {names}. Add the exchange, e.g. {example}")
        return matches[0]

    def pair_by_id(self, user: User, config_id: int) -> UserConfig:
        """For inline buttons: the id must belong to this user."""
        config = UserConfig.get_or_none((UserConfig.id == int(config_id)) & (UserConfig.user == user.id))
        if config is None:
            raise NotFound("That pair no longer exists. See /listpairs.")
        return config

    def add_pair(
        self, user: User, symbol_text: str, budget: Decimal, exchange: str | None = None, market: str | None = None
    ) -> PairView:
        """`market` "futures" (or a perpetual's name such as BTC/USDT:USDT or BTCUSDT.P) adds a USDT-M perpetual."""
        spot_text, named_futures = split_futures_text(symbol_text)
        futures = market == "futures" or named_futures
        creds = self.credentials(user)
        if exchange is None:
            if not creds:
                raise NotConnected(
                    "Connect an exchange first: /connect binance <api_key> <secret> true — or /connect binance paper"
                )
            if len(creds) > 1:
                names = " or ".join(c.exchange for c in creds)
                raise Ambiguous(
                    f"You connected {names}. Add the exchange, e.g. /addpair {symbol_text} {budget} {creds[0].exchange}"
                )
            cred = creds[0]
        else:
            cred = self._credential(user, exchange)
            if cred is None:
                raise NotConnected(
                    f"Connect {exchange} first: /connect {exchange} <api_key> <secret> true — or /connect {exchange} paper"
                )
        tcfg = self.cfg.trading
        if budget < tcfg.min_budget or budget > tcfg.max_budget:
            raise InvalidValue(f"Balance must be between ${tcfg.min_budget:.2f} and ${tcfg.max_budget:.2f}.")
        if UserConfig.select().where(UserConfig.user == user.id).count() >= tcfg.max_pairs_per_user:
            raise Conflict(f"You already have {tcfg.max_pairs_per_user} pairs, the maximum.")
        if futures and cred.network != "paper":
            key, secret = self.vault.decrypt(cred.api_key_enc), self.vault.decrypt(cred.secret_enc)
            self._ask_exchange(
                lambda: self.hub.check_futures_permission(cred.exchange, cred.network, key, secret), cred.exchange,
                cred.network, "futures permission check", "Could not check the key's futures permission. Try again later.",
            )
        symbol = self._resolve_symbol(cred.exchange, cred.network, spot_text if futures else symbol_text)
        risk = self.cfg.risk
        extra = {}
        if futures:
            if symbol.split("/")[-1] != "USDT":
                raise InvalidValue(f"Futures are USDT-margined perpetuals: {symbol} has no USDT perpetual. "
                                   f"Try {symbol.split('/')[0]}/USDT futures.")
            symbol = futures_symbol(symbol)
            leverage = getattr(risk, "max_leverage", 3)
            sl = risk.stop_loss_percent
            safe = max_safe_stop_loss(leverage)
            extra = {"market_type": "futures", "leverage": leverage, "margin_mode": "isolated",
                     "direction": "both", "stop_loss_percent": sl if sl <= safe else safe}
        with write_tx():
            if UserConfig.get_or_none(
                (UserConfig.user == user.id)
                & (UserConfig.exchange == cred.exchange)
                & (UserConfig.symbol == symbol)
            ):
                raise Conflict(f"You already have {symbol} on {cred.exchange}.")
            config = UserConfig.create(
                user=user.id,
                exchange=cred.exchange,
                symbol=symbol,
                budget=budget,
                timeframe=tcfg.default_timeframe,
                interval_seconds=tcfg.default_interval_seconds,
                decider=tcfg.default_decider,
                max_position_percent=risk.max_position_percent,
                stop_loss_percent=extra.pop("stop_loss_percent", risk.stop_loss_percent),
                take_profit_percent=risk.take_profit_percent,
                max_consecutive_losses=risk.max_consecutive_losses,
                daily_loss_limit_percent=risk.daily_loss_limit_percent,
                max_drawdown_percent=risk.max_drawdown_percent,
                cooldown_minutes=risk.cooldown_minutes,
                **extra,
            )
            UserState.create(
                user=user.id,
                config=config.id,
                status="stopped",
                mode=cred.network,
                balance=budget,
                cash=budget,
                equity=budget,
                peak_equity=budget,
            )
        _action(user, "added pair", pair=symbol, exchange=cred.exchange, budget=budget,
                market="futures" if futures else "spot")
        return self._view(UserConfig.get_by_id(config.id))

    def funding_shortfall(self, user: User, view: PairView) -> tuple[str, Decimal, Decimal] | None:
        """(asset, free, needed) when the connected account holds less free quote currency than the user's
        pairs on that exchange may still spend (their cash), else None. Paper mode: never. Raises on
        exchange trouble (callers treat this check as best effort)."""
        cred = self._credential(user, view.exchange)
        if cred is None or cred.network == "paper" or not cred.api_key_enc:
            return None
        quote = view.symbol.split("/")[-1]
        needed = ZERO
        for config in self._pairs(user):
            if config.exchange != view.exchange or config.symbol.split("/")[-1] != quote:
                continue
            state = UserState.get_or_none(UserState.config == config.id)
            needed += state.cash if state is not None and state.cash is not None else config.budget
        broker = self.hub.broker(
            view.exchange,
            cred.network,
            self.vault.decrypt(cred.api_key_enc),
            self.vault.decrypt(cred.secret_enc),
        )
        free = Decimal(broker.balance().get(quote, ZERO))
        return (quote, free, needed) if free < needed else None

    def _resolve_symbol(self, exchange: str, network: str, text: str) -> str:
        return self._ask_exchange(
            lambda: self.hub.resolve_symbol(exchange, network, text), exchange, network,
            "resolve_symbol", "Could not check the symbol with the exchange. Try again later.",
        )

    def list_pairs(self, user: User) -> list[PairView]:
        # one prepared statement for all the pairs (a /status is answered while 20,000 pairs trade)
        return [self._view(c, (state, cred), side) for c, state, cred, side in pairs_with_rows(user.id)]

    def status(
        self, user: User, symbol_text: str | None = None, exchange: str | None = None
    ) -> list[PairView]:
        if symbol_text:
            return [self._view(self.find_pair(user, symbol_text, exchange, "status"))]
        return self.list_pairs(user)

    def _views(self, configs: list[UserConfig]) -> list[PairView]:
        """Views of some of one user's pairs, their rows read in one statement."""
        if not configs:
            return []
        found = {c.id: (state, cred, side) for c, state, cred, side in pairs_with_rows(configs[0].user_id)}
        return [self._view(c, found[c.id][:2], found[c.id][2]) if c.id in found else self._view(c) for c in configs]

    def _view(self, config: UserConfig, rows: tuple | None = None, side: str | None = "?") -> PairView:
        """`rows`: (state, credential) when already read; `side`: the open position's side (None: flat),
        "?" when not read yet."""
        if rows is None:  # one prepared statement (a chat command naming a pair) rather than three queries
            row = next((r for r in pairs_with_rows(config.user_id) if r[0].id == config.id), None)
            if row is not None:
                rows, side = row[1:3], row[3]
        if rows is None:  # removed meanwhile: what is left of it
            state = UserState.get_or_none(UserState.config == config.id)
            cred = ExchangeCredential.get_or_none(
                (ExchangeCredential.user == config.user_id) & (ExchangeCredential.exchange == config.exchange)
            )
        else:
            state, cred = rows
        budget = config.budget
        equity = state.equity if state is not None and state.equity is not None else budget
        pnl = equity - budget
        percent = (pnl * HUNDRED / budget) if budget else ZERO
        network = state.mode if state is not None else (cred.network if cred else "paper")
        status = "running" if config.is_trading else "stopped"
        if config.is_trading and state is not None:
            now = utcnow()
            if state.breaker_until is not None and state.breaker_until > now:
                status = "paused"
            elif state.status == "error":
                status = "error"
        return PairView(
            config_id=config.id,
            symbol=config.symbol,
            exchange=config.exchange,
            network=network,
            budget=budget,
            is_trading=bool(config.is_trading),
            status=status,
            equity=equity,
            pnl=pnl,
            pnl_percent=percent,
            breaker_until=state.breaker_until if state is not None else None,
            breaker_reason=state.breaker_reason if state is not None else None,
            last_error=state.last_error if state is not None else None,
            **self._futures_fields(config, state, side),
        )

    @staticmethod
    def _futures_fields(config: UserConfig, state, side: str | None = "?") -> dict:
        """Market type, leverage and the position side of a futures pair for the views (futures only; one
        query unless the side was read with the pair)."""
        if getattr(config, "market_type", "spot") != "futures":
            return {}
        if side == "?":
            pos = (Position.select(Position.side)
                   .where((Position.config == config.id) & (Position.status == "open"))
                   .order_by(Position.id.desc()).first())
            side = pos.side if pos is not None else None
        return {
            "market_type": "futures",
            "leverage": int(config.leverage or 1),
            "margin_mode": config.margin_mode,
            "direction": config.direction,
            "side": side or "flat",
            "funding_paid": state.funding_paid if state is not None else ZERO,
        }

    def remove_pair(self, user: User, config: UserConfig, confirmed: bool = False) -> str:
        """Returns the symbol. Refuses while the pair trades. Without `confirmed` only checks."""
        config = self.pair_by_id(user, config.id)
        if config.is_trading or self.manager.is_running(config.id):
            raise Conflict(
                f"⚠️ Cannot remove {config.symbol} while trading is active.\nUse /stop_trading {config.symbol} first."
            )
        if confirmed:
            with write_tx():
                UserState.delete().where(UserState.config == config.id).execute()
                UserConfig.delete().where(UserConfig.id == config.id).execute()
            _action(user, "removed pair", pair=config.symbol, exchange=config.exchange)
        return config.symbol
