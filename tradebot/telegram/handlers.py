"""The chat dispatcher: routes each message to its command handler and each button press to its action,
after rate limiting and authorization; it never raises.

`Dispatcher.handle_update` is the single entry point (bot.py feeds it from polling, tests call it
directly). An unexpected error is logged with a reference id and the user gets a short apology quoting it.
The commands themselves live in telegram/commands/ (one module per domain), the button actions in
telegram/callbacks.py.
"""

from __future__ import annotations

import logging
import time
import uuid

from telebot import types

from .. import services as svc
from . import format as fmt
from .callbacks import ButtonActions
from .commands import (
    AccessCommands,
    AccountCommands,
    ChartCommands,
    PairCommands,
    ReportCommands,
    SettingsCommands,
    TradingCommands,
    Usage,
)
from .parsing import MAX_ARG_CHARS, MAX_ARGS, ParseError, split_command
from .ratelimit import RateLimiter
from .sender import SendFailed

log = logging.getLogger("tradebot.telegram")

__all__ = ["Dispatcher", "RateLimiter"]


class Dispatcher(
    AccessCommands, AccountCommands, PairCommands, TradingCommands, SettingsCommands, ReportCommands,
    ChartCommands, ButtonActions,
):
    """Routes chat updates to the command and button mixins it is composed of."""

    def __init__(
        self, services: svc.Services, sender, cfg, bot_username: str | None = None, clock=time.monotonic
    ):
        self.services = services
        self.sender = sender
        self.cfg = cfg
        self.bot_username = (bot_username or "").lower() or None
        self.limiter = RateLimiter(cfg.telegram.rate_limit_per_minute, clock)
        self.commands = {
            "start": self.cmd_start,
            "help": self.cmd_help,
            "connect": self.cmd_connect,
            "addpair": self.cmd_addpair,
            "listpairs": self.cmd_listpairs,
            "removepair": self.cmd_removepair,
            "start_trading": self.cmd_start_trading,
            "stop_trading": self.cmd_stop_trading,
            "status": self.cmd_status,
            "config": self.cmd_config,
            "mystats": self.cmd_mystats,
            "position": self.cmd_position,
            "set": self.cmd_set,
            "notify": self.cmd_notify,
            "reset": self.cmd_reset,
            "why": self.cmd_why,
            "chart": self.cmd_chart,
            "equity": self.cmd_equity,
            "trades": self.cmd_trades,
            "export": self.cmd_export,
            "keyboard": self.cmd_keyboard,
        }
        self.admin_commands = {
            "users": self.cmd_users,
            "approve": self.cmd_approve,
            "block": self.cmd_block,
            "unblock": self.cmd_unblock,
            "stopall": self.cmd_stopall,
            "llm": self.cmd_llm,
        }

    # ------------------------------------------------------------ entry points

    def handle_update(self, update: types.Update) -> None:
        if update.message is not None:
            self.handle_message(update.message)
        elif update.callback_query is not None:
            self.handle_callback(update.callback_query)

    def handle_message(self, message: types.Message) -> None:
        try:
            self._handle_message(message)
        except Exception:
            self._internal_error(message.chat.id if message.chat else None, "message")

    def handle_callback(self, call: types.CallbackQuery) -> None:
        try:
            self._handle_callback(call)
        except Exception:
            chat = (
                call.message.chat.id if call.message is not None and call.message.chat else call.from_user.id
            )
            self._internal_error(chat, "callback")
            self.sender.answer_callback(call.id)

    def _internal_error(self, chat_id, what: str) -> None:
        ref = uuid.uuid4().hex[:10]
        # No message text in the log line: it may hold secrets.
        log.exception("internal error handling %s, ref=%s", what, ref)
        if chat_id is not None:
            try:
                self.sender.send(chat_id, fmt.internal_error(ref))
            except Exception:
                log.exception("could not send the apology for ref=%s", ref)

    # ------------------------------------------------------------ messages

    def _handle_message(self, m: types.Message) -> None:
        if m.from_user is None or m.chat is None or m.from_user.is_bot:
            return
        chat_id = m.chat.id
        private = m.chat.type == "private"
        text = m.text or ""
        try:
            command, mention, args = split_command(text)
        except ParseError as exc:
            is_connect = text.lstrip().lower().startswith("/connect")
            if not private:
                if is_connect:  # a malformed or overlong /connect may hold a secret: hide it from the group
                    self.sender.delete(chat_id, m.message_id)
                return  # ordinary group chatter is not for us
            # The rate limit comes before any work, so that a flood costs one counter update per message.
            allowed, warn, wait = self.limiter.check(m.from_user.id)
            if not allowed:
                if warn:
                    self.sender.send(chat_id, fmt.rate_limited(wait))
                return
            if is_connect and self.services.is_member(m.from_user.id):  # strangers get a refusal, nothing more
                self.sender.delete(chat_id, m.message_id)
            if str(exc) == "not a command":
                try:
                    self.services.authorize(m.from_user.id, m.from_user.username, m.from_user.first_name, names=True)
                except (svc.Blocked, svc.AccessDenied) as refusal:
                    self.sender.send(chat_id, fmt.error(str(refusal)))
                    return
                except svc.ServiceError:
                    pass
                self.sender.send(chat_id, fmt.not_a_command())
            else:
                self.sender.send(chat_id, fmt.error(str(exc)))
            return
        if mention and self.bot_username and mention.lower() != self.bot_username:
            return  # addressed to another bot in a group
        if not private and not mention and command not in self.commands and command not in self.admin_commands:
            return  # "/weather" in a group is for another bot: no "Unknown command" noise there

        limit = 256 if command == "connect" else MAX_ARG_CHARS
        too_long = any(len(a) > limit for a in args) or len(args) > MAX_ARGS

        # Rate limit first, before any work (a flood must not cost more than a counter update per message).
        allowed, warn, wait = self.limiter.check(m.from_user.id)
        if not allowed:
            if warn:
                self.sender.send(chat_id, fmt.rate_limited(wait))
            return
        deleted = False
        if command == "connect" and not private:
            # Hide secrets from the group at once, whoever sent them. The log scrubber learns secrets only
            # once the sender is authorized (services.connect): strangers cannot make it grow or mask words.
            deleted = self._delete_connect_secrets(m, args)

        if command == "connect" and not private and self._connect_has_secret(args):
            self.sender.send(chat_id, fmt.connect_in_group(deleted))
            return

        if command == "start":
            self.cmd_start(m, args)
            return
        handler = self.commands.get(command)
        admin_handler = self.admin_commands.get(command)
        u = m.from_user
        try:
            # Any known command may be a newcomer's first message (the brief's Flow 2 starts with /connect).
            user = self.services.authorize(u.id, u.username, u.first_name, names=True,
                                           register=handler is not None or admin_handler is not None)
        except (svc.NotRegistered, svc.PendingApproval) as exc:
            if getattr(exc, "new_user", False):
                self._ask_admins(u.id, u.username, u.first_name)
            if command == "help":
                self.sender.send(chat_id, fmt.help_text(False))
            elif handler is None and admin_handler is None:
                self.sender.send(chat_id, fmt.unknown_command())
            else:
                self.sender.send(chat_id, fmt.error(str(exc)))
            return
        except svc.ServiceError as exc:  # blocked, or not on the allowlist: one short refusal
            self.sender.send(chat_id, fmt.error(str(exc)))
            return
        if command == "connect" and private:
            deleted = self._delete_connect_secrets(m, args)
        if handler is None and admin_handler is None:
            self.sender.send(chat_id, fmt.unknown_command())
            return
        if too_long:
            self.sender.send(chat_id, fmt.error("That is too long: arguments are at most a few words."))
            return
        if admin_handler is not None:
            if not self.services.is_admin_id(m.from_user.id):
                self.sender.send(chat_id, fmt.unknown_command())
                return
            handler = admin_handler
        try:
            if command == "connect":
                self.cmd_connect(m, args, user, deleted)
            else:
                handler(m, args, user)
        except Usage as exc:
            self.sender.send(chat_id, fmt.usage(exc.command, exc.problem))
        except ParseError as exc:
            self.sender.send(chat_id, fmt.usage(command, str(exc)))
        except svc.ServiceError as exc:
            self.sender.send(chat_id, fmt.error(str(exc)))

    @staticmethod
    def _connect_has_secret(args: list[str]) -> bool:
        return len(args) >= 2 and args[1].lower() != "paper"

    def _delete_connect_secrets(self, m: types.Message, args: list[str]) -> bool:
        """Delete a /connect message that may hold secrets. True if deleted."""
        if not self._connect_has_secret(args):
            return False
        return self.sender.delete(m.chat.id, m.message_id)

    def reply(self, m: types.Message, text: str, markup=None) -> None:
        self.sender.send(m.chat.id, text, reply_markup=markup)

    # ------------------------------------------------------------ inline buttons

    def _handle_callback(self, call: types.CallbackQuery) -> None:
        if call.from_user is None:
            return
        data = (call.data or "")[:64]
        msg = call.message
        chat_id = msg.chat.id if msg is not None and msg.chat else call.from_user.id
        allowed, warn, wait = self.limiter.check(call.from_user.id)
        if not allowed:
            self.sender.answer_callback(call.id, fmt.rate_limited(wait) if warn else None)
            return
        try:
            user = self.services.authorize(call.from_user.id, call.from_user.username, call.from_user.first_name,
                                           names=True)
        except svc.ServiceError as exc:
            self.sender.answer_callback(call.id, str(exc)[:190])
            return
        action, _, arg = data.partition(":")
        try:
            text, markup, toast = self._callback_action(user, action, arg, chat_id, call.from_user.id,
                                                        msg.message_id if msg is not None else None)
        except svc.ServiceError as exc:
            self.sender.answer_callback(call.id, str(exc)[:190])
            return
        self.sender.answer_callback(call.id, toast)
        if text is not None and msg is not None:
            try:
                self.sender.edit(chat_id, msg.message_id, text, reply_markup=markup)
            except SendFailed as exc:  # too old to edit, deleted...: say it in a new message
                log.info("edit failed (%s); sending the result instead", exc)
                self.sender.send(chat_id, text, reply_markup=markup)
