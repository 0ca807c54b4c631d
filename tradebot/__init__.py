"""tradebot: multi-user crypto trading bot driven from Telegram."""

# The name on the package index ("tradebot" there is an unrelated project); the command and the import
# package stay `tradebot`. The version is read by the build from this file (pyproject: dynamic version).
DIST_NAME = "tradebot-telegram"
__version__ = "0.1.0"
