"""/connect: exchange keys or paper mode."""

from __future__ import annotations

from .. import format as fmt
from ..parsing import ParseError, parse_network
from .args import Usage, exchange_arg


class AccountCommands:
    """Part of the Dispatcher."""

    def cmd_connect(self, m, args, user, deleted: bool = False) -> None:
        if len(args) == 2 and args[1].lower() == "paper":
            exchange = exchange_arg("connect", args[0])
            result = self.services.connect(user, exchange, "paper")
            self.reply(m, fmt.connected(result, False))
            return
        if len(args) not in (3, 4):
            raise Usage("connect", "Give the exchange, API key and secret (or: /connect binance paper).")
        for arg in args:
            if len(arg) > 256:
                raise Usage("connect", "An argument is too long.")
        exchange = exchange_arg("connect", args[0])
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
