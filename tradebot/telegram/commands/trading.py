"""Trading control: /start_trading, /stop_trading (with its confirmation button) and /reset."""

from __future__ import annotations

from telebot import types

from ... import services as svc
from .. import format as fmt
from ..parsing import EXCHANGES
from .charts import MAX_PICK_PAIRS


class TradingCommands:
    """Part of the Dispatcher."""

    def cmd_start_trading(self, m, args, user) -> None:
        configs = self._configs("start_trading", args, user)
        if configs is not None and not configs:
            raise svc.NotFound("You have no pairs there. See /listpairs.")
        self.reply(m, fmt.started(self.services.start_trading(user, configs)))

    def cmd_stop_trading(self, m, args, user) -> None:
        configs = self._configs("stop_trading", args, user)
        if configs is not None and len(configs) == 1 and args and args[0].lower() not in EXCHANGES:
            self.reply(m, fmt.stopped(self.services.stop_trading(user, configs)))
            return
        running = [
            c for c in (configs if configs is not None else self.services.running_pairs(user)) if c.is_trading
        ]
        if not running:
            self.reply(m, fmt.nothing_running())
            return
        markup = types.InlineKeyboardMarkup()
        # "all" names who asked: in a group, another member's press must not stop *their* pairs.
        every = f"stopmany:all:{m.from_user.id}"
        data = f"stopmany:{','.join(str(c.id) for c in running)}" if configs is not None else every
        if len(data) > 64:
            data = every
        if configs is None and 1 < len(running) <= MAX_PICK_PAIRS:
            # a pick list too: one tap stops a single pair (its id is checked against the presser's pairs)
            buttons = [types.InlineKeyboardButton(f"⏸️ {c.symbol}", callback_data=f"stop1:{c.id}") for c in running]
            for i in range(0, len(buttons), 2):
                markup.row(*buttons[i:i + 2])
        markup.row(
            types.InlineKeyboardButton("⏸️ Yes, stop all", callback_data=data),
            types.InlineKeyboardButton("Cancel", callback_data=f"cancel:{m.from_user.id}"),
        )
        self.reply(m, fmt.stop_all_mine_confirm([c.symbol for c in running]), markup)

    def cmd_reset(self, m, args, user) -> None:
        (config,) = self._configs("reset", args, user, required=True)
        self.reply(m, fmt.breaker_reset(self.services.reset_breaker(user, config)))
