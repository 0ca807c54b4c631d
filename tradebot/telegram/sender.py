"""The one path for outgoing Bot API calls: honours 429 retry_after, retries 5xx and network errors.

telebot itself does not wait on 429 for sends, so every reply, edit, deletion and notification goes
through `Sender`. Long texts are split with telebot.util.smart_split before sending.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import requests
from telebot import apihelper, types, util

log = logging.getLogger("tradebot.telegram.sender")

MAX_LEN = 4096


class SendFailed(Exception):
    """Gave up after retries, or a permanent error (e.g. the user blocked the bot)."""

    def __init__(self, message: str, permanent: bool = False):
        super().__init__(message)
        self.permanent = permanent


class Sender:
    def __init__(
        self,
        bot,
        *,
        max_attempts: int = 6,
        base_delay: float = 0.5,
        max_delay: float = 30.0,
        max_retry_after: float = 120.0,
        sleep=time.sleep,
    ):
        self.bot = bot
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.max_retry_after = max_retry_after
        self.sleep = sleep
        self._stop = threading.Event()

    def close(self) -> None:
        """Wake any sleeping retry so shutdown does not hang."""
        self._stop.set()

    def _wait(self, seconds: float) -> None:
        if self.sleep is time.sleep:
            self._stop.wait(seconds)
        else:
            self.sleep(seconds)

    def call(self, what: str, fn, *args, **kwargs):
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn(*args, **kwargs)
            except apihelper.ApiTelegramException as exc:
                code = exc.error_code
                if code == 429:
                    params = (exc.result_json or {}).get("parameters") or {}
                    try:
                        delay = float(params.get("retry_after", 1))
                    except (TypeError, ValueError):
                        delay = 1.0
                    delay = min(max(delay, 0.0), self.max_retry_after)
                    reason = f"429, retry after {delay:g}s"
                elif code >= 500:
                    delay = self._backoff(attempt)
                    reason = f"HTTP {code}"
                else:
                    # 400/403/404: permanent (message not found, bot blocked by the user, ...)
                    raise SendFailed(f"{what}: {code} {exc.description}", permanent=True) from None
            except apihelper.ApiHTTPException as exc:
                status = getattr(getattr(exc, "result", None), "status_code", 0) or 0
                if 400 <= status < 500 and status != 429:
                    raise SendFailed(f"{what}: HTTP {status}", permanent=True) from None
                delay = self._backoff(attempt)
                reason = f"HTTP {status}"
            except (
                apihelper.ApiInvalidJSONException,
                requests.exceptions.RequestException,
                ConnectionError,
            ) as exc:
                delay = self._backoff(attempt)
                reason = type(exc).__name__
            if attempt >= self.max_attempts or self._stop.is_set():
                raise SendFailed(f"{what}: gave up after {attempt} attempts ({reason})")
            log.warning("telegram %s failed (%s); retry %d in %.2fs", what, reason, attempt, delay)
            self._wait(delay)

    def _backoff(self, attempt: int) -> float:
        delay = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        return delay * (0.8 + 0.4 * random.random())

    # ---------------------------------------------------------------- API

    def send(self, chat_id: int, text: str, reply_markup=None, parse_mode: str = "HTML",
             reply_to: int | None = None) -> list:
        """Sends `text`, split into <= 4096-character parts; the markup goes on the last part. `reply_to`:
        the first part quotes that message of the chat (if it still exists)."""
        parts = util.smart_split(text, MAX_LEN) if len(text) > MAX_LEN else [text]
        sent = []
        for i, part in enumerate(parts):
            markup = reply_markup if i == len(parts) - 1 else None
            extra = {}
            if reply_to is not None and i == 0:
                extra["reply_parameters"] = types.ReplyParameters(reply_to, allow_sending_without_reply=True)
            sent.append(
                self.call(
                    "sendMessage",
                    self.bot.send_message,
                    chat_id,
                    part,
                    parse_mode=parse_mode,
                    reply_markup=markup,
                    disable_web_page_preview=True,
                    **extra,
                )
            )
        return sent

    def edit(self, chat_id: int, message_id: int, text: str, reply_markup=None, parse_mode: str = "HTML"):
        if len(text) > MAX_LEN:
            text = util.smart_split(text, MAX_LEN)[0]
        try:
            return self.call(
                "editMessageText",
                self.bot.edit_message_text,
                text,
                chat_id=chat_id,
                message_id=message_id,
                parse_mode=parse_mode,
                reply_markup=reply_markup,
            )
        except SendFailed as exc:
            if "not modified" in str(exc):
                return None
            raise

    def send_photo(self, chat_id: int, png: bytes, caption: str | None = None, reply_markup=None,
                   parse_mode: str = "HTML"):
        """A PNG as a photo (multipart upload); `png` is bytes so that a retry sends it again in full."""
        return self.call("sendPhoto", self.bot.send_photo, chat_id, png, caption=caption, parse_mode=parse_mode,
                         reply_markup=reply_markup)

    def edit_photo(self, chat_id: int, message_id: int, png: bytes, caption: str | None = None,
                   reply_markup=None, parse_mode: str = "HTML"):
        """Replace a photo message's picture in place (a chart's Refresh button)."""
        media = types.InputMediaPhoto(png, caption=caption, parse_mode=parse_mode)
        try:
            return self.call("editMessageMedia", self.bot.edit_message_media, media, chat_id=chat_id,
                             message_id=message_id, reply_markup=reply_markup)
        except SendFailed as exc:
            if "not modified" in str(exc):
                return None
            raise

    def send_document(self, chat_id: int, filename: str, data: bytes, caption: str | None = None,
                      parse_mode: str = "HTML"):
        return self.call("sendDocument", self.bot.send_document, chat_id, data, caption=caption,
                         parse_mode=parse_mode, visible_file_name=filename)

    def delete(self, chat_id: int, message_id: int) -> bool:
        try:
            self.call("deleteMessage", self.bot.delete_message, chat_id, message_id)
            return True
        except SendFailed as exc:
            log.warning("could not delete message %s in chat %s: %s", message_id, chat_id, exc)
            return False

    def answer_callback(self, callback_id: str, text: str | None = None) -> None:
        try:
            self.call("answerCallbackQuery", self.bot.answer_callback_query, callback_id, text=text)
        except SendFailed as exc:
            log.info("answerCallbackQuery failed: %s", exc)

    def set_commands(self, commands) -> None:
        self.call("setMyCommands", self.bot.set_my_commands, commands)
