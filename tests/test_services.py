"""Use cases shared by chat and CLI: registration modes, admin functions, pairs, credentials (real Vault)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from cryptography.fernet import Fernet

from tests.fixtures_telegram import StubApp, StubHub, build_manager, make_cfg
from tradebot import services as svc
from tradebot.models import ExchangeCredential, User, UserConfig, UserState
from tradebot.vault import Vault

D = Decimal


@pytest.fixture
def services(database):
    hub = StubHub()
    vault = Vault([Fernet.generate_key()], "test")
    return svc.Services(StubApp(make_cfg(admin_ids=[900]), vault, hub, build_manager(hub, vault)))


def user(services, tid=1):
    return services.register(tid, f"u{tid}", "U").user


def test_register_open_mode_and_refresh(services):
    r = services.register(1, "alice", "Alice")
    assert r.created and r.status == "active"
    r2 = services.register(1, "alice2", "Alice")
    assert not r2.created and r2.user.username == "alice2"
    assert User.select().count() == 1
    assert services.register(900, "boss", "B").user.is_admin


@pytest.mark.parametrize(
    "access, listed, expected",
    [("approval", False, "pending"), ("allowlist", False, "refused"), ("allowlist", True, "active")],
)
def test_register_modes(database, access, listed, expected):
    hub = StubHub()
    cfg = make_cfg(access=access, allowlist=[1] if listed else [], admin_ids=[900])
    s = svc.Services(StubApp(cfg, None, hub, build_manager(hub, None)))
    assert s.register(1, "x", "X").status == expected
    assert s.register(900, "admin", "A").status == "active"


def test_authorize_refusals(services):
    with pytest.raises(svc.NotRegistered):
        services.authorize(5)
    u = user(services, 5)
    svc.block_user(5)
    with pytest.raises(svc.Blocked):
        services.authorize(5)
    svc.approve_user("u5")
    assert services.authorize(5).id == u.id


def test_cli_admin_functions(services):
    a = user(services, 1)
    user(services, 2)
    cfg = services.connect(a, "binance", "paper")
    assert cfg.network == "paper"
    services.add_pair(a, "BTC/USDT", D("100"))
    services.start_trading(a)
    views = {v.telegram_id: v for v in svc.list_users()}
    assert views[1].pairs == 1 and views[1].trading == 1
    blocked = svc.block_user(1, services.manager)
    assert blocked.status == "blocked"
    assert not UserConfig.get().is_trading
    assert svc.list_users("blocked")[0].telegram_id == 1
    assert svc.approve_user(1).status == "active"
    assert svc.find_user("@U2") is not None and svc.find_user(2) is not None
    with pytest.raises(svc.NotFound):
        svc.approve_user(404)
    admin = user(services, 900)
    with pytest.raises(svc.Conflict):
        svc.block_user(900)
    with pytest.raises(svc.AccessDenied):
        services.admin_stop_all(a)
    assert services.admin_list_users(admin)


def test_connect_encrypts_and_masks(services):
    u = user(services)
    result = services.connect(u, "bybit", "testnet", "APIKEY1234567890", "SECRET1234567890")
    assert result.api_key_masked == "APIK…7890"
    cred = ExchangeCredential.get()
    assert "SECRET" not in cred.secret_enc and services.vault.decrypt(cred.secret_enc) == "SECRET1234567890"
    view = services.config_view(u)
    assert view.credentials[0].api_key_masked == "APIK…7890"
    with pytest.raises(svc.ExchangeRefused):
        services.connect(u, "bybit", "live", "badkey", "badsecret")
    assert ExchangeCredential.get().network == "testnet"  # unchanged


def test_pairs_are_per_user(services):
    a, b = user(services, 1), user(services, 2)
    for u in (a, b):
        services.connect(u, "binance", "paper")
    pa = services.add_pair(a, "btcusdt", D("100"))
    assert pa.symbol == "BTC/USDT" and pa.equity == D("100") and pa.status == "stopped"
    state = UserState.get(UserState.config == pa.config_id)
    assert state.mode == "paper" and state.cash == D("100")
    with pytest.raises(svc.NotFound):
        services.find_pair(b, "BTC/USDT")
    with pytest.raises(svc.NotFound):
        services.pair_by_id(b, pa.config_id)
    with pytest.raises(svc.ExchangeRefused):
        services.add_pair(b, "NOPE/USDT", D("100"))
    with pytest.raises(svc.InvalidValue):
        services.add_pair(b, "BTC/USDT", D("5"))
    result = services.start_trading(a)
    assert result.started == ["BTC/USDT"]
    assert services.start_trading(a).already == ["BTC/USDT"]
    assert services.stop_trading(b).stopped == []
    assert UserConfig.get_by_id(pa.config_id).is_trading
    config = services.find_pair(a, "BTC-USDT")
    with pytest.raises(svc.Conflict):
        services.remove_pair(a, config, confirmed=True)
    services.stop_trading(a, [config])
    services.remove_pair(a, config, confirmed=True)
    assert UserConfig.select().count() == 0 and UserState.select().count() == 0


def test_set_setting_ranges(services):
    u = user(services)
    services.connect(u, "binance", "paper")
    config = services.find_pair(u, services.add_pair(u, "ETH/USDT", D("50")).symbol)
    change = services.set_setting(u, config, "sl", D("4"))
    assert (change.setting, change.old, change.new) == ("stop_loss", D("2"), D("4"))
    with pytest.raises(svc.InvalidValue):
        services.set_setting(u, config, "cooldown", D("1.5"))
    with pytest.raises(svc.InvalidValue):
        services.set_setting(u, config, "max_drawdown", D("0"))
    with pytest.raises(svc.InvalidValue):
        services.set_setting(u, config, "nonsense", D("1"))
    assert services.set_setting(u, config, "cooldown", D("0")).new == 0


def test_set_decider_when_llm_is_configured(services):
    import dataclasses

    u = user(services)
    services.connect(u, "binance", "paper")
    config = services.find_pair(u, services.add_pair(u, "ETH/USDT", D("50")).symbol)
    cfg = services.app.cfg
    services.app.cfg = dataclasses.replace(cfg, llm=dataclasses.replace(cfg.llm, api_key="sk-test-123456"))
    try:
        change = services.set_setting(u, config, "decider", "ensemble")
    finally:
        services.app.cfg = cfg
    assert (change.old, change.new) == ("technical", "ensemble")
    assert UserConfig.get_by_id(config.id).decider == "ensemble"
    with pytest.raises(svc.InvalidValue):
        services.set_setting(u, config, "timeframe", "2m")
