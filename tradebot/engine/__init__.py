"""Trading engine: the pure per-pair core, the cycle that wires it to the database and the exchange, and the
scheduler (BotManager) that runs every active pair."""
