"""Wiring: one TeleBot polling thread, a per-user ordered worker pool, the notifier thread.

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
from . import format as fmt
from .handlers import Dispatcher
from .notifier import Notifier
from .sender import Sender

log = logging.getLogger("tradebot.telegram")

MAX_QUEUED_PER_USER = 200


def configure_api_url(api_url: str) -> None:
    """telebot keeps the Bot API base URL module-global (a self-hosted Bot API server or a test fake)."""
    base = (api_url or "https://api.telegram.org").rstrip("/")
    apihelper.API_URL = base + "/bot{0}/{1}"
    apihelper.FILE_URL = base + "/file/bot{0}/{1}"
    apihelper.session = _http_session(base)


def _http_session(base: str) -> requests.Session:
    """One keep-alive session for every Bot API call. The environment (proxy variables, CA bundle) is
    read once here: requests otherwise re-reads all of os.environ and stats ~/.netrc and the CA bundle
    on every call, a third of the CPU of a chat reply; the pool holds a connection per worker."""
    session = requests.Session()
    session.proxies = requests.utils.get_environ_proxies(base)
    session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
    session.trust_env = False
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=64)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class SerialExecutor:
    """A thread pool that runs the tasks of one key (user) one at a time, in submission order."""

    def __init__(self, workers: int):
        self.pool = ThreadPoolExecutor(max(1, int(workers)), thread_name_prefix="tg-worker")
        self._queues: dict[int, collections.deque] = {}
        self._lock = threading.Lock()

    def submit(self, key: int, fn, *args) -> bool:
        with self._lock:
            queue = self._queues.get(key)
            if queue is None:
                self._queues[key] = collections.deque([(fn, args)])
                self.pool.submit(self._drain, key)
                return True
            if len(queue) >= MAX_QUEUED_PER_USER:
                return False  # a flood: the rate limiter has answered already
            queue.append((fn, args))
            return True

    def _drain(self, key: int) -> None:
        while True:
            with self._lock:
                queue = self._queues[key]
                if not queue:
                    del self._queues[key]
                    return
                fn, args = queue.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("chat task failed")

    def idle(self) -> bool:
        with self._lock:
            return not self._queues

    def shutdown(self, wait: bool = True) -> None:
        self.pool.shutdown(wait=wait, cancel_futures=not wait)


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
    executor: SerialExecutor
    notifier: Notifier
    poll_thread: threading.Thread
    _stopped: threading.Event = field(default_factory=threading.Event)

    def stop(self, timeout: float = 30) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        deadline = time.monotonic() + timeout
        # A stop_polling() that lands before polling() starts is lost: repeat until the thread ends.
        while self.poll_thread.is_alive() and time.monotonic() < deadline:
            self.bot.stop_polling()
            self.poll_thread.join(0.2)
        self.notifier.stop(max(0.1, deadline - time.monotonic()))
        self.sender.close()
        self.executor.shutdown(wait=True)

    @property
    def running(self) -> bool:
        return self.poll_thread.is_alive()


def start_bot(app, *, notifier_interval: float = 1.0) -> BotHandle:
    """Starts polling in its own thread. Raises on an invalid token or an unreachable API at start."""
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
    executor = SerialExecutor(tcfg.workers)

    def on_message(message):
        if message.from_user is not None:
            executor.submit(message.from_user.id, dispatcher.handle_message, message)

    def on_callback(call):
        if call.from_user is not None:
            executor.submit(call.from_user.id, dispatcher.handle_callback, call)

    bot.register_message_handler(on_message, func=lambda m: True, content_types=["text"])
    bot.register_callback_query_handler(on_callback, func=lambda c: True)

    try:
        sender.set_commands(bot_commands())
        for admin_id in services.admin_ids():
            try:
                bot.set_my_commands(bot_commands(True), scope=types.BotCommandScopeChat(admin_id))
            except Exception as exc:  # the admin may not have started a chat yet
                log.info("admin command menu for %s not set: %s", admin_id, type(exc).__name__)
    except Exception:
        log.exception("setMyCommands failed; continuing without the command menu")

    def poll():
        bot.infinity_polling(
            timeout=tcfg.poll_timeout + 10,
            long_polling_timeout=tcfg.poll_timeout,
            allowed_updates=["message", "callback_query"],
            logger_level=logging.ERROR,
        )

    poll_thread = threading.Thread(target=poll, name="tg-polling", daemon=True)
    notifier = Notifier(sender, interval=notifier_interval)
    poll_thread.start()
    notifier.start()
    log.info("telegram bot @%s polling %s", getattr(me, "username", "?"), tcfg.api_url)
    return BotHandle(bot, dispatcher, sender, services, executor, notifier, poll_thread)
