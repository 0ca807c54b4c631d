"""Commands about access: /start (registration), /help, and the admin commands /users, /approve, /block,
/unblock and /stopall."""

from __future__ import annotations

import logging

from telebot import types

from .. import format as fmt
from ..parsing import ParseError, parse_user_ref
from .args import Usage

log = logging.getLogger("tradebot.telegram")


class AccessCommands:
    """Part of the Dispatcher."""

    def cmd_start(self, m: types.Message, args: list[str], user=None) -> None:
        u = m.from_user
        result = self.services.register(u.id, u.username, u.first_name)
        if result.status == "refused":
            self.reply(m, fmt.refused_registration())
        elif result.status == "blocked":
            self.reply(m, fmt.error("⛔ Access denied."))
        elif result.status == "pending":
            self.reply(m, fmt.pending_registration())
            if result.created:
                self._ask_admins(u.id, u.username, u.first_name)
        else:
            self.reply(m, fmt.welcome(result.created, u.first_name), self.everyday_keyboard(m, result.user))

    def _ask_admins(self, telegram_id: int, username, first_name) -> None:
        markup = types.InlineKeyboardMarkup()
        markup.row(
            types.InlineKeyboardButton("✅ Approve", callback_data=f"adm:ok:{telegram_id}"),
            types.InlineKeyboardButton("⛔ Reject", callback_data=f"adm:no:{telegram_id}"),
        )
        for admin_id in self.services.admin_ids():
            try:
                self.sender.send(
                    admin_id, fmt.admin_approval_request(telegram_id, username, first_name), markup
                )
            except Exception:
                log.warning("could not send the approval request to admin %s", admin_id)

    def cmd_help(self, m, args, user) -> None:
        self.reply(m, fmt.help_text(self.services.is_admin_id(m.from_user.id), self.services.deciders()),
                   self.everyday_keyboard(m, user))

    def cmd_users(self, m, args, user) -> None:
        if len(args) > 1 or (args and args[0].lower() not in ("pending", "active", "blocked")):
            raise Usage("users", "Filter by pending, active or blocked.")
        status = args[0].lower() if args else None
        self.reply(m, fmt.users_list(self.services.admin_list_users(user, status), status))

    def _user_ref(self, command: str, args: list[str]):
        if len(args) != 1:
            raise Usage(command, "Give one user.")
        try:
            return parse_user_ref(args[0])
        except ParseError as exc:
            raise Usage(command, str(exc)) from None

    def cmd_approve(self, m, args, user) -> None:
        target = self.services.admin_approve(user, self._user_ref("approve", args))
        self.reply(m, fmt.user_status_changed(target.telegram_id, target.username, target.status))

    def cmd_block(self, m, args, user) -> None:
        target = self.services.admin_block(user, self._user_ref("block", args))
        self.reply(m, fmt.user_status_changed(target.telegram_id, target.username, target.status))

    def cmd_unblock(self, m, args, user) -> None:
        target = self.services.admin_unblock(user, self._user_ref("unblock", args))
        self.reply(m, fmt.user_status_changed(target.telegram_id, target.username, target.status))

    def cmd_stopall(self, m, args, user) -> None:
        if args:
            raise Usage("stopall", "This command takes no arguments.")
        running = self.services.admin_running_count(user)
        if not running:
            self.reply(m, fmt.stop_all_nothing())
            return
        markup = types.InlineKeyboardMarkup()
        markup.row(
            types.InlineKeyboardButton("🛑 Yes, stop everything", callback_data="adm:stopall"),
            types.InlineKeyboardButton("Cancel", callback_data=f"cancel:{m.from_user.id}"),
        )
        self.reply(m, fmt.stop_all_confirm(running), markup)
