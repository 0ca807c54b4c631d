"""Read-only commands: /config, /mystats and /position."""

from __future__ import annotations

from telebot import types

from .. import format as fmt
from .args import Usage
from .charts import MAX_PICK_PAIRS, refresh_button


class ReportCommands:
    """Part of the Dispatcher."""

    def cmd_config(self, m, args, user) -> None:
        configs = self._configs("config", args, user)
        self.reply(m, fmt.config(self.services.config_view(user, configs), self.services.deciders()))

    def cmd_mystats(self, m, args, user) -> None:
        if args:
            raise Usage("mystats", "This command takes no arguments.")
        self.reply(m, fmt.stats(self.services.stats(user)))

    def cmd_position(self, m, args, user) -> None:
        configs = self._configs("position", args, user)
        self.reply(m, *self.position_reply(user, configs, m.from_user.id))

    def position_reply(self, user, configs, owner: int):
        """(text, markup): the positions, a Refresh button, and with several pairs a pick list of them."""
        text = fmt.positions(self.services.positions(user, configs))
        markup = types.InlineKeyboardMarkup()
        if configs is not None and len(configs) == 1:
            markup.row(refresh_button(f"pos:{configs[0].id}"))  # the pair's id: checked against the presser
            return text, markup
        markup.row(refresh_button(f"rfp:{owner}"))  # "all of mine": bound to the asker
        pairs = list(self.services._pairs(user)) if configs is None else configs
        if len(pairs) > 1:
            show_exchange = len({c.exchange for c in pairs}) > 1
            buttons = [types.InlineKeyboardButton(f"{c.symbol} ({c.exchange})" if show_exchange else c.symbol,
                                                  callback_data=f"pos:{c.id}") for c in pairs[:MAX_PICK_PAIRS]]
            for i in range(0, len(buttons), 2):
                markup.row(*buttons[i:i + 2])
        return text, markup

    def cmd_why(self, m, args, user) -> None:
        (config,) = self._configs("why", args, user, required=True)
        self.reply(m, fmt.why(self.services.why(user, config)))

    def cmd_llm(self, m, args, user) -> None:
        self.reply(m, fmt.llm_usage(self.services.llm_usage(user)))
