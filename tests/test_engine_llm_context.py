"""Optional LLM context over real HTTP: other timeframes from the shared candle cache and the order book from
the fake exchange (Binance and Bybit), RSS/Atom news from a local feed server, funding only for futures, the
prompt's headings and its size bound."""

from __future__ import annotations

import datetime as dt
import logging
import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from tests.fakes.llm import FakeLLM
from tests.fixtures_engine import Clock
from tradebot.engine.llm_context import LLMContext
from tradebot.engine.llm_news import NewsFeeds, parse_feed
from tradebot.strategy.base import DecisionContext
from tradebot.strategy.llm import LLMDecider
from tradebot.strategy.llm_client import ProviderSettings
from tradebot.strategy.llm_prompt import MarketInfo, market_prompt

NOW = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)


def _rss(items):
    body = "".join(f"<item><title>{t}</title><pubDate>{w:%a, %d %b %Y %H:%M:%S} +0000</pubDate></item>"
                   for t, w in items)
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Coin Wire</title>{body}</channel></rss>'


def _atom(items):
    body = "".join(f"<entry><title>{t}</title><updated>{w.isoformat()}</updated></entry>" for t, w in items)
    return f'<?xml version="1.0"?><feed xmlns="http://www.w3.org/2005/Atom"><title>Chain Daily</title>{body}</feed>'


@pytest.fixture
def feeds():
    pages = {
        "/rss": _rss([("ETF inflows hit record", NOW - dt.timedelta(hours=1)),
                      ("Old story", NOW - dt.timedelta(hours=30)),
                      ("Exchange halts withdrawals", NOW - dt.timedelta(minutes=20))]),
        "/atom": _atom([("ETF inflows hit record!", NOW - dt.timedelta(hours=2)),  # duplicate headline
                        ("Miners sell less", NOW - dt.timedelta(hours=3))]),
        "/broken": "<rss><channel><item>",
    }
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            hits.append(self.path)
            body = pages.get(self.path)
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/rss+xml")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hits
    server.shutdown()
    server.server_close()


def test_news_headlines_deduplicated_recent_and_dead_feeds_logged_once(feeds, caplog):
    base, hits = feeds
    news = NewsFeeds([f"{base}/rss", f"{base}/atom", f"{base}/broken", f"{base}/gone"], hours=6,
                     clock=lambda: NOW.timestamp())
    with caplog.at_level(logging.WARNING):
        assert news.refresh() == 4  # 5 headlines, one of the two ETF ones dropped as a duplicate
        news.refresh()
    text = news.render()
    assert text.splitlines() == [
        "2026-03-01 11:40 [Coin Wire] Exchange halts withdrawals",
        "2026-03-01 11:00 [Coin Wire] ETF inflows hit record",
        "2026-03-01 09:00 [Chain Daily] Miners sell less",
    ]
    dead = [r for r in caplog.records if "news feed" in r.getMessage()]
    assert len(dead) == 2  # /broken and /gone, each once over two refreshes
    assert hits.count("/rss") == 2


def test_parse_feed_reads_rss_and_atom():
    items = parse_feed(_atom([("A", NOW)]).encode(), "x")
    assert items == [(NOW, "Chain Daily", "A")]
    assert parse_feed(_rss([("B", NOW)]).encode(), "x") == [(NOW, "Coin Wire", "B")]


@pytest.mark.parametrize("exchange", ["binance", "bybit"])
def test_timeframes_and_order_book_from_the_exchange(fake_exchange, exchange_hub, exchange, caplog):
    fake_exchange.book.depth_bias["BTCUSDT"] = Decimal(3)  # three times more bids than asks
    llm_cfg = SimpleNamespace(context_timeframes=["15m", "1h", "1m"], order_book_levels=10, news_feeds=[])
    ctx = LLMContext(exchange_hub, llm_cfg)
    sections = dict(ctx.sections(exchange, "live", "BTC/USDT", "1m", "spot", 1))
    tfs = sections["Other timeframes (closed candles)"].splitlines()
    assert [ln.split(":")[0] for ln in tfs] == ["15m", "1h"]  # not the pair's own timeframe
    assert "close " in tfs[0] and "change over last" in tfs[0]  # (trend and RSI once 35 candles exist)
    book = sections["Order book (top 10 levels)"]
    assert "imbalance +50.0%" in book  # (30 - 10) / 40
    assert "Funding and open interest" not in sections  # spot
    # fetched once per market and candle: the same text again, even if the book changed
    fake_exchange.book.depth_bias["BTCUSDT"] = Decimal(1)
    assert dict(ctx.sections(exchange, "live", "BTC/USDT", "1m", "spot", 1))["Order book (top 10 levels)"] == book
    assert "imbalance +0.0%" in dict(ctx.sections(exchange, "live", "BTC/USDT", "1m", "spot", 2))[
        "Order book (top 10 levels)"]
    # a futures pair also gets the perpetual's funding rate and open interest (the fake's USDⓈ-M / linear API)
    fake_exchange.book.funding_rates["BTCUSDT"] = Decimal("-0.00025")
    fake_exchange.book.open_interests["BTCUSDT"] = Decimal("4321.5")
    fut = dict(ctx.sections(exchange, "live", "BTC/USDT", "1m", "futures", 3))
    assert fut["Funding and open interest"] == "funding rate -0.0250% per 8h, open interest 4321.500 BTC"
    # a venue that does not answer: left out, logged once
    fake_exchange.book.funding_rates.clear()
    ctx.hub.market_data._prices.clear()
    fake_exchange.book.specs[exchange].pop("ETHUSDT")
    with caplog.at_level(logging.WARNING):
        for ts in (4, 5):
            assert "Funding and open interest" not in dict(
                ctx.sections(exchange, "live", "ETH/USDT", "1m", "futures", ts))
    assert len([r for r in caplog.records if "funding" in r.getMessage()]) == 1


def test_prompt_states_each_input_and_is_bounded():
    candles = [SimpleNamespace(ts=i * 60_000, open=100.0, high=101.0, low=99.0, close=100.5, volume=1.0)
               for i in range(50)]
    ctx = DecisionContext("BTC/USDT", "1m", candles, None, None, Decimal(1000), Decimal(1000), Decimal("100.5"))
    market = MarketInfo("binance", "spot", (("Other timeframes (closed candles)", "15m: close 1"),
                                            ("News headlines (last 6 h, source and time UTC)", "x" * 50_000)))
    text = market_prompt(ctx, market, max_chars=2000)
    assert len(text) <= 2000
    assert text.startswith("Market: BTC/USDT on binance (spot), timeframe 1m")
    assert "Position: none (flat)" in text and "Other timeframes (closed candles):\n15m: close 1" in text
    assert "News headlines" in text and text.endswith("...")


def test_context_reaches_the_provider(fake_exchange, exchange_hub):
    llm_cfg = SimpleNamespace(context_timeframes=["1h"], order_book_levels=5, news_feeds=[])
    ctx_src = LLMContext(exchange_hub, llm_cfg)
    clock = Clock(fake_exchange.now_ms)
    candles = exchange_hub.market_data.candles("binance", "live", "BTC/USDT", "1m", 100)
    assert clock() > 0 and candles
    sections = ctx_src.sections("binance", "live", "BTC/USDT", "1m", "spot", candles[-1].ts)
    ctx = DecisionContext("BTC/USDT", "1m", candles, None, None, Decimal(1000), Decimal(1000), Decimal(1))
    with FakeLLM() as fake:
        fake.answer_json({"action": "hold", "confidence": 50, "reasoning": "wait"})
        LLMDecider(ProviderSettings(base_url=fake.base_url, api_key="sk-x", model="m")).decide(
            ctx, MarketInfo("binance", "spot", sections))
        prompt = fake.requests[0]["json"]["messages"][1]["content"]
    assert "Other timeframes (closed candles):\n1h: close" in prompt and "Order book (top 5 levels):" in prompt
