"""Circuit breakers in the database: trips and resets as risk_events rows plus events, and the user-scope
breaker evaluated over all of a user's pairs before a position opens."""

from __future__ import annotations

import datetime as dt

from .. import events, risk
from ..db import write_tx
from ..models import (
    RiskEvent,
    Trade,
    User,
    UserState,
)
from .book_rows import (
    ZERO,
    ms_to_dt,
)


def record_trip(cfg_or_user, scope: str, trip: risk.Trip, until_ms: int, now: dt.datetime) -> None:
    """risk_events row + one breaker_tripped event (call inside the booking / state transaction)."""
    if scope == "pair":
        user_id, config_id, symbol = cfg_or_user.user_id, cfg_or_user.id, cfg_or_user.symbol
    else:
        user_id, config_id, symbol = cfg_or_user.id, None, None
    until = ms_to_dt(until_ms)
    RiskEvent.create(
        user=user_id,
        config=config_id,
        scope=scope,
        kind=trip.kind,
        detail=trip.detail,
        value=trip.value,
        threshold=trip.threshold,
        until=until,
        created_at=now,
    )
    events.emit(
        user_id,
        "breaker_tripped",
        {"scope": scope, "symbol": symbol, "reason": trip.detail, "until": until.replace(tzinfo=dt.UTC)},
        config_id,
    )
    if scope == "pair":
        UserState.update(status="paused").where(UserState.config == config_id).execute()


def record_reset(user_id: int, config_id: int | None, symbol: str | None, scope: str, why: str, now) -> None:
    RiskEvent.create(user=user_id, config=config_id, scope=scope, kind="reset", detail=why, created_at=now)
    events.emit(user_id, "breaker_reset", {"scope": scope, "symbol": symbol}, config_id)


class UserBreaker:
    """The user-level breaker (part of CycleRunner)."""

    def _user_paused(self, cfg, now, now_ms) -> bool:
        """User-scope breaker: evaluate over all the user's pairs before opening a position."""
        user = User.get_by_id(cfg.user_id)
        if user.breaker_until is not None:
            if user.breaker_until > now:
                return True
            with write_tx():
                n = (
                    User.update(breaker_until=None, breaker_reason=None)
                    .where((User.id == user.id) & (User.breaker_until == user.breaker_until))
                    .execute()
                )
                if n:
                    record_reset(user.id, None, None, "user", "cooldown over", now)
            return False
        trip = self._evaluate_user(user, now)
        if trip is None:
            return False
        until_ms = risk.breaker_until_ms(now_ms, self.user_limits.cooldown_minutes)
        with write_tx():
            User.update(breaker_until=ms_to_dt(until_ms), breaker_reason=f"{trip.kind}: {trip.detail}").where(
                User.id == user.id
            ).execute()
            record_trip(user, "user", trip, until_ms, now)
        return True

    def _evaluate_user(self, user: User, now: dt.datetime) -> risk.Trip | None:
        lim = self.user_limits
        since = (
            RiskEvent.select(RiskEvent.created_at)
            .where((RiskEvent.user == user.id) & (RiskEvent.scope == "user"))
            .order_by(RiskEvent.id.desc())
            .scalar()
        )
        # A user-scope rule only adds something when it spans several pairs: a streak or a daily loss of
        # one pair alone is the pair breaker's job (and would otherwise trip both scopes at once).
        losses = 0
        if lim.max_consecutive_losses:
            q = Trade.select(Trade.pnl, Trade.config).where(
                # closing fills carry the pnl: spot sells, and futures closes of either side (a short closes by a buy)
                (Trade.user == user.id) & Trade.pnl.is_null(False)
            )
            if since is not None:
                q = q.where(Trade.executed_at > since)
            pairs = set()
            for t in q.order_by(Trade.id.desc()).limit(lim.max_consecutive_losses):
                if t.pnl < ZERO:
                    losses += 1
                    pairs.add(t.config_id)
                else:
                    break
            if len(pairs) < 2:
                losses = 0
        budget = ZERO
        day_loss = ZERO
        today = now.date()
        n_states = 0
        for st in UserState.select(UserState.balance, UserState.daily_pnl, UserState.daily_pnl_date).where(
            UserState.user == user.id
        ):
            n_states += 1
            budget += st.balance or ZERO
            if st.daily_pnl_date == today:
                day_loss -= st.daily_pnl or ZERO
        if n_states < 2 or (since is not None and since.date() == today):
            day_loss = ZERO  # one pair: the pair breaker covers it; already tripped today: don't repeat
        return risk.evaluate_breaker(
            lim,
            consecutive_losses=losses,
            budget=budget,
            equity=ZERO - day_loss,
            day_ref_equity=ZERO,
            peak_ref_equity=None,
        )
