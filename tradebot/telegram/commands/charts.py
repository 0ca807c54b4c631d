"""/chart, /equity, /trades, /export, /keyboard, and the pick lists and Refresh buttons the chat shows."""

from __future__ import annotations

import re

from telebot import types

from ... import services as svc
from ...ascii_digits import ascii_int
from ...services.charts import CHART_TIMEFRAMES
from .. import format as fmt
from ..parsing import ParseError, parse_on_off
from ..sender import SendFailed
from .args import Usage

MAX_PICK_PAIRS = 20
MAX_TRADES = 50
TIMEFRAME_RE = re.compile(r"^\d{1,3}[mhdw]$", re.IGNORECASE)
# The everyday commands under the message field (private chats; /keyboard off hides them).
KEYBOARD_ROWS = (("/status", "/position", "/chart"), ("/equity", "/trades", "/mystats"), ("/listpairs", "/help"))


def reply_keyboard() -> types.ReplyKeyboardMarkup:
    markup = types.ReplyKeyboardMarkup(resize_keyboard=True, is_persistent=True)
    for row in KEYBOARD_ROWS:
        markup.row(*[types.KeyboardButton(c) for c in row])
    return markup


def refresh_button(data: str) -> types.InlineKeyboardButton:
    return types.InlineKeyboardButton("🔄 Refresh", callback_data=data)


class ChartCommands:
    """Part of the Dispatcher."""

    # ------------------------------------------------------------ pick lists

    def _pick_list(self, user, command: str, action: str, owner: int, configs=None, suffix: str = ""):
        """Buttons naming the user's own pairs by id (a press is checked against the presser's pairs), and
        Cancel bound to the asker. None when the user has no pairs."""
        configs = list(self.services._pairs(user)) if configs is None else configs
        if not configs:
            raise svc.NotFound("You have no pairs yet. Add one with /addpair.")
        markup = types.InlineKeyboardMarkup()
        show_exchange = len({c.exchange for c in configs}) > 1
        buttons = [types.InlineKeyboardButton(f"{c.symbol} ({c.exchange})" if show_exchange else c.symbol,
                                              callback_data=f"{action}:{c.id}{suffix}") for c in configs[:MAX_PICK_PAIRS]]
        for i in range(0, len(buttons), 2):
            markup.row(*buttons[i:i + 2])
        markup.row(types.InlineKeyboardButton("Cancel", callback_data=f"cancel:{owner}"))
        return markup

    # ------------------------------------------------------------ /chart

    def cmd_chart(self, m, args, user) -> None:
        timeframe = None
        rest = []
        for a in args:
            if TIMEFRAME_RE.match(a) and timeframe is None:
                timeframe = a.lower()
                if timeframe not in CHART_TIMEFRAMES:
                    raise Usage("chart", f"Timeframe must be one of: {', '.join(CHART_TIMEFRAMES)}.")
            else:
                rest.append(a)
        configs = self._configs("chart", rest, user)
        if configs is None:
            configs = list(self.services._pairs(user))
        if not configs:
            raise svc.NotFound("You have no pairs yet. Add one with /addpair.")
        if len(configs) > 1:
            suffix = f":{timeframe}" if timeframe else ""
            self.reply(m, fmt.pick_prompt("chart"),
                       self._pick_list(user, "chart", "cp", m.from_user.id, configs, suffix))
            return
        self.send_chart(m.chat.id, user, configs[0], timeframe)

    def send_chart(self, chat_id: int, user, config, timeframe: str | None) -> None:
        image = self.services.price_chart(user, config, timeframe)
        tf = timeframe or ""
        markup = types.InlineKeyboardMarkup()
        markup.row(refresh_button(f"chr:{config.id}:{tf}"))
        self.sender.send_photo(chat_id, image.png, fmt.chart_caption(image.caption), markup)

    def refresh_chart(self, chat_id: int, message_id: int | None, user, config, timeframe: str | None) -> None:
        image = self.services.price_chart(user, config, timeframe)
        markup = types.InlineKeyboardMarkup()
        markup.row(refresh_button(f"chr:{config.id}:{timeframe or ''}"))
        if message_id is None:
            self.sender.send_photo(chat_id, image.png, fmt.chart_caption(image.caption), markup)
            return
        try:
            self.sender.edit_photo(chat_id, message_id, image.png, fmt.chart_caption(image.caption), markup)
        except SendFailed:  # too old to edit, deleted...: a new photo instead
            self.sender.send_photo(chat_id, image.png, fmt.chart_caption(image.caption), markup)

    # ------------------------------------------------------------ /equity

    def cmd_equity(self, m, args, user) -> None:
        configs = self._configs("equity", args, user)
        image = self.services.equity_chart(user, configs)
        self.sender.send_photo(m.chat.id, image.png, fmt.chart_caption(image.caption))

    # ------------------------------------------------------------ /trades, /export

    def cmd_trades(self, m, args, user) -> None:
        n = 10
        numbers = [i for i, a in enumerate(args) if ascii_int(a, max_digits=6) is not None]
        if len(numbers) > 1:
            raise Usage("trades", "Give one number of trades.")
        if numbers:
            n = ascii_int(args[numbers[0]], max_digits=6)
            if not 1 <= n <= MAX_TRADES:
                raise Usage("trades", f"Give a number of trades from 1 to {MAX_TRADES}.")
            args = [a for i, a in enumerate(args) if i != numbers[0]]
        configs = self._configs("trades", args, user)
        self.reply(m, fmt.trades(self.services.round_trips(user, configs, n), n))

    def cmd_export(self, m, args, user) -> None:
        configs = self._configs("export", args, user)
        filename, data = self.services.export_csv(user, configs)
        self.sender.send_document(m.chat.id, filename, data, fmt.export_caption(filename))

    # ------------------------------------------------------------ /keyboard

    def cmd_keyboard(self, m, args, user) -> None:
        if len(args) != 1:
            raise Usage("keyboard", "Say on or off.")
        try:
            on = parse_on_off(args[0])
        except ParseError as exc:
            raise Usage("keyboard", str(exc)) from None
        self.services.set_reply_keyboard(user, on)
        if m.chat.type != "private":  # a keyboard in a group would pop up for every member
            self.reply(m, fmt.keyboard_set(on) + " (It shows in your private chat with me.)")
            return
        self.reply(m, fmt.keyboard_set(on), reply_keyboard() if on else types.ReplyKeyboardRemove())

    def everyday_keyboard(self, m, user):
        """The reply keyboard to attach to a welcome or /help in a private chat, or None."""
        if m.chat.type != "private" or user is None:
            return None
        try:
            # `user` was read from the database for this very update (authorize/register): no second read
            return reply_keyboard() if user.reply_keyboard else None
        except Exception:  # a preference must never cost the reply
            return None
