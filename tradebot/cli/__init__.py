"""`tradebot` command line: init, run, admin, db (and backtest). One module per command group; importing
them registers their commands on `main`."""

from . import admin, admin_llm, db, setup  # noqa: F401  (registers the commands)
from .common import main

__all__ = ["main"]


def _register_optional_commands():
    try:
        from ..backtest.cli import backtest_command
    except ImportError:
        return
    main.add_command(backtest_command, "backtest")


_register_optional_commands()
