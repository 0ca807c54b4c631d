"""Wiring: one polling thread (through the inbox), a per-user ordered worker pool, the notifier thread.

`start_bot(app)` is called by `tradebot run`; it returns a `BotHandle` whose `.stop()` shuts it down.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import requests
import requests.adapters
import telebot
from telebot import apihelper, types

from ..services import Services, _register_secrets
from ..writer_lock import mark_urgent
from . import format as fmt
from .handlers import Dispatcher
from .inbox import Inbox
from .notifier import Notifier
from .polling import InboxPoller
from .sender import Sender
from .transport import BotApiTransport

log = logging.getLogger("tradebot.telegram")

MAX_QUEUED_PER_USER = 200


def configure_api_url(api_url: str) -> None:
    """telebot keeps the Bot API base URL module-global (a self-hosted Bot API server or a test fake)."""
    base = (api_url or "https://api.telegram.org").rstrip("/")
    apihelper.API_URL = base + "/bot{0}/{1}"
    apihelper.FILE_URL = base + "/file/bot{0}/{1}"
    apihelper.session = _http_session(base)
    apihelper.CUSTOM_REQUEST_SENDER = BotApiTransport(base, apihelper.session)


class _PoolKeyCache(requests.adapters.HTTPAdapter):
    """Remembers the connection-pool key of each (scheme://host:port, verify, cert): requests otherwise
    parses the URL again and stats the CA bundle (os.path.isdir) on every call, which profiling showed
    as a tenth of a chat reply's time in the bot process."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._keys: dict[tuple, tuple[dict, dict]] = {}

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        origin = request.url.split("/", 3)[:3]  # ['http:', '', 'host:port']
        key = (origin[0], origin[-1], verify if isinstance(verify, (bool, str)) else repr(verify),
               cert if isinstance(cert, (str, type(None))) else tuple(cert))
        hit = self._keys.get(key)
        if hit is None:
            hit = super().build_connection_pool_key_attributes(request, verify, cert)
            if len(self._keys) < 64:
                self._keys[key] = hit
        return dict(hit[0]), dict(hit[1])


def _http_session(base: str) -> requests.Session:
    """One keep-alive session for every Bot API call. The environment (proxy variables, CA bundle) is
    read once here: requests otherwise re-reads all of os.environ and stats ~/.netrc and the CA bundle
    on every call, a third of the CPU of a chat reply; the pool holds a connection per worker."""
    session = requests.Session()
    session.proxies = requests.utils.get_environ_proxies(base)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    adapter = _PoolKeyCache(pool_connections=4, pool_maxsize=64)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class SerialExecutor:
    """A thread pool that runs the tasks of one key (user) one at a time, in submission order.

    Users take turns: a worker runs ONE task of a user and then puts that user at the back of the line, so a
    user (or a hundred) with a long backlog cannot hold up everybody else's replies."""

    def __init__(self, workers: int):
        # people wait on these threads: their database writes go first (writer_lock.py)
        self.pool = ThreadPoolExecutor(max(1, int(workers)), thread_name_prefix="tg-worker",
                                       initializer=mark_urgent)
        self._queues: dict[int, collections.deque] = {}
        self._lock = threading.Lock()
        self._closed = False

    def submit(self, key: int, fn, *args) -> bool:
        with self._lock:
            if self._closed:
                return False  # shutting down: the update was not acknowledged, Telegram sends it again
            queue = self._queues.get(key)
            if queue is None:
                self._queues[key] = collections.deque([(fn, args)])
                self.pool.submit(self._turn, key)
                return True
            if len(queue) >= MAX_QUEUED_PER_USER:
                return False  # a flood: the rate limiter has answered already
            queue.append((fn, args))
            return True

    def _turn(self, key: int) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                fn, args = queue.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("chat task failed")
            with self._lock:
                if not queue:
                    del self._queues[key]
                    return
                if not self._closed:
                    try:
                        self.pool.submit(self._turn, key)  # to the back of the line
                        return
                    except RuntimeError:  # the pool is shutting down
                        pass
            # closing: finish this user's acknowledged messages here

    def idle(self) -> bool:
        with self._lock:
            return not self._queues

    def shutdown(self, wait: bool = True) -> None:
        """wait=True works off every queued task; wait=False drops them (only the running ones finish)."""
        with self._lock:
            self._closed = True
            if not wait:
                for queue in self._queues.values():
                    queue.clear()  # a running task finds its queue empty and ends
        self.pool.shutdown(wait=wait, cancel_futures=not wait)


class Lanes:
    """Members' messages and strangers' messages are worked off by separate pools: however many strangers
    flood the bot (they only get short refusals), members and admins never queue behind them."""

    CACHE_SECONDS = 5.0
    CACHE_MAX = 50_000

    def __init__(self, members: SerialExecutor, strangers: SerialExecutor, is_member, clock=time.monotonic):
        self.members = members
        self.strangers = strangers
        self.is_member = is_member
        self.clock = clock
        self._known: dict[int, tuple[bool, float]] = {}

    def member(self, user_id: int) -> bool:
        now = self.clock()
        hit = self._known.get(user_id)
        if hit is not None and now - hit[1] < self.CACHE_SECONDS:
            return hit[0]
        try:
            member = bool(self.is_member(user_id))
        except Exception:  # the database is busy or down: let the dispatcher answer properly
            member = True
        if len(self._known) >= self.CACHE_MAX:
            self._known.clear()
        self._known[user_id] = (member, now)
        return member

    def submit(self, user_id: int, fn, *args) -> bool:
        lane = self.members if self.member(user_id) else self.strangers
        return lane.submit(user_id, fn, *args)

    def idle(self) -> bool:
        return self.members.idle() and self.strangers.idle()

    def shutdown(self, wait: bool = True) -> None:
        # Members' messages were confirmed to Telegram: answer them. Strangers only ever get refusals, and a
        # flood of those must not delay the exit.
        self.strangers.shutdown(wait=False)
        self.members.shutdown(wait)


class _KeepPolling(telebot.ExceptionHandler):
    """Any exception in polling or a handler is logged; polling goes on."""

    def handle(self, exception) -> bool:
        log.error("telegram polling error: %s: %s", type(exception).__name__, exception)
        return True


def bot_commands(is_admin: bool = False) -> list[types.BotCommand]:
    items = fmt.COMMANDS + (fmt.ADMIN_COMMANDS if is_admin else [])
    return [types.BotCommand(name, desc[:256]) for name, _args, desc, _ex in items]


@dataclass
class BotHandle:
    bot: telebot.TeleBot
    dispatcher: Dispatcher
    sender: Sender
    services: Services
    executor: Lanes
    notifier: Notifier
    poller: InboxPoller
    _stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self, timeout: float = 30) -> None:
        """Stops polling at once, then lets queued chat work (already confirmed to Telegram) finish."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        deadline = time.monotonic() + timeout
        self.poller.stop()
        self.notifier.stop(max(0.1, min(2.0, deadline - time.monotonic())))
        self.executor.shutdown(wait=True)
        self.sender.close()

    @property
    def poll_thread(self) -> threading.Thread:
        return self.poller.thread

    @property
    def running(self) -> bool:
        return self.poller.alive


def start_bot(app, *, notifier_interval: float = 1.0, holder: str = "local", fence=None) -> BotHandle:
    """Starts polling in its own thread. Raises on an invalid token or an unreachable API at start.
    `holder`: who takes updates and outbox rows (the leader lease's holder, telegram/leader.py); `fence`:
    raises once this process is no longer the leader (checked in the transaction that records updates)."""
    tcfg = app.cfg.telegram
    _register_secrets(tcfg.token)
    configure_api_url(tcfg.api_url)
    # telebot logs full request params (users' messages, i.e. secrets) at DEBUG.
    if telebot.logger.getEffectiveLevel() < logging.INFO:
        telebot.logger.setLevel(logging.INFO)

    bot = telebot.TeleBot(tcfg.token, threaded=False, exception_handler=_KeepPolling())
    sender = Sender(bot)
    me = sender.call("getMe", bot.get_me)
    services = Services(app)
    dispatcher = Dispatcher(services, sender, app.cfg, bot_username=getattr(me, "username", None))
    lanes = Lanes(SerialExecutor(tcfg.workers), SerialExecutor(1), services.is_member)
    # chat work queued or running makes the engine's cycles step aside (tradebot/priority.py)
    fg = getattr(getattr(app, "manager", None), "foreground", None)

    def foreground(fn, arg):
        try:
            fn(arg)
        finally:
            fg.exit()

    def submit(user_id, fn, arg) -> bool:
        if fg is None:
            return lanes.submit(user_id, fn, arg)
        fg.enter()
        if not lanes.submit(user_id, foreground, fn, arg):
            fg.exit()
            return False
        return True

    try:
        sender.set_commands(bot_commands())
        for admin_id in services.admin_ids():
            try:
                bot.set_my_commands(bot_commands(True), scope=types.BotCommandScopeChat(admin_id))
            except Exception as exc:  # the admin may not have started a chat yet
                log.info("admin command menu for %s not set: %s", admin_id, type(exc).__name__)
    except Exception:
        log.exception("setMyCommands failed; continuing without the command menu")

    inbox = Inbox(app.vault, holder, fence)
    poller = InboxPoller(bot, inbox, submit, dispatcher.handle_update, sender, tcfg.poll_timeout,
                         ["message", "callback_query"], claims=lanes.member, foreground=fg)
    notifier = Notifier(sender, interval=notifier_interval, chart_for=services.equity_chart, holder=holder)
    poller.start()
    notifier.start()
    log.info("telegram bot @%s polling %s", getattr(me, "username", "?"), tcfg.api_url)
    return BotHandle(bot, dispatcher, sender, services, lanes, notifier, poller)
