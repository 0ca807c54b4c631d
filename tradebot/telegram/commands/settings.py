"""/set (a pair's risk and strategy settings) and /notify."""

from __future__ import annotations

from ... import services as svc
from .. import format as fmt
from ..parsing import ParseError, parse_number, parse_on_off
from .args import Usage


class SettingsCommands:
    """Part of the Dispatcher."""

    def cmd_set(self, m, args, user) -> None:
        if len(args) not in (3, 4):
            raise Usage("set", "Give the symbol, the setting and the value.")
        sym_args = [args[0]] + ([args[3]] if len(args) == 4 else [])
        name = args[1].lower()
        key = svc.SETTING_ALIASES.get(name, name)
        if key == "preset":
            value = args[2]  # checked against the config's presets by the service
        elif key in svc.TEXT_SETTINGS:
            allowed = svc.TEXT_SETTINGS[key][1]
            value = args[2].lower()
            if value not in allowed:
                raise Usage("set", f"{key} must be one of: {', '.join(allowed)}.")
        elif key not in svc.SETTINGS:
            raise Usage("set", f"Unknown setting. Use one of: {', '.join([*svc.SETTINGS, *svc.TEXT_SETTINGS, 'preset'])}.")
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
