"""Text command handlers, one module per domain as in tradebot/services (the Dispatcher composes them):
access.py /start /help and admin commands; accounts.py /connect; pairs.py /addpair /listpairs /status
/removepair; trading.py /start_trading /stop_trading /reset; settings.py /set /notify; reports.py /config
/mystats /position; charts.py /chart /equity /trades /export /keyboard, pick lists and Refresh buttons."""

from .access import AccessCommands
from .accounts import AccountCommands
from .args import Usage
from .charts import ChartCommands
from .pairs import PairCommands
from .reports import ReportCommands
from .settings import SettingsCommands
from .trading import TradingCommands

__all__ = [
    "AccessCommands", "AccountCommands", "ChartCommands", "PairCommands", "ReportCommands", "SettingsCommands",
    "TradingCommands", "Usage",
]
