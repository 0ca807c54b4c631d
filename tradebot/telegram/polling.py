"""Long polling through the inbox (telegram/inbox.py): record a batch, then hand it to the chat workers.

Telegram confirms the updates of one getUpdates call only when the next call sends a higher offset, and
that call is sent only after the batch is in the database. A stop is immediate: the getUpdates in flight
is abandoned (the thread is a daemon); what it may still bring is neither recorded nor confirmed, so
Telegram delivers it again to the next leader.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading

from telebot import apihelper, types

from ..writer_lock import mark_urgent
from . import format as fmt

log = logging.getLogger("tradebot.telegram")

PRUNE_EVERY = 1000  # batches between two prunes of old handled rows


class InboxPoller:
    RETRY_SECONDS = 3.0

    def __init__(self, bot, inbox, submit, handle, sender, poll_timeout: int, allowed_updates: list[str],
                 claims=None, foreground=None):
        self.bot = bot
        # tradebot/priority.py's Foreground: cycles stand back from the moment a batch arrives (its
        # recording is part of the replies' wait), not only once its updates reach the chat lanes
        self.foreground = foreground
        # (telegram user id) -> bool: a member, whose updates are stored in full and claimed before they are
        # handled. Strangers (not members) get short refusals or a registration, best effort as their
        # chat lane already is (dropped at a stop): a flood of them must not cost an encryption and a write
        # per message before the members' turn. Only their ids are stored (the offset, no repeat on this
        # leader); a successor skips those it finds unhandled, and may answer one again if it had been
        # fetched but not recorded.
        self.claims = claims
        self._late: list[int] = []  # strangers' updates handled since the last batch: marked with the next
        self._late_lock = threading.Lock()
        self.inbox = inbox
        self.submit = submit  # (telegram user id, fn, arg) -> bool: queued on that user's lane
        self.handle = handle  # (types.Update) -> None: the dispatcher
        self.sender = sender
        self.poll_timeout = poll_timeout
        self.allowed_updates = allowed_updates
        self.offset: int | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="tg-polling", daemon=True)
        self._batches = 0

    def start(self) -> None:
        self.thread.start()

    def stop(self, grace: float = 0.5) -> None:
        """Returns within `grace` seconds; a getUpdates still in flight is abandoned (see the module doc)."""
        self.stopping.set()
        if self.thread.ident is not None:
            self.thread.join(grace)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive() and not self.stopping.is_set()

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        mark_urgent()  # a batch is recorded while people wait for their replies (writer_lock.py)
        ready = False
        while not self.stopping.is_set():
            try:
                if not ready:  # first what a previous leader left, then from the stored offset
                    self._prune()
                    self._finish_left()
                    self.offset = self.inbox.offset()
                    ready = True
                raw = apihelper.get_updates(self.bot.token, offset=self.offset, timeout=self.poll_timeout + 10,
                                            allowed_updates=self.allowed_updates,
                                            long_polling_timeout=self.poll_timeout)
                if self.stopping.is_set():
                    return  # neither recorded nor confirmed: delivered again
                self._take(raw)
            except Exception as exc:  # network trouble, 409, 5xx, database down...: log, wait, go on
                if self.stopping.is_set():
                    return
                log.error("telegram polling error: %s: %s", type(exc).__name__, exc)
                self.stopping.wait(self.RETRY_SECONDS)

    def _take(self, raw: list[dict]) -> None:
        if not raw or self.foreground is None:
            return self._take_batch(raw)
        self.foreground.enter()
        try:
            return self._take_batch(raw)
        finally:
            self.foreground.exit()

    def _take_batch(self, raw: list[dict]) -> None:
        with self._late_lock:
            late, self._late = self._late, []
        try:
            taken = self.inbox.record(raw, late, self._keep if self.claims is not None else None)
            # (raises when the database is down: the batch is fetched again)
        except Exception:
            with self._late_lock:
                self._late[:0] = late
            raise
        if not raw:
            return
        self.offset = max(int(u["update_id"]) for u in raw) + 1
        for update in raw:
            if int(update["update_id"]) in taken:
                self._dispatch(int(update["update_id"]), update)
        self._batches += 1
        if self._batches % PRUNE_EVERY == 0:
            self._prune()

    def _prune(self) -> None:
        try:
            self.inbox.prune()
        except Exception as exc:  # noqa: BLE001 - next time
            log.warning("could not prune the telegram inbox: %s", type(exc).__name__)

    def _keep(self, update: dict) -> bool:
        """Members' updates are kept for a successor; a stranger's is not stored (see `claims`)."""
        person = (update.get("message") or update.get("callback_query") or {}).get("from") or {}
        return bool(self.claims(int(person.get("id") or 0)))

    def _finish_left(self) -> None:
        for update_id, started, raw in self.inbox.unfinished():
            if raw is None:
                self._done(update_id)
            elif started:
                self._dispatch(update_id, raw, self._interrupted)
            else:
                self._dispatch(update_id, raw)

    # ------------------------------------------------------------ one update

    def _dispatch(self, update_id: int, raw: dict, work=None) -> None:
        update = types.Update.de_json(raw)
        person = update.message.from_user if update.message is not None else update.callback_query.from_user
        if not self.submit(person.id, work or self._handle, (update_id, update)):
            self._done(update_id)  # a flood the rate limiter answered already: never again

    def _handle(self, item) -> None:
        update_id, update = item
        person = update.message.from_user if update.message is not None else update.callback_query.from_user
        if self.claims is not None and not self.claims(person.id):
            # a stranger: no claim, and the mark goes with the next batch's transaction (a flood of
            # strangers costs no write per message); repeated after a takeover, it is one more refusal
            try:
                self.handle(update)
            finally:
                with self._late_lock:
                    self._late.append(update_id)
            return
        try:
            claimed = self.inbox.start(update_id)
        except Exception as exc:  # noqa: BLE001 - database unreachable: answer anyway (a handler that
            claimed = True  # needs the database apologises) rather than leave the user without a word
            log.warning("could not claim telegram update %s: %s", update_id, type(exc).__name__)
        if not claimed:
            return  # another leader took it over
        try:
            self.handle(update)
        finally:
            self._done(update_id)

    def _done(self, update_id: int) -> None:
        try:
            self.inbox.done(update_id)
        except Exception as exc:  # noqa: BLE001 - a successor will treat it as interrupted
            log.warning("could not mark telegram update %s handled: %s", update_id, type(exc).__name__)

    def _interrupted(self, item) -> None:
        """Its handling began on a leader that died: not run again; the sender is told."""
        update_id, update = item
        message = update.message or (update.callback_query.message if update.callback_query else None)
        chat_id = message.chat.id if message is not None and message.chat else None
        if chat_id is None:
            chat_id = (update.callback_query.from_user.id if update.callback_query else None)
        command = None
        if update.message is not None and (update.message.text or "").startswith("/"):
            command = update.message.text.split()[0].split("@")[0][:40]
        date = update.message.date if update.message is not None else None
        when = dt.datetime.fromtimestamp(date or 0, dt.timezone.utc).strftime("%H:%M") if date else "earlier"
        try:
            if chat_id is not None:
                self.sender.send(chat_id, fmt.interrupted(command, when),
                                 reply_to=update.message.message_id if update.message is not None else None)
        finally:
            self._done(update_id)
