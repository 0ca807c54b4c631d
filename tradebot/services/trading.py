"""Trading control: /start_trading, /stop_trading and /reset_breaker over the engine's manager."""

from __future__ import annotations

from ..models import User, UserConfig, UserState, utcnow
from .common import _action, log
from .views import Conflict, NotFound, StartResult, StopResult


class TradingMixin:
    """Start/stop use cases (part of Services)."""

    def start_trading(self, user: User, configs: list[UserConfig] | None = None) -> StartResult:
        configs = (
            list(self._pairs(user)) if configs is None else [self.pair_by_id(user, c.id) for c in configs]
        )
        if not configs:
            raise NotFound("You have no pairs yet. Add one: /addpair BTC/USDT 1000")
        started, already, failed = [], [], []
        for config in configs:
            if config.is_trading and self.manager.is_running(config.id):
                already.append(config.symbol)
                continue
            cred = self._credential(user, config.exchange)
            if cred is None:
                failed.append((config.symbol, f"connect {config.exchange} first"))
                continue
            try:
                ok = self.manager.start_pair(config.id)
            except Exception as exc:
                log.exception("start_pair(%s) failed", config.id)
                failed.append((config.symbol, getattr(exc, "user_message", None) or "could not start"))
                continue
            if ok or self.manager.is_running(config.id):
                UserConfig.update(is_trading=True, updated_at=utcnow()).where(
                    UserConfig.id == config.id
                ).execute()
                started.append(config.symbol)
            else:
                state = UserState.get_or_none(UserState.config == config.id)
                failed.append((config.symbol, (state and state.last_error) or "could not start"))
        _action(user, "start trading", started=started, already=already,
                failed=[f"{sym} ({why})" for sym, why in failed])
        return StartResult(started, already, failed)

    def running_pairs(self, user: User) -> list[UserConfig]:
        return [c for c in self._pairs(user) if c.is_trading]

    def stop_trading(self, user: User, configs: list[UserConfig] | None = None) -> StopResult:
        configs = (
            list(self._pairs(user)) if configs is None else [self.pair_by_id(user, c.id) for c in configs]
        )
        stopped, already = [], []
        for config in configs:
            was = config.is_trading or self.manager.is_running(config.id)
            self.manager.stop_pair(config.id)
            UserConfig.update(is_trading=False, updated_at=utcnow()).where(
                UserConfig.id == config.id
            ).execute()
            (stopped if was else already).append(config.symbol)
        _action(user, "stop trading", stopped=stopped, already=already)
        return StopResult(stopped, already)

    def reset_breaker(self, user: User, config: UserConfig) -> str:
        """Clears the pair's tripped circuit breaker (and the user-scope one). The engine decides."""
        config = self.pair_by_id(user, config.id)
        if not self.manager.reset_breaker(config.id):
            raise Conflict(f"The circuit breaker of {config.symbol} is not tripped.")
        _action(user, "reset breaker", pair=config.symbol, exchange=config.exchange)
        return config.symbol
