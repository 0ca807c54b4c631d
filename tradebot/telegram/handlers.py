"""Thin chat handlers: parse -> services -> format -> sender.

`Dispatcher.handle_update` is the single entry point (bot.py feeds it from polling, tests call it
directly). It never raises: an unexpected error is logged with a reference id and the user gets a
short apology quoting it.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
import uuid

from telebot import types

from .. import services as svc
from ..ascii_digits import ascii_int
from . import format as fmt
from .parsing import (
    EXCHANGES,
    MAX_ARG_CHARS,
    MAX_ARGS,
    ParseError,
    check_args,
    check_symbol_text,
    parse_amount,
    parse_exchange,
    parse_network,
    parse_number,
    parse_on_off,
    parse_user_ref,
    split_command,
)
from .sender import SendFailed

log = logging.getLogger("tradebot.telegram")

MAX_BUTTON_PAIRS = 20


class Usage(Exception):
    """Wrong arguments: answer with the command's usage line (and the problem, if known)."""

    def __init__(self, command: str, problem: str | None = None):
        super().__init__(problem or "")
        self.command = command
        self.problem = problem


class RateLimiter:
    """Sliding one-minute window per user. The first refused message of a burst gets a polite answer."""

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.per_minute = max(1, int(per_minute))
        self.clock = clock
        self._hits: dict[int, collections.deque] = {}
        self._warned: dict[int, float] = {}
        self._lock = threading.Lock()
        self._prune_at = self.PRUNE_MIN

    PRUNE_MIN = 10_000

    def _prune(self, now: float) -> None:
        """Forget senders quiet for a minute, so that a flood from many ids cannot grow memory for ever
        (amortized O(1): a sweep only after the table has doubled)."""
        for key in [k for k, hits in self._hits.items() if not hits or now - hits[-1] >= 60]:
            del self._hits[key]
            self._warned.pop(key, None)
        self._prune_at = max(self.PRUNE_MIN, 2 * len(self._hits))

    def check(self, key: int) -> tuple[bool, bool, int]:
        """(allowed, warn_now, seconds_to_wait)."""
        now = self.clock()
        with self._lock:
            if len(self._hits) >= self._prune_at:
                self._prune(now)
            hits = self._hits.setdefault(key, collections.deque())
            while hits and now - hits[0] >= 60:
                hits.popleft()
            if len(hits) < self.per_minute:
                hits.append(now)
                self._warned.pop(key, None)
                return True, False, 0
            wait = int(60 - (now - hits[0])) + 1
            warned_at = self._warned.get(key)
            if warned_at is not None and now - warned_at < 60:
                return False, False, wait
            self._warned[key] = now
            return False, True, wait


def _symbol_and_exchange(command: str, args: list[str], required: bool) -> tuple[str | None, str | None]:
    """[symbol] [exchange] arguments; a lone exchange name is accepted too (/status bybit)."""
    if not args:
        if required:
            raise Usage(command, "The symbol is missing.")
        return None, None
    if len(args) > 2:
        raise Usage(command, "Too many arguments.")
    if len(args) == 1 and args[0].lower() in EXCHANGES and not required:
        return None, args[0].lower()
    symbol = args[0]
    try:
        check_symbol_text(symbol)
    except ParseError as exc:
        raise Usage(command, str(exc)) from None
    exchange = None
    if len(args) == 2:
        try:
            exchange = parse_exchange(args[1])
        except ParseError as exc:
            raise Usage(command, str(exc)) from None
    return symbol, exchange


class Dispatcher:
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
        }
        self.admin_commands = {
            "users": self.cmd_users,
            "approve": self.cmd_approve,
            "block": self.cmd_block,
            "unblock": self.cmd_unblock,
            "stopall": self.cmd_stopall,
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

    # ------------------------------------------------------------ commands

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
            self.reply(m, fmt.welcome(result.created, u.first_name))

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
        self.reply(m, fmt.help_text(self.services.is_admin_id(m.from_user.id)))

    def cmd_connect(self, m, args, user, deleted: bool = False) -> None:
        if len(args) == 2 and args[1].lower() == "paper":
            exchange = self._exchange_arg("connect", args[0])
            result = self.services.connect(user, exchange, "paper")
            self.reply(m, fmt.connected(result, False))
            return
        if len(args) not in (3, 4):
            raise Usage("connect", "Give the exchange, API key and secret (or: /connect binance paper).")
        for arg in args:
            if len(arg) > 256:
                raise Usage("connect", "An argument is too long.")
        exchange = self._exchange_arg("connect", args[0])
        network = "testnet"
        if len(args) == 4:
            try:
                network = parse_network(args[3])
            except ParseError as exc:
                raise Usage("connect", str(exc)) from None
        if network == "paper":
            result = self.services.connect(user, exchange, "paper")
        else:
            result = self.services.connect(user, exchange, network, args[1], args[2])
        self.reply(m, fmt.connected(result, deleted))

    @staticmethod
    def _exchange_arg(command: str, text: str) -> str:
        try:
            return parse_exchange(text)
        except ParseError as exc:
            raise Usage(command, str(exc)) from None

    def cmd_addpair(self, m, args, user) -> None:
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
        exchange = self._exchange_arg("addpair", args[2]) if len(args) == 3 else None
        view = self.services.add_pair(user, args[0], budget, exchange)
        try:
            short = self.services.funding_shortfall(user, view)
        except Exception as exc:  # best effort: the pair is added either way
            log.info("funding check after /addpair failed: %s", type(exc).__name__)
            short = None
        self.reply(m, fmt.pair_added(view, short))

    def _pair_buttons(self, views: list[svc.PairView]):
        if not views or len(views) > MAX_BUTTON_PAIRS:
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
        return markup

    def cmd_listpairs(self, m, args, user) -> None:
        if args:
            raise Usage("listpairs", "This command takes no arguments.")
        views = self.services.list_pairs(user)
        self.reply(m, fmt.list_pairs(views), self._pair_buttons(views))

    def cmd_status(self, m, args, user) -> None:
        symbol, exchange = _symbol_and_exchange("status", args, required=False)
        if symbol is None and exchange is not None:
            views = [v for v in self.services.list_pairs(user) if v.exchange == exchange]
            if not views:
                raise svc.NotFound(f"You have no pairs on {exchange}. See /listpairs.")
        else:
            views = self.services.status(user, symbol, exchange)
        self.reply(m, fmt.status(views), self._pair_buttons(views))

    def _configs(self, command: str, args: list[str], user, required: bool = False):
        """None (= all pairs) or [one pair] from [symbol] [exchange] arguments."""
        symbol, exchange = _symbol_and_exchange(command, args, required)
        if symbol is None and exchange is None:
            return None
        if symbol is None:
            configs = [c for c in self.services._pairs(user) if c.exchange == exchange]
            if not configs:
                raise svc.NotFound(f"You have no pairs on {exchange}. See /listpairs.")
            return configs
        return [self.services.find_pair(user, symbol, exchange, command)]

    def cmd_removepair(self, m, args, user) -> None:
        (config,) = self._configs("removepair", args, user, required=True)
        self.services.remove_pair(user, config, confirmed=False)
        markup = types.InlineKeyboardMarkup()
        markup.row(
            types.InlineKeyboardButton("🗑️ Yes, remove", callback_data=f"rm:{config.id}"),
            types.InlineKeyboardButton("Cancel", callback_data=f"cancel:{m.from_user.id}"),
        )
        held = self.services.positions(user, [config])
        self.reply(m, fmt.removal_confirm(config.symbol, config.exchange, held), markup)

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
        markup.row(
            types.InlineKeyboardButton("⏸️ Yes, stop all", callback_data=data),
            types.InlineKeyboardButton("Cancel", callback_data=f"cancel:{m.from_user.id}"),
        )
        self.reply(m, fmt.stop_all_mine_confirm([c.symbol for c in running]), markup)

    def cmd_config(self, m, args, user) -> None:
        configs = self._configs("config", args, user)
        self.reply(m, fmt.config(self.services.config_view(user, configs)))

    def cmd_mystats(self, m, args, user) -> None:
        if args:
            raise Usage("mystats", "This command takes no arguments.")
        self.reply(m, fmt.stats(self.services.stats(user)))

    def cmd_position(self, m, args, user) -> None:
        configs = self._configs("position", args, user)
        self.reply(m, fmt.positions(self.services.positions(user, configs)))

    def cmd_set(self, m, args, user) -> None:
        if len(args) not in (3, 4):
            raise Usage("set", "Give the symbol, the setting and the value.")
        sym_args = [args[0]] + ([args[3]] if len(args) == 4 else [])
        name = args[1].lower()
        key = svc.SETTING_ALIASES.get(name, name)
        if key in svc.TEXT_SETTINGS:
            allowed = svc.TEXT_SETTINGS[key][1]
            value = args[2].lower()
            if value not in allowed:
                raise Usage("set", f"{key} must be one of: {', '.join(allowed)}.")
        elif key not in svc.SETTINGS:
            raise Usage("set", f"Unknown setting. Use one of: {', '.join([*svc.SETTINGS, *svc.TEXT_SETTINGS])}.")
        else:
            _col, kind, lo, hi, _desc = svc.SETTINGS[key]
            try:
                value = parse_number(args[2].rstrip("%"), key, lo, hi, integer=(kind == "int"))
            except ParseError as exc:
                raise Usage("set", str(exc)) from None
        (config,) = self._configs("set", sym_args, user, required=True)
        self.reply(m, fmt.setting_changed(self.services.set_setting(user, config, key, value)))

    def cmd_notify(self, m, args, user) -> None:
        if len(args) != 1:
            raise Usage("notify", "Say on or off.")
        try:
            on = parse_on_off(args[0])
        except ParseError as exc:
            raise Usage("notify", str(exc)) from None
        self.reply(m, fmt.notify_set(self.services.set_notify(user, on)))

    def cmd_reset(self, m, args, user) -> None:
        (config,) = self._configs("reset", args, user, required=True)
        self.reply(m, fmt.breaker_reset(self.services.reset_breaker(user, config)))

    # ------------------------------------------------------------ admin commands

    def cmd_users(self, m, args, user) -> None:
        if len(args) > 1 or (args and args[0].lower() not in ("pending", "active", "blocked")):
            raise Usage("users", "Filter by pending, active or blocked.")
        users = self.services.admin_list_users(user)
        if args:
            users = [u for u in users if u.status == args[0].lower()]
        self.reply(m, fmt.users_list(users))

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
            text, markup, toast = self._callback_action(user, action, arg, chat_id, call.from_user.id)
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

    def _callback_action(self, user, action: str, arg: str, chat_id: int, presser: int | None = None):
        """(new text for the message or None, markup, toast)."""
        s = self.services
        presser = user.telegram_id if presser is None else presser

        def mine(owner: str) -> None:
            """A button that acts on "everything of the asker" or cancels their question: only the asker may
            press it (in a group anyone sees it). Buttons without an owner (older messages) count in a
            private chat only."""
            if owner and ascii_int(owner) == presser:
                return
            if not owner and chat_id == presser:
                return
            raise svc.AccessDenied("That button is not for you.")

        def pair(text: str):
            try:
                return s.pair_by_id(user, _int(text))
            except svc.NotFound:
                if chat_id == presser:
                    raise
                # a group: most likely another member's button (whose pairs stay invisible to the presser)
                raise svc.NotFound("That button is not for you, or its pair no longer exists.") from None

        if action in ("start", "stop"):
            config = pair(arg)
            if action == "start":
                result = s.start_trading(user, [config])
                toast = fmt.started(result)
            else:
                result = s.stop_trading(user, [config])
                toast = fmt.stopped(result)
            views = s.list_pairs(user)
            return fmt.status(views, single=False), self._pair_buttons(views), _plain(toast)
        if action == "rm":
            config = pair(arg)
            symbol = s.remove_pair(user, config, confirmed=True)
            return fmt.removed(symbol), None, "Removed"
        if action == "stopmany":
            if arg == "all" or arg.startswith("all:"):
                mine(arg[4:])
                configs = None
            else:
                configs = [pair(x) for x in arg.split(",") if x]
            result = s.stop_trading(user, configs)
            return fmt.stopped(result), None, "Stopped"
        if action == "cancel":
            mine(arg)
            return fmt.cancelled(), None, "Cancelled"
        if action == "adm":
            sub, _, ref = arg.partition(":")
            if sub == "stopall":
                n = s.admin_stop_all(user)
                return fmt.stop_all_done(n), None, "Stopped"
            if sub in ("ok", "no"):
                target_id = _int(ref)
                target = s.admin_approve(user, target_id) if sub == "ok" else s.admin_reject(user, target_id)
                return (
                    fmt.user_status_changed(target.telegram_id, target.username, target.status),
                    None,
                    "Done",
                )
        raise svc.InvalidValue("That button is no longer valid.")


def _int(text: str) -> int:
    value = ascii_int(text, max_digits=15)  # callback data is client-supplied: '²' must not raise
    if value is None:
        raise svc.InvalidValue("That button is no longer valid.")
    return value


def _plain(html_text: str) -> str:
    import html
    import re

    return html.unescape(re.sub(r"<[^>]+>", "", html_text))[:190]
