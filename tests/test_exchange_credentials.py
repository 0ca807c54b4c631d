"""hub.check_credentials: the four outcomes /connect tells the user about."""

import socket

import pytest

from tests.fixtures_exchange import fast_settings
from tradebot.exchange.errors import AuthenticationFailed, ExchangeUnavailable, PermissionDenied, WrongNetwork
from tradebot.exchange.hub import ExchangeHub

EXCHANGES = ["binance", "bybit"]


@pytest.fixture
def two_networks(fake_exchange_factory):
    """A 'live' and a 'testnet' fake exchange, and a hub pointed at each accordingly."""
    live, testnet = fake_exchange_factory(), fake_exchange_factory()
    hub = ExchangeHub(fast_settings(live.url, testnet.url))
    return live, testnet, hub


@pytest.mark.parametrize("ex", EXCHANGES)
def test_valid_key_with_trading(ex, two_networks):
    live, _, hub = two_networks
    live.add_account("good", "secret", {"USDT": "1"}, exchange=ex)
    assert hub.check_credentials(ex, "live", "good", "secret") == {"can_trade": True}
    assert all(r.signature_ok for r in live.requests)


@pytest.mark.parametrize("ex", EXCHANGES)
def test_invalid_key_or_signature(ex, two_networks):
    live, testnet, hub = two_networks
    live.add_account("good", "secret", {}, exchange=ex)
    with pytest.raises(AuthenticationFailed) as err:
        hub.check_credentials(ex, "live", "unknown-key-123", "s3cr3t-value")
    assert "s3cr3t" not in err.value.user_message and "unknown-key-123" not in err.value.user_message
    with pytest.raises(AuthenticationFailed):
        hub.check_credentials(ex, "live", "good", "not-the-secret")
    assert [r.signature_ok for r in live.requests][-1] is False
    assert len(testnet.requests) == 2  # one probe of the other network per rejected key


@pytest.mark.parametrize("ex", EXCHANGES)
def test_key_without_trade_permission(ex, two_networks):
    live, _, hub = two_networks
    live.add_account("ro", "secret", {}, exchange=ex, permissions=("read",))
    with pytest.raises(PermissionDenied, match="cannot trade"):
        hub.check_credentials(ex, "live", "ro", "secret")


@pytest.mark.parametrize("ex", EXCHANGES)
def test_testnet_key_on_live_and_the_reverse(ex, two_networks):
    live, testnet, hub = two_networks
    testnet.add_account("tkey", "tsecret", {}, exchange=ex)
    live.add_account("lkey", "lsecret", {}, exchange=ex)
    with pytest.raises(WrongNetwork, match="testnet key") as err:
        hub.check_credentials(ex, "live", "tkey", "tsecret")
    assert err.value.needs_user_action
    with pytest.raises(WrongNetwork, match="live"):
        hub.check_credentials(ex, "testnet", "lkey", "lsecret")


@pytest.mark.parametrize("ex", EXCHANGES)
def test_exchange_unreachable(ex):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hub = ExchangeHub(fast_settings(f"http://127.0.0.1:{port}"))
    with pytest.raises(ExchangeUnavailable):
        hub.check_credentials(ex, "live", "k", "s")
