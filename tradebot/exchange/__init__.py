"""Exchange layer: ccxt client factory, shared markets and market data, rate limiting, live and paper brokers.

Engine and services use: ExchangeHub (hub.py), errors.*, new_client_order_id (live.py),
simulate_market_fill / PaperBroker (paper.py). Nothing outside this package knows Binance or Bybit specifics.
"""
