"""`tradebot` command line: init, run, admin, db (and backtest, evaluate). One module per command group; importing
them registers their commands on `main`."""

from . import admin, db, setup  # noqa: F401  (registers the commands)
from .common import main

__all__ = ["main"]


def _register_optional_commands():
    try:
        from ..backtest.cli import backtest_command
    except ImportError:
        return
    main.add_command(backtest_command, "backtest")
    from .evaluate import evaluate_command

    main.add_command(evaluate_command, "evaluate")


_register_optional_commands()
