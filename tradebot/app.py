"""The running process: wires config, database, vault, exchange hub, engine and Telegram."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Any

from . import db as dbmod
from . import logging_setup, private
from .config import Config, require_telegram_token
from .instance_lock import InstanceLease
from .vault import Vault, VaultError

log = logging.getLogger("tradebot")


class StartupError(Exception):
    """A service could not start; one line for the operator."""


@dataclass
class App:
    cfg: Config
    vault: Vault
    hub: Any = None
    manager: Any = None
    extras: dict = field(default_factory=dict)


def build_hub(cfg: Config):
    from .exchange.hub import ExchangeHub
    from .exchange.settings import ExchangeSettings

    settings = {
        name: ExchangeSettings(
            api_url=ex.api_url or None,
            testnet_api_url=ex.testnet_api_url or None,
            timeout_ms=ex.timeout_ms,
            markets_refresh_seconds=ex.markets_refresh_seconds,
            paper_data_network=ex.paper_data_network,
            paper_futures_taker_fee=ex.paper_futures_taker_fee,
            paper_funding_rate=ex.paper_funding_rate,
        )
        for name, ex in cfg.exchanges.items()
    }
    return ExchangeHub(settings)


def build_manager(cfg: Config, hub, vault):
    from .engine.manager import BotManager

    return BotManager(hub, cfg, vault=vault, max_workers=cfg.trading.scheduler_workers,
                      default_interval=cfg.trading.default_interval_seconds,
                      record_holds=cfg.trading.record_hold_decisions)


def _pause_engine(app: App) -> None:
    """Lease lost: no cycle starts (fence() refuses any order already under way)."""
    if app.manager is not None:
        app.manager.pause()


def _resume_engine(app: App) -> None:
    if app.manager is not None:
        app.manager.resume()


def telegram_probe(cfg: Config):
    """() -> bool: does the Bot API answer getMe within 10 s (health; never logs the token)."""
    import requests

    url = (cfg.telegram.api_url or "https://api.telegram.org").rstrip("/") + f"/bot{cfg.telegram.token}/getMe"

    def probe() -> bool:
        try:
            return requests.get(url, timeout=10).status_code == 200
        except requests.RequestException:
            return False

    return probe


def check_key(vault: Vault) -> None:
    """The canary: a key that decrypts none of the stored secrets (a lost key file replaced by a new one)
    refuses to start instead of failing every cycle; a partial mismatch is logged."""
    from .admin import stored_secrets

    try:
        bad = vault.check_canary(stored_secrets())
    except VaultError:
        dbmod.close_database()
        raise
    if bad:
        log.warning("%d stored exchange secret(s) do not decrypt with the %s; those users must /connect again",
                    bad, vault.describe())


FORCED_EXIT_CODE = 130
SWITCH_INTERVAL = 0.001  # seconds; see run_forever


def install_stop_signals(stop: threading.Event) -> None:
    """SIGINT/SIGTERM ask for a graceful stop; a second one forces the exit at once (in-flight cycles are
    abandoned; every order was recorded before it was sent, so the next start reconciles them)."""

    def on_signal(signum, frame):
        if stop.is_set():
            # No logging here: the interrupted main thread may hold the logging lock.
            os.write(2, b"tradebot: second interrupt: forcing exit now, without waiting for in-flight work\n")
            os._exit(FORCED_EXIT_CODE)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, on_signal)
        except ValueError:  # not the main thread (tests)
            pass


def freeze_startup_heap() -> None:
    """Keep what start-up built (imported modules, ccxt's clients and markets: most of the heap) out of
    every later garbage collection. A full collection walks every tracked object with the GIL held: at
    20,000 pairs that was a 0.2 s stop of every chat reply and cycle each time. Objects still reachable
    now live for the whole run; refcounting frees them as usual if they are dropped."""
    import gc

    gc.collect()
    gc.freeze()


def run_forever(cfg: Config, stop_event: threading.Event | None = None) -> int:
    """`tradebot run`. Returns the exit code."""
    from .health import HealthRecorder
    from .services import sync_admins
    from .wal_checkpoint import WalCheckpointer

    token = require_telegram_token(cfg)
    logging_setup.register_secret(token)
    logging_setup.register_secret(cfg.llm.api_key)
    try:
        logging_setup.setup_logging(cfg.logging.level, cfg.log_file, cfg.logging.max_bytes, cfg.logging.backups)
    except OSError as exc:  # e.g. a read-only log directory: one line, not a traceback
        raise StartupError(f"logging.file: cannot write {cfg.log_file} ({exc.strerror or exc})") from None
    private.restrict_umask()  # also when run_forever is called without the CLI
    # A chat reply needs the GIL back after each of its ~30 I/O calls; with a trading cycle running, each
    # costs up to one switch interval (5 ms by default): 1 ms keeps replies quick for ~1 % more switching.
    sys.setswitchinterval(SWITCH_INTERVAL)
    vault = Vault.load(cfg.key_file)
    app = App(cfg=cfg, vault=vault)
    dbmod.open_database(cfg.database_url)
    if not dbmod.is_sqlite() and cfg.ha.enabled:
        return _run_worker(cfg, app, stop_event)
    lock = InstanceLease(cfg.database_url, cfg.database.lease_seconds, admin_ids=cfg.telegram.admin_ids or (),
                         on_lost=lambda: _pause_engine(app), on_regained=lambda: _resume_engine(app))
    lock.lock_file()  # SQLite: before migrating, so a second instance never touches the schema
    applied = dbmod.migrate()
    if applied:
        log.info("applied schema migrations %s", applied)
    private.restrict_sqlite_files(cfg.database_url)
    try:
        check_key(vault)  # before the lease: a key that cannot decrypt anything never takes the database
    except VaultError:
        lock.release()
        raise
    lock.acquire(fencing=True)
    if not dbmod.is_sqlite():
        from .ha.registry import live_workers

        if live_workers():  # [ha] enabled = false here, workers there: never both on one database
            lock.release()
            raise StartupError("PostgreSQL workers ([ha] enabled) already run on this database; "
                               "set [ha] enabled = true here too, or stop them first")
    lock.start_heartbeat()
    checkpointer = WalCheckpointer().start()
    stop = stop_event or threading.Event()
    install_stop_signals(stop)
    leader = None
    health = None
    try:
        sync_admins(cfg.telegram.admin_ids or ())  # admin rights are the config's, set and reset each start
        app.hub = build_hub(cfg)
        app.manager = build_manager(cfg, app.hub, vault)
        app.manager.start()
        leader = _start_telegram(app)
        probe = telegram_probe(cfg)
        health = HealthRecorder(lock, lambda: len(app.manager.slots),
                                lambda: probe() if leader.is_leader else None,  # followers never call the API
                                cycle_lag=app.manager.cycle_lag_seconds)
        health.start()
        freeze_startup_heap()
        log.info("tradebot running (database lease held); Ctrl-C to stop")
        stop.wait()
        log.info("shutting down: finishing in-flight cycles (up to %ss; Ctrl-C again to force)",
                 cfg.trading.shutdown_timeout_seconds)
    finally:
        if health is not None:
            health.stop()
        if leader is not None:
            leader.stop()
        if app.manager is not None:
            app.manager.shutdown(cfg.trading.shutdown_timeout_seconds)
        checkpointer.stop()
        lock.release()
        dbmod.close_database()
        import gc

        gc.unfreeze()  # run_forever may be called in a longer-lived process (tests)
        log.info("stopped")
    return 0


def _start_telegram(app: App):
    """The Telegram front, run by whichever process holds the 'telegram' lease (telegram/leader.py): on
    SQLite always this one; on PostgreSQL one worker at a time, another taking over when it dies."""
    from .telegram.bot import start_bot
    from .telegram.leader import TelegramLeader

    cfg = app.cfg
    leader = TelegramLeader(cfg.database_url, cfg.telegram.leader_lease_seconds,
                            lambda holder, fence: start_bot(app, holder=holder, fence=fence))
    try:
        leader.start()
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback
        log.error("telegram bot failed to start: %s", exc)
        raise StartupError(
            f"telegram: cannot start the bot ({exc}); check telegram.token and telegram.api_url"
        ) from None
    return leader


def _run_worker(cfg: Config, app: App, stop_event: threading.Event | None = None) -> int:
    """PostgreSQL: one of possibly several workers sharing the pairs by leases (tradebot/ha/, docs/HA.md)."""
    from .ha.daily import claim_daily
    from .ha.worker import HAWorker
    from .services import sync_admins

    applied = dbmod.migrate()  # serialized between workers starting together (an advisory lock)
    if applied:
        log.info("applied schema migrations %s", applied)
    check_key(app.vault)
    stop = stop_event or threading.Event()
    install_stop_signals(stop)
    leader = None
    worker = None
    try:
        sync_admins(cfg.telegram.admin_ids or ())
        app.hub = build_hub(cfg)
        app.manager = build_manager(cfg, app.hub, app.vault)
        worker = HAWorker(app.manager, cfg.ha.lease_seconds, admin_ids=cfg.telegram.admin_ids or ())
        app.manager.ha = worker
        app.manager.daily_gate = claim_daily
        app.manager.start()
        worker.start()
        leader = _start_telegram(app)
        freeze_startup_heap()
        log.info("tradebot worker %s running (%d pairs held); Ctrl-C to stop", worker.me, len(worker.tokens))
        stop.wait()
        log.info("shutting down: finishing in-flight cycles (up to %ss; Ctrl-C again to force)",
                 cfg.trading.shutdown_timeout_seconds)
    finally:
        if leader is not None:
            leader.stop()
        if worker is not None:
            worker.stop()
        if app.manager is not None:
            app.manager.drain(cfg.trading.shutdown_timeout_seconds)
        if worker is not None:
            worker.release()  # the idle pairs go to the other workers at once, not after the ttl
        if app.manager is not None:
            app.manager.shutdown(0)
        dbmod.close_database()
        import gc

        gc.unfreeze()
        log.info("stopped")
    return 0
