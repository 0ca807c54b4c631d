"""tradebot: multi-user crypto trading bot driven from Telegram."""

__version__ = "0.1.0"
