"""Read-only commands: /config, /mystats and /position."""

from __future__ import annotations

from .. import format as fmt
from .args import Usage


class ReportCommands:
    """Part of the Dispatcher."""

    def cmd_config(self, m, args, user) -> None:
        configs = self._configs("config", args, user)
        self.reply(m, fmt.config(self.services.config_view(user, configs), self.services.deciders()))

    def cmd_mystats(self, m, args, user) -> None:
        if args:
            raise Usage("mystats", "This command takes no arguments.")
        self.reply(m, fmt.stats(self.services.stats(user)))

    def cmd_position(self, m, args, user) -> None:
        configs = self._configs("position", args, user)
        self.reply(m, fmt.positions(self.services.positions(user, configs)))

    def cmd_why(self, m, args, user) -> None:
        (config,) = self._configs("why", args, user, required=True)
        self.reply(m, fmt.why(self.services.why(user, config)))

    def cmd_llm(self, m, args, user) -> None:
        self.reply(m, fmt.llm_usage(self.services.llm_usage(user)))
