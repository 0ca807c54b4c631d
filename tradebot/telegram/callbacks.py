"""Inline button presses: what each callback-data action does (the Dispatcher routes presses here after
rate limiting and authorizing the presser)."""

from __future__ import annotations

from .. import services as svc
from ..ascii_digits import ascii_int
from . import format as fmt


class ButtonActions:
    """Part of the Dispatcher."""

    def _callback_action(self, user, action: str, arg: str, chat_id: int, presser: int | None = None,
                         message_id: int | None = None):
        """(new text for the message or None, markup, toast). Every button either names one of the
        presser's own pairs by id (looked up among the presser's pairs only) or carries the asker's id
        (`mine`): a forged or foreign button never shows or changes another user's pairs."""
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
            return fmt.status(views, single=False), self._pair_buttons(views, f"rfs:{presser}"), _plain(toast)
        if action == "stop1":  # the /stop_trading pick list
            result = s.stop_trading(user, [pair(arg)])
            return fmt.stopped(result), None, "Stopped"
        if action == "st":  # Refresh of a one-pair /status
            config = pair(arg)
            views = [s._view(config)]
            return fmt.status(views), self._pair_buttons(views, f"st:{config.id}"), fmt.charts_refreshed()
        if action == "rfs":  # Refresh of /status (all pairs, or those on one exchange)
            owner, _, exchange = arg.partition(":")
            mine(owner)
            views = s.list_pairs(user)
            if exchange:
                views = [v for v in views if v.exchange == exchange]
            refresh = f"rfs:{presser}" + (f":{exchange}" if exchange else "")
            return fmt.status(views), self._pair_buttons(views, refresh), fmt.charts_refreshed()
        if action == "pos":  # one pair's position (a pick or its Refresh)
            text, markup = self.position_reply(user, [pair(arg)], presser)
            return text, markup, fmt.charts_refreshed()
        if action == "rfp":  # Refresh of /position (all pairs)
            mine(arg)
            text, markup = self.position_reply(user, None, presser)
            return text, markup, fmt.charts_refreshed()
        if action == "rmq":  # the /removepair pick list: ask to confirm
            text, markup = self.removal_question(user, pair(arg), presser)
            return text, markup, None
        if action == "cp":  # the /chart pick list: the chart comes as a new photo
            ref, _, tf = arg.partition(":")
            config = pair(ref)
            self.send_chart(chat_id, user, config, tf or None)
            return f"📈 {fmt.e(config.symbol)} ({fmt.e(config.exchange)})", None, None
        if action == "chr":  # a chart's Refresh: the picture is replaced in place
            ref, _, tf = arg.partition(":")
            config = pair(ref)
            self.refresh_chart(chat_id, message_id, user, config, tf or None)
            return None, None, fmt.charts_refreshed()
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
