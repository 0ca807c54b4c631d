"""Exchange accounts: /connect (keys checked with the exchange, stored encrypted) and the user's credentials."""

from __future__ import annotations

from ..db import write_tx
from ..models import ExchangeCredential, Position, User, UserConfig, UserState, utcnow
from .chat_rows import user_credentials
from .common import EXCHANGES, _action, _asked_now_message, _mask, _register_secrets, log
from .views import Conflict, ConnectResult, ExchangeRefused, InvalidValue


class AccountsMixin:
    """Exchange connection use cases (part of Services)."""

    def connect(
        self, user: User, exchange: str, network: str, api_key: str | None = None, secret: str | None = None
    ) -> ConnectResult:
        """Validates keys with the exchange (skipped in paper mode), then stores them encrypted."""
        _register_secrets(api_key, secret)
        if exchange not in EXCHANGES:
            raise InvalidValue(f"Unknown exchange. Use one of: {', '.join(EXCHANGES)}.")
        if network not in ("testnet", "live", "paper"):
            raise InvalidValue("Network must be testnet, live or paper.")
        if network != "paper" and (not api_key or not secret):
            raise InvalidValue("API key and secret are required (or use paper mode).")
        running = (
            UserConfig.select()
            .where((UserConfig.user == user.id) & (UserConfig.exchange == exchange) & (UserConfig.is_trading))  # noqa: E712
            .count()
        )
        existing = ExchangeCredential.get_or_none(
            (ExchangeCredential.user == user.id) & (ExchangeCredential.exchange == exchange)
        )
        if running:
            raise Conflict(f"Stop trading on {exchange} first (/stop_trading), then connect again.")
        if existing is not None and not self._same_account(existing, network, api_key):
            # An open position was bought on the old account / network: after the switch the engine would
            # sell it on the new one, i.e. sell coins the bot never bought there (or paper coins for real).
            held = [
                p.symbol
                for p in Position.select(Position.symbol)
                .join(UserConfig, on=(Position.config == UserConfig.id))
                .where(
                    (UserConfig.user == user.id)
                    & (UserConfig.exchange == exchange)
                    & (Position.status == "open")
                )
            ]
            if held:
                where = "in paper mode" if existing.network == "paper" else f"on {existing.network}"
                raise Conflict(
                    f"Your {exchange} pairs hold open positions bought {where}: {', '.join(sorted(set(held)))}. "
                    f"Switching accounts now would sell them on the new one. Let the bot close them first "
                    f"(/start_trading, then /stop_trading when /position is empty), or remove those pairs."
                )
        if network != "paper":
            self._check_credentials(exchange, network, api_key, secret)
            key_enc, secret_enc = self.vault.encrypt(api_key), self.vault.encrypt(secret)
        else:
            key_enc = secret_enc = None
        with write_tx():
            if existing is None:
                ExchangeCredential.create(
                    user=user.id,
                    exchange=exchange,
                    network=network,
                    api_key_enc=key_enc,
                    secret_enc=secret_enc,
                )
            else:
                ExchangeCredential.update(
                    network=network, api_key_enc=key_enc, secret_enc=secret_enc, updated_at=utcnow()
                ).where(ExchangeCredential.id == existing.id).execute()
            # The pairs on this exchange now run on the new network.
            UserState.update(mode=network).where(
                UserState.config.in_(
                    UserConfig.select(UserConfig.id).where(
                        (UserConfig.user == user.id) & (UserConfig.exchange == exchange)
                    )
                )
            ).execute()
        _action(user, "connected", exchange=exchange, network=network, replaced=existing is not None)
        return ConnectResult(exchange, network, _mask(api_key), existing is not None)

    def _same_account(self, existing: ExchangeCredential, network: str, api_key: str | None) -> bool:
        """True when a reconnect keeps the account: same network and (unless paper) the same API key."""
        if existing.network != network:
            return False
        if network == "paper":
            return True
        try:
            return self.vault.decrypt(existing.api_key_enc) == api_key
        except Exception:
            return False

    def _ask_exchange(self, call, exchange: str, network: str, what: str, fallback: str):
        """Run a hub call for a chat command; any failure becomes an ExchangeRefused the user can read."""
        try:
            return call()
        except Exception as exc:  # typed exchange errors carry .user_message
            message = _asked_now_message(exc)
            if message is None:
                log.warning("%s failed on %s/%s: %s", what, exchange, network, type(exc).__name__)
                message = fallback
            raise ExchangeRefused(message) from None

    def _check_credentials(self, exchange, network, api_key, secret) -> None:
        self._ask_exchange(
            lambda: self.hub.check_credentials(exchange, network, api_key, secret), exchange, network,
            "credential check", "Could not verify the keys with the exchange. Try again later.",
        )

    def credentials(self, user: User) -> list[ExchangeCredential]:
        return user_credentials(user.id)

    def _credential(self, user: User, exchange: str) -> ExchangeCredential | None:
        return ExchangeCredential.get_or_none(
            (ExchangeCredential.user == user.id) & (ExchangeCredential.exchange == exchange)
        )
