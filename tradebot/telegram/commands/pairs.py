"""Pair commands: /addpair, /listpairs, /status, /removepair, the pair buttons, and finding the pairs a
command's [symbol] [exchange] arguments name."""

from __future__ import annotations

import logging

from telebot import types

from ... import services as svc
from ...exchange.futures_symbols import FUTURES_WORDS
from .. import format as fmt
from ..parsing import ParseError, check_args, check_symbol_text, parse_amount
from .args import Usage, exchange_arg, symbol_and_exchange

log = logging.getLogger("tradebot.telegram")

MAX_BUTTON_PAIRS = 20


class PairCommands:
    """Part of the Dispatcher."""

    def cmd_addpair(self, m, args, user) -> None:
        # "futures" / "perp" anywhere after the symbol makes it a USDT-M perpetual: /addpair BTCUSDT perp 1000
        words = [a for a in args[1:] if a.lower() in FUTURES_WORDS]
        market = "futures" if words else None
        args = [args[0], *[a for a in args[1:] if a.lower() not in FUTURES_WORDS]] if args else args
        try:
            check_args(args, 2, 3)
        except ParseError as exc:
            raise Usage("addpair", str(exc).capitalize() + ".") from None
        try:
            check_symbol_text(args[0])
        except ParseError as exc:
            raise Usage("addpair", str(exc)) from None
        tcfg = self.cfg.trading
        try:
            budget = parse_amount(args[1], "Balance", tcfg.min_budget, tcfg.max_budget)
        except ParseError as exc:
            raise Usage("addpair", str(exc)) from None
        exchange = exchange_arg("addpair", args[2]) if len(args) == 3 else None
        view = self.services.add_pair(user, args[0], budget, exchange, market)
        try:
            short = self.services.funding_shortfall(user, view)
        except Exception as exc:  # best effort: the pair is added either way
            log.info("funding check after /addpair failed: %s", type(exc).__name__)
            short = None
        self.reply(m, fmt.pair_added(view, short))

    def _pair_buttons(self, views: list[svc.PairView], refresh: str | None = None):
        """Start/Stop per pair (up to MAX_BUTTON_PAIRS), and a Refresh button when `refresh` (its data)."""
        if not views or len(views) > MAX_BUTTON_PAIRS:
            if refresh and views:
                markup = types.InlineKeyboardMarkup()
                markup.row(types.InlineKeyboardButton("🔄 Refresh", callback_data=refresh))
                return markup
            return None
        markup = types.InlineKeyboardMarkup()
        # The same symbol on two exchanges would give two identical buttons: name the exchange then.
        show_exchange = len({v.exchange for v in views}) > 1
        for v in views:
            label = f"{v.symbol} ({v.exchange})" if show_exchange else v.symbol
            if v.is_trading:
                markup.row(types.InlineKeyboardButton(f"⏸️ Stop {label}", callback_data=f"stop:{v.config_id}"))
            else:
                markup.row(types.InlineKeyboardButton(f"▶️ Start {label}", callback_data=f"start:{v.config_id}"))
        if refresh:
            markup.row(types.InlineKeyboardButton("🔄 Refresh", callback_data=refresh))
        return markup

    def cmd_listpairs(self, m, args, user) -> None:
        if args:
            raise Usage("listpairs", "This command takes no arguments.")
        views = self.services.list_pairs(user)
        self.reply(m, fmt.list_pairs(views), self._pair_buttons(views))

    def cmd_status(self, m, args, user) -> None:
        symbol, exchange = symbol_and_exchange("status", args, required=False)
        owner = m.from_user.id
        if symbol is None and exchange is not None:
            views = [v for v in self.services.list_pairs(user) if v.exchange == exchange]
            if not views:
                raise svc.NotFound(f"You have no pairs on {exchange}. See /listpairs.")
            refresh = f"rfs:{owner}:{exchange}"
        else:
            views = self.services.status(user, symbol, exchange)
            # one pair: its id (checked against the presser's pairs); all pairs: bound to the asker
            refresh = f"st:{views[0].config_id}" if symbol is not None and views else f"rfs:{owner}"
        self.reply(m, fmt.status(views), self._pair_buttons(views, refresh))

    def _configs(self, command: str, args: list[str], user, required: bool = False):
        """None (= all pairs) or [one pair] from [symbol] [exchange] arguments."""
        symbol, exchange = symbol_and_exchange(command, args, required)
        if symbol is None and exchange is None:
            return None
        if symbol is None:
            configs = [c for c in self.services._pairs(user) if c.exchange == exchange]
            if not configs:
                raise svc.NotFound(f"You have no pairs on {exchange}. See /listpairs.")
            return configs
        return [self.services.find_pair(user, symbol, exchange, command)]

    def cmd_removepair(self, m, args, user) -> None:
        if not args:
            configs = list(self.services._pairs(user))
            if not configs:  # nothing to pick from: say how the command is used
                raise Usage("removepair", "The symbol is missing.")
            self.reply(m, fmt.pick_prompt("removepair"),
                       self._pick_list(user, "removepair", "rmq", m.from_user.id, configs))
            return
        (config,) = self._configs("removepair", args, user, required=True)
        self.reply(m, *self.removal_question(user, config, m.from_user.id))

    def removal_question(self, user, config, owner: int):
        """(text, markup) asking to confirm the removal of one of the user's pairs."""
        self.services.remove_pair(user, config, confirmed=False)
        markup = types.InlineKeyboardMarkup()
        markup.row(
            types.InlineKeyboardButton("🗑️ Yes, remove", callback_data=f"rm:{config.id}"),
            types.InlineKeyboardButton("Cancel", callback_data=f"cancel:{owner}"),
        )
        held = self.services.positions(user, [config])
        return fmt.removal_confirm(config.symbol, config.exchange, held), markup
