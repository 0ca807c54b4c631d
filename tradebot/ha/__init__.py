"""High availability on PostgreSQL: several `tradebot run` workers share the active pairs by leases.

    registry.py   the `workers` rows: register, heartbeat (with the leases), clean stop, disappeared workers
    leases.py     the `pair_leases` rows (live while their worker's row is): renew, claim, release, slot check
    balancer.py   fair share (pure): how many pairs a worker should hold, which to give up
    fence.py      the per-pair fencing check the engine runs in the transaction of an order intent
    worker.py     HAWorker: the one thread per process that drives all of the above
    daily.py      the once-per-day-per-cluster gate of the daily summary job

See docs/HA.md for the rules. SQLite keeps the single-instance lease (instance_lock.py).
"""
